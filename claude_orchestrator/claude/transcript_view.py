"""Rendering a run's stream-json transcript for people, and following it live.

Event shapes are those of ``claude -p --output-format stream-json --verbose``
(see :mod:`.stream`).  Tool results are shortened; everything else is shown
as the model produced it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

#: Lines and characters of a tool result shown.
RESULT_LINES = 6
RESULT_CHARS = 600
#: Characters of a tool call's input shown.
INPUT_CHARS = 300


def _shorten(text: str, lines: int = RESULT_LINES, chars: int = RESULT_CHARS) -> str:
    out = text.strip()
    cut = out.splitlines()
    more = ""
    if len(cut) > lines:
        out, more = "\n".join(cut[:lines]), f" … (+{len(cut) - lines} lines)"
    if len(out) > chars:
        out, more = out[:chars], " …" + more
    return out + more


def _tool_input(block: dict[str, Any]) -> str:
    data = block.get("input") or {}
    if isinstance(data, dict) and len(data) <= 2 and isinstance(data.get("command"), str):
        text = data["command"]  # Bash: the command reads best bare
    elif isinstance(data, dict) and isinstance(data.get("file_path"), str) and len(data) == 1:
        text = data["file_path"]
    else:
        text = json.dumps(data, ensure_ascii=False)
    return _shorten(text, lines=4, chars=INPUT_CHARS)


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def render_event(event: dict[str, Any]) -> str | None:
    """One transcript event as readable text, or None for events not worth showing."""
    kind = event.get("type")
    if kind == "system":
        sub = event.get("subtype")
        if sub == "init":
            return f"── session {event.get('session_id')} · model {event.get('model')} · cwd {event.get('cwd')}"
        if sub == "api_retry":
            return f"!  API retry {event.get('attempt')}/{event.get('max_retries')}: {event.get('error_status')} {event.get('error') or ''}".rstrip()
        return None
    if kind == "assistant":
        parts = []
        for block in (event.get("message") or {}).get("content") or []:
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text" and block.get("text", "").strip():
                parts.append(block["text"].strip())
            elif block.get("type") == "tool_use":
                parts.append(f"→ {block.get('name')}: {_tool_input(block)}")
        return "\n".join(parts) or None
    if kind == "user":
        parts = []
        content = (event.get("message") or {}).get("content")
        if event.get("isReplay") is True:  # a message the CLI took from its stdin (the task first, then each message sent)
            text = content if isinstance(content, str) else "\n".join(
                b.get("text", "") for b in content if isinstance(b, dict)) if isinstance(content, list) else ""
            return f"» message:\n{_indent(_shorten(text))}" if text.strip() else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                body = block.get("content")
                if isinstance(body, list):
                    body = "\n".join(b.get("text", "") for b in body if isinstance(b, dict))
                mark = "✗" if block.get("is_error") else "←"
                parts.append(f"{mark} result:\n{_indent(_shorten(str(body or '')))}")
        return "\n".join(parts) or None
    if kind == "result":
        ok = not event.get("is_error") and event.get("subtype") == "success"
        cost = event.get("total_cost_usd")
        secs = (event.get("duration_ms") or 0) / 1000
        turns = event.get("num_turns")
        head = f"══ {'done' if ok else 'error'} · {turns} turn{'' if turns == 1 else 's'} · {secs:.1f} s"
        if cost is not None:
            head += f" · ${cost:.4f}"
        if ok:
            return head  # the answer was the last assistant message, shown already
        text = event.get("result") if isinstance(event.get("result"), str) else ""
        errors = event.get("errors") if isinstance(event.get("errors"), list) else []
        body = text or "; ".join(map(str, errors))
        return head + (f"\n{body.strip()}" if body.strip() else "")
    return None


def iter_lines(path: Path, follow: Callable[[], bool] | None = None, poll_s: float = 0.1) -> Iterator[str]:
    """The complete lines of ``path``; with ``follow``, keep reading as it grows.

    ``follow()`` is asked whenever the end of the file is reached; reading
    stops once it returns False and nothing more has arrived.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        partial = ""
        while True:
            chunk = f.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial.rstrip("\n")
                    partial = ""
                continue
            if follow is None or not follow():
                # one last read: the run may have written its final lines just now
                rest = f.read()
                yield from (line for line in (partial + rest).split("\n") if line)  # not splitlines(): U+2028 is inside JSON strings
                return
            time.sleep(poll_s)


def render(path: Path, out: TextIO, follow: Callable[[], bool] | None = None) -> int:
    """Print the transcript at ``path`` readably to ``out``; returns the events shown.

    The transcript is what the CLI printed, so untrusted: a line that is not
    JSON, or an event of a shape :func:`render_event` does not expect, is
    shown as a one-line note instead of ending the rendering.
    """
    shown = 0
    for line in iter_lines(path, follow):
        try:
            event = json.loads(line)
            text = render_event(event) if isinstance(event, dict) else None
        except RecursionError:
            text = f"?  a line of {len(line)} characters nested too deeply to read (skipped)"
        except ValueError:
            continue  # not JSON: a partial line or the CLI's own noise
        except (TypeError, AttributeError, KeyError):
            text = f"?  an event of an unexpected shape (type {str(event.get('type'))[:40]!r}; skipped)"
        if text:
            print(text, file=out, flush=True)
            shown += 1
    return shown
