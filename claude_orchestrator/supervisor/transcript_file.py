"""The run's transcript file (``outputs/<agent>/<run_id>.jsonl``), appended to as the CLI prints.

A full or read-only disk costs the transcript bytes, never the run: the
supervisor keeps reading the CLI's events whatever happens to this file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from ..core.files import close_quietly
from ..core.modes import file_mode

#: Seconds between tries to open a transcript that could not be opened.
TRANSCRIPT_REOPEN_S = 1.0


class TranscriptFile:
    """The run's transcript, appended to as the CLI prints.

    A write that fails (disk full, read-only, a symlink in the way) loses
    those bytes, never the run: they are counted in :attr:`dropped`, the first
    failure of a streak and the recovery are logged.  After a write that
    stopped half-way, the next one starts on a new line, so the file stays
    one line per event.  A file that cannot be opened is tried again at most
    every :data:`TRANSCRIPT_REOPEN_S` seconds.

    Args:
        path: ``outputs/<agent>/<run_id>.jsonl``.
        log: where to say that writes fail (the supervisor's log).

    Attributes:
        dropped: bytes of output lost so far.
    """

    def __init__(self, path: Path, log: Callable[[str], None]) -> None:
        self.path, self.log = path, log
        self.fd: int | None = None
        self.dropped = 0
        self._torn = False
        self._failing = False
        self._next_open = 0.0
        self._open()

    def _open(self) -> bool:
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, file_mode())
            return True
        except OSError as exc:
            self._next_open = time.monotonic() + TRANSCRIPT_REOPEN_S
            self._failed(exc)
            return False

    def write(self, parts: list[bytes]) -> None:
        """Append ``parts`` (one by one: the held head of a huge line is not copied again); never raises."""
        for part in parts:
            self._write(part)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.fd is None and (time.monotonic() < self._next_open or not self._open()):
            self.dropped += len(data)
            return
        if self._torn:
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self._torn = self._torn or len(view) < len(data)
            self.dropped += len(view)
            self._failed(exc)
            return
        self._torn = False
        if self._failing:
            self._failing = False
            self.log(f"the transcript can be written again; {self.dropped} bytes of output were lost so far")

    def _failed(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            self.log(f"cannot write the transcript {self.path}: {exc.strerror or exc}; output is dropped (events are still read) until writes work again")

    def close(self) -> None:
        """Close the file (idempotent; never raises)."""
        close_quietly(self.fd)
        self.fd = None
