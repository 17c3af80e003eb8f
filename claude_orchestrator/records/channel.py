"""A run's channel: the files through which a running agent is talked to.

Each run has its own folder, ``outputs/<agent>/<run_id>.channel/``
(:meth:`..core.paths.StatePaths.channel`), on the state root, so that it works
the same for a local run and for a cluster job on a shared filesystem:

    inbox.jsonl          messages in: one JSON object a line, appended by
                         ``message_agent.py`` (:func:`append_message`);
                         the supervisor writes each to the CLI's stdin
    q-<id>.json          a permission question the CLI asked (written by the
                         permission server, :mod:`..supervisor.permission_server`)
    a-<id>.json          its answer (``answer_agent.py``), created once (O_EXCL)
    done-<id>.json       the question once settled: the question and how
                         (``allow``, ``deny`` or ``timeout``) and when
    always.json          ``{"tools": [...]}``: tools allowed for the rest of the run (``--always``)
    mcp.json             the ``--mcp-config`` the CLI gets with ``--ask-permission``
    mcp-ready.json       the permission server is serving (the task is held back until then)

A message line: ``{"id": "m-<12 hex>", "at": ISO-8601 UTC, "text": str,
"sender": str}``.  Its position in the file (1, 2, ...) is its number; the
record's ``messages`` counts how many were received (read by the
supervisor), delivered (written to the CLI's stdin) and answered (a turn that
took it has ended).  Because the folder is the run's, a message written for
one run never reaches another ("a stale inbox never leaks").

Every file here is untrusted input: a line that is not such an object is
skipped (and counted), never fatal.  Standard library only.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, storage_error
from ..core.files import write_atomic
from ..core.modes import dir_mode, file_mode

#: The inbox's file name in a channel folder.
INBOX = "inbox.jsonl"
#: A question, its answer, its settled form: ``q-<id>.json``, ``a-<id>.json``, ``done-<id>.json``.
QUESTION_PREFIX, ANSWER_PREFIX, DONE_PREFIX = "q-", "a-", "done-"
#: Tools allowed for the rest of the run (``answer_agent.py --always``).
ALWAYS = "always.json"
#: The MCP configuration the CLI gets with ``--ask-permission``, and the file the permission
#: server writes once the CLI has listed its tool (the task waits for it: 2.1.197 does not wait).
MCP_CONFIG, MCP_READY = "mcp.json", "mcp-ready.json"
#: The MCP server's name in that configuration and its tool: the CLI calls ``mcp__orchestrator__ask_permission``.
MCP_SERVER, MCP_TOOL = "orchestrator", "ask_permission"
PERMISSION_TOOL = f"mcp__{MCP_SERVER}__{MCP_TOOL}"
#: A question's id: ``q`` and 12 hex digits (its files are named after it).
QUESTION_ID_RE = re.compile(r"q[0-9a-f]{12}")
#: The largest message accepted, in bytes of UTF-8 (as a task: :data:`..core.limits` has none, the CLI reads stdin).
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Answers a question may get.
ALLOW, DENY, TIMEOUT = "allow", "deny", "timeout"


def new_message_id() -> str:
    """A fresh message id, ``m-`` and 12 hex digits."""
    return "m-" + os.urandom(6).hex()


def new_question_id() -> str:
    """A fresh question id (:data:`QUESTION_ID_RE`)."""
    return "q" + os.urandom(6).hex()


def check_message(text: str) -> str:
    """Return ``text`` if it can be sent as a message, else raise.

    Raises:
        BadInput: empty (only whitespace), holds a NUL, or longer than :data:`MAX_MESSAGE_BYTES`.
    """
    if not text.strip():
        raise BadInput("the message is empty: give its text as an argument, or with --task-file FILE (- for stdin)")
    if "\x00" in text:
        raise BadInput(f"the message holds a NUL character at offset {text.index(chr(0))}; remove it")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise BadInput(f"the message is {size} bytes; the most is {MAX_MESSAGE_BYTES} (put the rest in a file and name it)")
    return text


def message_line(text: str, at: str, sender: str, message_id: str | None = None) -> bytes:
    """One inbox line (ends in a newline): ``{"id", "at", "text", "sender"}`` as compact JSON, ASCII only."""
    data = {"id": message_id or new_message_id(), "at": at, "text": text, "sender": sender}
    return (json.dumps(data, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def append_message(inbox: Path, line: bytes) -> None:
    """Append one :func:`message_line` to ``inbox`` in one ``write`` (O_APPEND; the file is made 0600, :mod:`..core.modes`).

    Callers hold the agent's record lock, so two senders never interleave and
    the supervisor's final look at the inbox sees every line appended before it.

    Raises:
        StorageError: the inbox cannot be written (exit 74); BadInput: it is a symlink.
    """
    try:
        inbox.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode())
        fd = os.open(inbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, file_mode())
    except OSError as exc:
        if os.path.islink(inbox):
            raise BadInput(f"{inbox} is a symlink; the toolkit never writes through one") from exc
        raise storage_error(exc, inbox) from exc
    try:
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        raise storage_error(exc, inbox) from exc
    finally:
        os.close(fd)


def parse_message(line: bytes) -> dict[str, Any] | None:
    """One inbox line as ``{"id", "at", "text", "sender"}``, or None if it is not one (untrusted input).

    ``text`` must be a non-empty string; the others are replaced by "" when missing or not strings.
    """
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("text"), str) or not data["text"]:
        return None
    return {k: data.get(k) if isinstance(data.get(k), str) else "" for k in ("id", "at", "sender")} | {"text": data["text"]}


def read_messages(inbox: Path, start: int = 0) -> tuple[list[dict[str, Any]], int, int]:
    """The complete lines of ``inbox`` from byte ``start``.

    A line not yet ended by a newline (a write in progress) is left for the
    next call.  Never follows a symlink.

    Returns:
        ``(messages, next start, lines skipped as not messages)``; ``([], start, 0)``
        if the file is missing or unreadable.
    """
    try:
        fd = os.open(inbox, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return [], start, 0
    try:
        with os.fdopen(fd, "rb") as f:
            f.seek(start)
            data = f.read()
    except OSError:
        return [], start, 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], start, 0
    messages, skipped = [], 0
    for raw in data[: end + 1].split(b"\n")[:-1]:
        msg = parse_message(raw)
        if msg is None:
            skipped += 1
        else:
            messages.append(msg)
    return messages, start + end + 1, skipped


def stream_json_message(text: str) -> bytes:
    """A user message as the CLI's ``--input-format stream-json`` takes it on stdin, one line.

    ``{"type":"user","message":{"role":"user","content":TEXT}}`` (docs/how-it-works.md,
    verified on 2.1.197 and 2.1.332).  ASCII-only JSON, so any text survives the pipe.
    """
    data = {"type": "user", "message": {"role": "user", "content": text}}
    return (json.dumps(data, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def read_json(path: Path) -> dict[str, Any] | None:
    """A channel file's JSON object, or None if missing, unreadable, a symlink or not an object."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            data = json.loads(f.read(1 << 22))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write a channel file atomically (:func:`..core.files.write_atomic`, mode 0600).

    Raises:
        StorageError: it cannot be written.
    """
    write_atomic(path, json.dumps(data, ensure_ascii=True, indent=1) + "\n")


def create_once(path: Path, data: dict[str, Any]) -> bool:
    """Create ``path`` holding ``data`` only if it does not exist (O_EXCL): an answer is given once.

    Returns:
        True if created, False if it existed already.

    Raises:
        StorageError: it cannot be written.
    """
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    write_atomic(tmp, json.dumps(data, ensure_ascii=True) + "\n")
    try:
        os.link(tmp, path)  # atomic and exclusive: the whole file appears, or the existing one stays
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise storage_error(exc, path) from exc
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
