"""Reading the CLI's stream-json events and judging how a run ended.

Event shapes seen from ``claude -p --output-format stream-json --verbose``
(2.1.197): ``{"type": "system", "subtype": "init", "session_id", "model",
"cwd", ...}``; ``{"type": "assistant", "message": {"id", "content": [...],
"usage"}}`` (one event per content block; blocks of one turn share the message
id); ``{"type": "user", ...}`` carrying tool results; and a final
``{"type": "result", "subtype", "is_error", "api_error_status", "result",
"num_turns", "total_cost_usd", "usage", "session_id", "errors"?}``.
"""

from __future__ import annotations

import json
from typing import Any

from .states import State

#: Characters of a tool call's input kept as its preview.
TOOL_PREVIEW_CHARS = 120


def parse_line(line: bytes | str) -> dict[str, Any] | None:
    """One stream-json line as a dict, or None if it is not a JSON object."""
    try:
        event = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return event if isinstance(event, dict) else None


class RunProgress:
    """What the events of one run have said so far.

    Feed each event to :meth:`feed`; it returns True when something worth
    writing to the record changed (a new turn, the session, the result).
    """

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.model: str | None = None
        self.turn_ids: set[str] = set()
        self.usage_by_message: dict[str, dict[str, Any]] = {}
        self.last_tool: dict[str, str] | None = None
        self.result: dict[str, Any] | None = None
        self.events = 0

    @property
    def num_turns(self) -> int:
        """Assistant turns so far (the result event's ``num_turns`` once it came)."""
        if self.result and isinstance(self.result.get("num_turns"), int):
            return self.result["num_turns"]
        return len(self.turn_ids)

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens so far: ``{"input": int, "output": int}`` (input counts cache reads and writes).

        From each assistant message's ``usage`` (the last one seen per message);
        once the result event came, from its ``usage``.
        """
        usages = [self.result["usage"]] if self.result and isinstance(self.result.get("usage"), dict) else self.usage_by_message.values()
        tokens = {"input": 0, "output": 0}
        for u in usages:
            for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
                tokens["input"] += int(u.get(key) or 0)
            tokens["output"] += int(u.get("output_tokens") or 0)
        return tokens

    def feed(self, event: dict[str, Any]) -> bool:
        self.events += 1
        kind = event.get("type")
        if kind == "system" and event.get("subtype") == "init":
            self.session_id = event.get("session_id") or self.session_id
            self.model = event.get("model") or self.model
            return True
        if kind == "assistant":
            msg = event.get("message") or {}
            changed = False
            mid = msg.get("id") or event.get("uuid")
            if mid and mid not in self.turn_ids:
                self.turn_ids.add(mid)
                changed = True
            if mid and isinstance(msg.get("usage"), dict):
                self.usage_by_message[mid] = msg["usage"]
            for block in msg.get("content") or []:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    preview = json.dumps(block.get("input", {}), ensure_ascii=False)
                    self.last_tool = {"name": str(block.get("name")), "input": preview[:TOOL_PREVIEW_CHARS]}
                    changed = True
            return changed
        if kind == "result":
            self.result = event
            self.session_id = event.get("session_id") or self.session_id
            return True
        return False


def classify(result: dict[str, Any] | None, exit_code: int | None) -> tuple[State, str | None]:
    """How a run ended, from its final result event and the CLI's exit status.

    - a result event with ``is_error`` false, subtype ``success`` and exit 0: completed;
    - exit 0 with ``is_error`` true: failed (the CLI reports some API errors so);
    - no result event: failed, whatever the exit status;
    - any other exit status: failed.

    Returns:
        ``(state, error)``: ``error`` is None for completed, else one line.
    """
    if result is None:
        how = f"exited with status {exit_code}" if exit_code is not None and exit_code >= 0 else f"was killed by signal {-(exit_code or 0)}"
        return State.FAILED, f"the CLI {how} without a result event"
    is_error = bool(result.get("is_error"))
    subtype = result.get("subtype")
    if exit_code == 0 and not is_error and subtype == "success":
        return State.COMPLETED, None
    parts = []
    if subtype and subtype != "success":
        parts.append(str(subtype))
    errors = result.get("errors")
    text = result.get("result") if isinstance(result.get("result"), str) else ""
    if isinstance(errors, list) and errors:
        parts.append("; ".join(str(e) for e in errors))
    elif is_error and text.strip():
        parts.append(text.strip().splitlines()[0][:300])  # e.g. "API Error: 529 ..."
    status = result.get("api_error_status")
    if status and not any(str(status) in p for p in parts):
        parts.append(f"API error {status}")
    if exit_code not in (0, None):
        parts.append(f"exit status {exit_code}")
    return State.FAILED, ": ".join(parts) if parts else "the CLI reported an error"
