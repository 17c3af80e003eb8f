"""Reading a task (or delegations) from words, a file or stdin, and checking it is text the CLI can take."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..core.errors import BadInput


def read_task(words: Sequence[str], task_file: str | None, what: str = "task") -> str:
    """The task from the positional ``words`` (joined by spaces) or ``--task-file`` (``-`` = stdin).

    ``what`` names it in messages (``message`` for ``message_agent.py``).

    Raises:
        BadInput: both given; the file cannot be read; not UTF-8 or holds a NUL byte (exit 2).
    """
    if task_file is not None:
        if words:
            raise BadInput(f"give the {what} either as an argument or with --task-file, not both")
        return read_source(task_file, "--task-file", f"the {what} on stdin")
    return word_text(" ".join(words), f"the {what}")


def word_text(word: str, source: str) -> str:
    """A command-line argument as task text, checked by :func:`task_text`.

    An argument the OS gave as bytes that are not UTF-8 reaches Python as
    surrogate escapes: the bytes are got back, so the offset reported is the byte's.
    """
    return task_text(word.encode("utf-8", "surrogateescape"), source)


def read_source(source: str, option: str, stdin_name: str) -> str:
    """The text of file ``source`` given with ``option``, or of stdin if ``source`` is ``-``.

    Args:
        source: a path, or ``-`` for stdin.
        option: the option that named it (``--task-file``), for messages.
        stdin_name: what stdin holds, for messages (``the task on stdin``).

    Raises:
        BadInput: the file cannot be read; not UTF-8 or holds a NUL byte (exit 2).
    """
    if source == "-":
        return task_text(sys.stdin.buffer.read(), stdin_name)
    return task_text(read_bytes(source, option), f"{option} {source}")


def read_bytes(path: str, option: str) -> bytes:
    """The bytes of ``path``, given with ``option``.

    Raises:
        BadInput: it cannot be read, with the OS's reason (exit 2).
    """
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadInput(f"cannot read {option} {path!r}: {exc.strerror}") from exc


def task_text(data: bytes, source: str) -> str:
    """``data`` as text, if it is a task the CLI can be given: UTF-8 without NUL bytes.

    Raises:
        BadInput: not valid UTF-8, or a NUL byte, with the byte offset (exit 2).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{source} is not valid UTF-8: byte {data[exc.start]:#04x} at offset {exc.start}; save it as UTF-8"
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise BadInput(f"{source} holds a NUL byte at offset {nul}; it must be text: remove it")
    return text
