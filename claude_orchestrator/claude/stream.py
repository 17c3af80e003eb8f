"""Reading the CLI's stream-json events and judging how a run ended.

Event shapes seen from ``claude -p --output-format stream-json --verbose``
(2.1.197): ``{"type": "system", "subtype": "init", "session_id", "model",
"cwd", ...}``; ``{"type": "assistant", "message": {"id", "content": [...],
"usage"}}`` (one event per content block; blocks of one turn share the message
id); ``{"type": "user", ...}`` carrying tool results; and a final
``{"type": "result", "subtype", "is_error", "api_error_status", "result",
"num_turns", "total_cost_usd", "usage", "session_id", "errors"?}``.

The stream is untrusted input (issue 11): any line may be invalid UTF-8, not
JSON, JSON nested too deeply to parse, huge, or an event whose fields have
other types than these.  Nothing here raises on such input: a line that is not
a JSON object is refused by :func:`parse_event` with the reason, a field of an
unexpected type is ignored (:attr:`RunProgress.problem` says which), and what
reaches the status record has the record's types (:func:`clean_result`).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Any

from ..core.states import State

#: Characters of a tool call's input kept as its preview.
TOOL_PREVIEW_CHARS = 120
#: The longest stream line parsed, in bytes; a longer one is passed through to
#: the transcript as it comes, never held whole, and not parsed (:class:`LineBuffer`).
MAX_LINE_BYTES = 64 * 1024 * 1024
#: A session ID is accepted only if it looks like a UUID.
SESSION_ID_RE = re.compile(r"[0-9a-fA-F-]{36}")
#: Longest model name, message id and tool name accepted, in characters.
NAME_MAX_CHARS = 200
#: Characters of one error text kept, and of the whole error line :func:`classify` returns.
ERROR_CHARS = 300
ERROR_LINE_CHARS = 1000
#: How deep, how many items per container and how many characters per string
#: a value kept from an event (the result's ``usage``) may have.
PLAIN_DEPTH = 4
PLAIN_ITEMS = 100
PLAIN_CHARS = 1000
#: The ``usage`` keys that count as input tokens, and the one for output tokens.
INPUT_TOKEN_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
OUTPUT_TOKEN_KEY = "output_tokens"
TOKEN_KEYS = (*INPUT_TOKEN_KEYS, OUTPUT_TOKEN_KEY)
#: Distinct unknown event types remembered (each is reported once).
UNKNOWN_TYPES_KEPT = 100


class SkippedLine(ValueError):
    """A stream line that is not a JSON object; the message says why, in a few words."""


def parse_event(line: bytes | str) -> dict[str, Any]:
    """One stream-json line as a dict.

    Bytes must be UTF-8 (JSON's own encoding detection is not used: a line of
    other bytes is refused, not guessed at).

    Raises:
        SkippedLine: not UTF-8 (with the offset of the first bad byte), not
            JSON, nested too deeply to parse, or JSON that is not an object.
    """
    if isinstance(line, (bytes, bytearray)):
        try:
            text = bytes(line).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SkippedLine(f"not valid UTF-8: byte {line[exc.start]:#04x} at offset {exc.start}") from None
    else:
        text = line
    try:
        event = json.loads(text)
    except RecursionError:
        raise SkippedLine("JSON nested too deeply") from None
    except ValueError as exc:
        raise SkippedLine(f"not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise SkippedLine(f"a JSON {_kind(event)}, not an object")
    return event


def parse_line(line: bytes | str) -> dict[str, Any] | None:
    """One stream-json line as a dict, or None if it is not a JSON object (:func:`parse_event`)."""
    try:
        return parse_event(line)
    except SkippedLine:
        return None


def _kind(value: Any) -> str:
    """The JSON type name of a parsed value (``object``, ``array``, ``string``, ...)."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _number(value: Any, upper: float = 1e15) -> int | float | None:
    """``value`` if it is a finite number in ``[0, upper)`` (not a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if 0 <= value < upper else None  # NaN fails both comparisons


def _count(value: Any) -> int:
    """A token count: ``value`` as an int if it is a sane number, else 0."""
    n = _number(value)
    return int(n) if n is not None else 0


def _name(value: Any) -> str | None:
    """A non-empty string of at most :data:`NAME_MAX_CHARS` characters, else None."""
    return value if isinstance(value, str) and 0 < len(value) <= NAME_MAX_CHARS else None


def _session_id(value: Any) -> str | None:
    """``value`` if it is a string that looks like a UUID, else None."""
    return value if isinstance(value, str) and SESSION_ID_RE.fullmatch(value) else None


def _plain(value: Any, depth: int = PLAIN_DEPTH) -> Any:
    """A JSON value cut down to sane size: at most ``depth`` levels, :data:`PLAIN_ITEMS`
    items per container, :data:`PLAIN_CHARS` characters per string, finite numbers.

    What does not fit becomes None (a container deeper than ``depth``, NaN, infinity).
    A value of real usage shape comes back equal to itself.
    """
    if isinstance(value, str):
        return value[:PLAIN_CHARS]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int)):
        return value
    if depth <= 0:
        return None
    if isinstance(value, dict):
        return {str(k)[:PLAIN_CHARS]: _plain(v, depth - 1) for k, v in list(value.items())[:PLAIN_ITEMS]}
    if isinstance(value, list):
        return [_plain(v, depth - 1) for v in value[:PLAIN_ITEMS]]
    return None


def _api_status(value: Any) -> int | str | None:
    """An ``api_error_status``: an int (not a boolean) of a sane size or a short string, else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if abs(value) < 10**6 else None
    if isinstance(value, str):
        return value[:NAME_MAX_CHARS]
    return None


def _errors(value: Any) -> list[str] | None:
    """A result's ``errors``: a list of at most 10 texts of :data:`ERROR_CHARS` characters, else None."""
    if not isinstance(value, list):
        return None
    return [e[:ERROR_CHARS] if isinstance(e, str) else f"(a JSON {_kind(e)})" for e in value[:10]]


#: Fields of a result event that :func:`clean_result` keeps, each with its cleaner.
_RESULT_FIELDS = {
    "subtype": _name,
    "is_error": lambda v: None if v is None else bool(v),
    "api_error_status": _api_status,
    "result": lambda v: v if isinstance(v, str) else None,
    "num_turns": lambda v: _number(v, 10**9) if isinstance(v, int) else None,
    "total_cost_usd": lambda v: _number(v, 1e9),
    "usage": lambda v: _plain(v) if isinstance(v, dict) else None,
    "session_id": _session_id,
    "errors": _errors,
}


def clean_result(event: dict[str, Any]) -> dict[str, Any]:
    """The fields of a result event this toolkit uses, each of the type it expects.

    Returns:
        A dict with every key of :data:`_RESULT_FIELDS`: ``subtype`` str,
        ``is_error`` bool, ``api_error_status`` int or str, ``result`` str,
        ``num_turns`` int, ``total_cost_usd`` int or float (finite, >= 0),
        ``usage`` dict (:func:`_plain`), ``session_id`` str (a UUID's shape),
        ``errors`` list of str; each None where the event lacks it or has
        another type.  Idempotent: cleaning a cleaned result changes nothing.
    """
    return {key: clean(event.get(key)) for key, clean in _RESULT_FIELDS.items()}


class LineBuffer:
    """Cuts the CLI's stdout into lines without holding more than ``max_line`` bytes of one.

    Everything pushed comes out of :meth:`push` (or :meth:`close`) exactly once,
    in order, for the transcript: complete lines as they complete, and the
    head of a line longer than ``max_line`` as soon as it passes the cap.

    Args:
        max_line: bytes of an unfinished line held at most (default :data:`MAX_LINE_BYTES`).
    """

    def __init__(self, max_line: int = MAX_LINE_BYTES) -> None:
        self.max_line = max_line
        self._parts: list[bytes] = []  # the unfinished line, held
        self._held = 0  # bytes in _parts
        self._passed = 0  # bytes of an overlong unfinished line already given out (0: none)

    def push(self, chunk: bytes) -> tuple[list[bytes], list[bytes | int]]:
        """Take the next bytes of the stream.

        Returns:
            ``(out, lines)``: ``out`` the bytes to append to the transcript now;
            ``lines`` each line this chunk completed, without its newline, or,
            for a line longer than ``max_line``, its length in bytes (an int).
        """
        out: list[bytes] = []
        last = chunk.rfind(b"\n")
        if last < 0:
            self._hold(chunk, out)
            return out, []
        pieces = chunk[:last].split(b"\n")
        first = pieces[0]
        lines: list[bytes | int] = []
        if self._passed:
            lines.append(self._passed + len(first))
            self._passed = 0
        elif self._parts:
            size = self._held + len(first)
            out.extend(self._parts)
            lines.append(size if size > self.max_line else b"".join([*self._parts, first]))
            self._parts, self._held = [], 0
        else:
            lines.append(first if len(first) <= self.max_line else len(first))
        lines.extend(p if len(p) <= self.max_line else len(p) for p in pieces[1:])
        out.append(chunk[: last + 1])
        if last + 1 < len(chunk):
            self._hold(chunk[last + 1 :], out)
        return out, lines

    def close(self) -> tuple[list[bytes], list[bytes | int]]:
        """The stream ended: its unfinished last line, with a newline added (as :meth:`push`)."""
        if not self._parts and not self._passed:
            return [], []
        return self.push(b"\n")

    def _hold(self, tail: bytes, out: list[bytes]) -> None:
        """Keep ``tail`` of an unfinished line; past the cap, give the line out instead."""
        if self._passed:
            out.append(tail)
            self._passed += len(tail)
            return
        self._parts.append(tail)
        self._held += len(tail)
        if self._held > self.max_line:
            out.extend(self._parts)
            self._passed, self._parts, self._held = self._held, [], 0


class RunProgress:
    """What the events of one run have said so far.

    Feed each event to :meth:`feed`; it returns True when something worth
    writing to the record changed (a new turn, the session, the result).
    Every value kept has the type the status record needs (see the module
    docstring); fields of other types are ignored.

    Attributes:
        session_id: the session's ID (a UUID's shape), or None.
        model: the model named by the init event, or None.
        cli_version: the init event's ``claude_code_version`` (``2.1.332``; 2.1.197 and 2.1.332 send it), or None.
        last_tool: ``{"name": str, "input": str}`` of the latest tool call, or None.
        result: the latest result event, cleaned (:func:`clean_result`), or None before the first.
        results: result events so far: one per turn of the conversation (a message on
            stdin starts another turn, ``--input-format stream-json``).
        replays: user messages the CLI took from its stdin and echoed back
            (``--replay-user-messages``: ``{"type": "user", "isReplay": true, ...}``), the task included.
        events: events fed so far.
        problem: what was odd about the event just fed (a few words), or None.

    Over several turns (verified on 2.1.197 and 2.1.332): each result's
    ``num_turns`` and ``usage`` are that turn's, and its ``total_cost_usd`` is
    the process's so far; so turns and tokens are summed over the results, and
    the cost is the latest result's.
    """

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.model: str | None = None
        self.cli_version: str | None = None
        self.turn_ids: set[str] = set()  # assistant messages since the latest result event
        self.usage_by_message: dict[str, dict[str, int]] = {}  # message id -> its token counts (since the latest result)
        self.last_tool: dict[str, str] | None = None
        self.result: dict[str, Any] | None = None
        self.results = 0
        self.replays = 0
        self.results_at_replay = 0  # :attr:`results` when the latest replay came: a result after it ended its turn
        self._echoed: list[tuple[str, int]] = []  # (text, results before it) of each echo not yet taken (take_echoes)
        self.events = 0
        self.problem: str | None = None
        self.unknown_types: set[str] = set()
        self._ended_turns = 0  # num_turns of the results so far
        self._ended_tokens = {"input": 0, "output": 0}  # tokens of the results so far

    @property
    def num_turns(self) -> int:
        """Assistant turns so far: those of the ended turns (their results' ``num_turns``), then those since."""
        return self._ended_turns + len(self.turn_ids)

    @property
    def tokens(self) -> dict[str, int]:
        """Tokens so far: ``{"input": int, "output": int}`` (input counts cache reads and writes).

        The ended turns' from their result events' ``usage``; since the latest
        result, from each assistant message's ``usage`` (the last one seen per
        message).  Values that are not sane numbers count as 0.
        """
        tokens = dict(self._ended_tokens)
        for u in self.usage_by_message.values():
            _add_usage(tokens, u)
        return tokens

    def feed(self, event: dict[str, Any]) -> bool:
        """Take in one event (as :func:`parse_event` returns it).

        Never raises.  Sets :attr:`problem` to what was odd about the event
        (an unknown type, the first time; a field of another type), else None.

        Returns:
            True if something worth writing to the record changed.
        """
        self.events += 1
        self.problem = None
        if not isinstance(event, dict):
            self.problem = f"a JSON {_kind(event)}, not an object"
            return False
        kind = event.get("type")
        if kind == "assistant":
            return self._assistant(event)
        if kind == "system":
            return self._system(event)
        if kind == "result":
            return self._result(event)
        if kind == "user":  # tool results (nothing to keep), or a message taken from stdin, echoed back
            if event.get("isReplay") is True:
                self.replays += 1
                self.results_at_replay = self.results
                self._echoed.append((_message_text((event.get("message") or {}) if isinstance(event.get("message"), dict) else {}), self.results))
                return True
            return False
        self._unknown(kind)
        return False

    def take_echoes(self) -> list[tuple[str, int]]:
        """The messages the CLI echoed since the last call: ``(text, result events before it)`` each.

        One echo may hold several messages: messages that queue up while a turn runs
        are taken together as one user turn, their texts joined by a newline (2.1.197 and 2.1.332).
        """
        echoed, self._echoed = self._echoed, []
        return echoed

    def _system(self, event: dict[str, Any]) -> bool:
        """A ``system`` event: the ``init`` one names the session and the model."""
        if event.get("subtype") != "init":
            return False
        sid, model = event.get("session_id"), event.get("model")
        odd = []
        if _session_id(sid):
            self.session_id = sid
        elif sid is not None:
            odd.append(f"'session_id' ({_kind(sid)}) is not a session ID")
        version = event.get("claude_code_version")
        if isinstance(version, str) and len(version) <= 64:
            self.cli_version = version
        if _name(model):
            self.model = model
        elif model is not None:
            odd.append(f"'model' ({_kind(model)}) is not a model name")
        self.problem = "; ".join(odd) or None
        return True

    def _assistant(self, event: dict[str, Any]) -> bool:
        """An ``assistant`` event: a turn (by message id), its usage, its tool calls."""
        msg = event.get("message")
        if not isinstance(msg, dict):
            self.problem = f"an assistant event whose 'message' is a JSON {_kind(msg)}, not an object"
            return False
        changed = False
        mid = _name(msg.get("id")) or _name(event.get("uuid"))
        if mid and mid not in self.turn_ids:
            self.turn_ids.add(mid)
            changed = True
        usage = msg.get("usage")
        if isinstance(usage, dict):
            raw = {key: usage.get(key) for key in TOKEN_KEYS}
            if mid:
                self.usage_by_message[mid] = {key: _count(v) for key, v in raw.items()}
            if any(v is not None and _number(v) is None for v in raw.values()):
                self.problem = "an assistant event whose 'usage' holds token counts that are not numbers (counted as 0)"
        elif usage is not None:
            self.problem = f"an assistant event whose 'usage' is a JSON {_kind(usage)}, not an object"
        content = msg.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    self.last_tool = _tool_call(block)
                    changed = True
        elif content is not None:
            self.problem = f"an assistant event whose 'content' is a JSON {_kind(content)}, not an array"
        return changed

    def _result(self, event: dict[str, Any]) -> bool:
        """The ``result`` event, cleaned; its fields of other types are named in :attr:`problem`."""
        self.result = clean_result(event)
        odd = [k for k, v in self.result.items() if v is None and event.get(k) is not None]
        if event.get("is_error") is not None and not isinstance(event["is_error"], bool):
            odd.append("is_error")  # kept as its truth value
        if odd:
            self.problem = f"a result event with fields of unexpected types: {', '.join(odd)}"
        self.session_id = self.result["session_id"] or self.session_id
        self.results += 1
        turns = self.result.get("num_turns")
        if turns is None:  # not a count: the turn's assistant messages stay counted as they are
            return True
        self._ended_turns += int(turns)
        usage = self.result.get("usage")
        _add_usage(self._ended_tokens, usage if isinstance(usage, dict) else {})
        self.turn_ids, self.usage_by_message = set(), {}
        return True

    def _unknown(self, kind: Any) -> None:
        """Note an event type not understood, once per type."""
        if not isinstance(kind, str):
            self.problem = f"an event whose 'type' is a JSON {_kind(kind)}, not a string"
        elif kind not in self.unknown_types and len(self.unknown_types) < UNKNOWN_TYPES_KEPT:
            self.unknown_types.add(kind)
            self.problem = f"an event of unknown type {kind[:NAME_MAX_CHARS]!r} (reported once per type)"


def _message_text(message: dict[str, Any]) -> str:
    """A user message's text: its ``content`` string, or its text blocks joined by newlines; "" for anything else."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b["text"] for b in content if isinstance(b, dict) and isinstance(b.get("text"), str))
    return ""


def _add_usage(tokens: dict[str, int], usage: dict[str, Any]) -> None:
    """Add one ``usage``'s token counts to ``tokens`` (``{"input", "output"}``) in place."""
    tokens["input"] += sum(_count(usage.get(key)) for key in INPUT_TOKEN_KEYS)
    tokens["output"] += _count(usage.get(OUTPUT_TOKEN_KEY))


def _tool_call(block: dict[str, Any]) -> dict[str, str]:
    """``{"name", "input"}`` of a ``tool_use`` block: its name and a preview of its input, both strings."""
    name = block.get("name")
    try:
        preview = json.dumps(block.get("input", {}), ensure_ascii=False)[:TOOL_PREVIEW_CHARS]
    except (ValueError, TypeError, RecursionError):
        preview = "?"
    return {"name": name[:NAME_MAX_CHARS] if isinstance(name, str) else str(name)[:NAME_MAX_CHARS], "input": preview}


#: Characters of the CLI's last stderr line kept in an error.
STDERR_LINE_CHARS = 300
#: Escape sequences a terminal would act on (CSI, OSC, and any other ESC + one character).
_ESCAPES_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?", re.DOTALL)
#: Hints for stderr lines the CLI prints when it refuses to start: (text found in the line, what to do).
STDERR_HINTS = (
    ("--dangerously-skip-permissions cannot be used with root/sudo privileges",
     "set IS_SANDBOX=1 if this runs in a sandbox, or run as a user other than root"),
)


def plain_line(text: str, limit: int = STDERR_LINE_CHARS) -> str:
    """``text`` (untrusted) made one printable line: escape sequences and control and format
    characters removed, runs of whitespace made one space, cut to ``limit`` characters (ending in "…")."""
    text = _ESCAPES_RE.sub("", text)
    text = "".join(" " if ch.isspace() else ch for ch in text if ch.isspace() or not unicodedata.category(ch).startswith("C"))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_stderr_line(lines: list[str]) -> str | None:
    """The last of ``lines`` (the CLI's stderr, untrusted) that is not empty once made plain
    (:func:`plain_line`), with a hint appended if it is a refusal whose fix is known
    (:data:`STDERR_HINTS`); None if there is none."""
    for line in reversed(lines):
        plain = plain_line(line)
        if plain:
            hints = [hint for found, hint in STDERR_HINTS if found in plain]
            return f"{plain} ({hints[0]})" if hints else plain
    return None


def classify(result: dict[str, Any] | None, exit_code: int | None, stderr_line: str | None = None) -> tuple[State, str | None]:
    """How a run ended, from its final result event and the CLI's exit status.

    - a result event with ``is_error`` false, subtype ``success`` and exit 0: completed;
    - exit 0 with ``is_error`` true: failed (the CLI reports some API errors so);
    - no result event: failed, whatever the exit status; the error ends with
      ``stderr_line`` (the CLI's last stderr line, :func:`last_stderr_line`), which says why;
    - any other exit status: failed.

    ``result`` may be the event as parsed or as :func:`clean_result` left it;
    fields of unexpected types count as absent.  Never raises.

    Returns:
        ``(state, error)``: ``error`` is None for completed, else one line of at
        most :data:`ERROR_LINE_CHARS` characters, e.g. "the CLI exited with status 1
        without a result event: --dangerously-skip-permissions cannot be used ...".
    """
    if not isinstance(result, dict):
        how = f"exited with status {exit_code}" if exit_code is not None and exit_code >= 0 else f"was killed by signal {-(exit_code or 0)}"
        why = f": {plain_line(stderr_line, ERROR_LINE_CHARS)}" if stderr_line else ""
        return State.FAILED, f"the CLI {how} without a result event{why}"[:ERROR_LINE_CHARS]
    r = clean_result(result)
    is_error = bool(r["is_error"])
    subtype = r["subtype"]
    if exit_code == 0 and not is_error and subtype == "success":
        return State.COMPLETED, None
    parts = []
    if subtype and subtype != "success":
        parts.append(subtype)
    text = r["result"] or ""
    if r["errors"]:
        parts.append("; ".join(r["errors"]))
    elif is_error and text.strip():
        parts.append(text.strip().splitlines()[0][:ERROR_CHARS])  # e.g. "API Error: 529 ..."
    status = r["api_error_status"]
    if status and not any(str(status) in p for p in parts):
        parts.append(f"API error {status}")
    if exit_code not in (0, None):
        parts.append(f"exit status {exit_code}")
    return State.FAILED, (": ".join(parts) if parts else "the CLI reported an error")[:ERROR_LINE_CHARS]
