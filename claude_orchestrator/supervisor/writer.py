"""The supervisor's writes that may fail: its record, its result and session files.

A full or read-only state root never costs a run its supervision.
:class:`RecordWriter` keeps the supervisor's own copy of its record (which
heals a damaged file), applies each change to that copy at once and writes
it when it can: a change that cannot be written now waits and goes with the
next write that succeeds; the final writes are retried with backoff for up
to :data:`RECORD_RETRY_LIMIT_S`.  Every state change goes through
:mod:`..records.lifecycle`: :func:`..records.lifecycle.move_from` (a move on a copy, for changes that
wait) and :meth:`RecordWriter.end` (:func:`..records.lifecycle.change_state`).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import OrchestratorError, StorageError
from ..core.files import write_atomic
from ..core.states import State
from ..records import lifecycle
from ..records.status_record import RecordStore, StatusRecord

#: Seconds the final writes (result file, session file, final record) are
#: retried while the state root cannot be written; then the supervisor gives
#: up (logged) and readers reconcile the record to ``lost`` once it has exited.
RECORD_RETRY_LIMIT_S = 3600.0
#: Seconds the claim of the run is retried while the record cannot be written.
CLAIM_RETRY_LIMIT_S = 30.0
#: Seconds record writes are retried after an internal error, and for the on-complete note.
SHORT_RETRY_LIMIT_S = 5.0
#: Seconds between tries of a failed write: the first wait, and the cap as it doubles.
RETRY_FIRST_WAIT_S = 0.1
RETRY_MAX_WAIT_S = 2.0
#: OS errors that free space, a remount or time can cure: a write failing so is retried.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EAGAIN, errno.EINTR, errno.ENOMEM})

#: A change of the record: edits it in place; applied to the supervisor's copy and again to the file's.
Change = Callable[[StatusRecord], None]


def may_pass(exc: BaseException | None) -> bool:
    """True if the write that failed with ``exc`` may succeed later (a full or read-only disk, a busy lock)."""
    if isinstance(exc, StorageError):
        exc = exc.os_error
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    return True  # a lock that was not had in time, or not known: worth another try


class RecordWriter:
    """Writes one run's record and files; a failure is logged (once per streak) and retried, never raised.

    Args:
        store: the state root's records.
        name, run_id: the run; the record is touched only while it is this run's.
        log: the supervisor's log.

    Attributes:
        record: this supervisor's copy of its record, every change applied
            (None before the claim); it replaces a file that became unreadable.
    """

    def __init__(self, store: RecordStore, name: str, run_id: str, log: Callable[[str], None]) -> None:
        self.store, self.name, self.run_id, self.log = store, name, run_id, log
        self.record: StatusRecord | None = None
        self._pending: dict[str, Change] = {}  # changes not written yet, by key
        self._failing: set[str] = set()  # what cannot be written right now (logged once per streak)
        self._last_error: BaseException | None = None  # why the latest write failed

    def update(self, mutate: Callable[[StatusRecord], StatusRecord | None]) -> StatusRecord | None:
        """Apply ``mutate(record)`` under the lock if the record is still this run's (no retry).

        ``mutate`` returns the record to store, or None to leave the file as
        it is.  An unreadable file is replaced from :attr:`record`.

        Returns:
            The record now stored (another run's, or None, if it is not ours anymore).

        Raises:
            StorageError: the record cannot be written (read-only or full state root).
            BadRecord: the file is unreadable and there is no copy yet (before the claim).
            OrchestratorError: its lock was not had within 30 s.
        """

        rec = lifecycle.update_run(self.store, self.name, self.run_id, mutate, fallback=self.record)
        if rec is not None and rec.run_id == self.run_id:
            self.record = rec
        return rec

    def change(self, key: str, change: Change) -> bool:
        """Change this run's record now, or with the next write that succeeds.

        ``change(rec)`` edits ``rec`` in place and must be idempotent (it may
        be applied to a record that has it already; a move is made with
        :func:`..records.lifecycle.move_from`).  It is applied to :attr:`record` at once, so the
        supervisor's decisions never wait for the write; a later change with
        the same ``key`` replaces one that is still waiting.

        Returns:
            True if it was written now.
        """
        if self.record is not None:
            change(self.record)
        self._pending.pop(key, None)
        self._pending[key] = change
        return self.flush()

    def flush(self) -> bool:
        """Write the waiting changes in one write.

        Returns:
            True if written (or if the record is no longer this run's: the
            changes are dropped); False if the record cannot be written now
            (logged at the first failure of a streak).
        """
        changes = list(self._pending.values())
        return self._write(lambda: self.update(_applying(changes)))

    def end(self, target: State, *, edit: Change | None = None, **fields: Any) -> bool:
        """Write the waiting changes, ``edit`` and the move to terminal ``target`` in one write.

        Through :func:`..records.lifecycle.change_state`, with :attr:`record` as the
        fallback for a damaged file.  If the run has ended already (the first
        end wins) the waiting changes are written all the same.

        Returns:
            True if written, or if there is nothing to write; False if the
            record cannot be written now.

        Raises:
            IllegalMove: ``target`` may not be entered from the run's state (a bug).
        """
        changes = list(self._pending.values())
        apply = _applying([*changes, edit] if edit is not None else changes)

        def write() -> None:
            rec = lifecycle.change_state(self.store, self.name, self.run_id, target, edit=apply, fallback=self.record, **fields)
            if rec is None:  # ended already, or not ours: the waiting changes only, as any change
                self.update(_applying(changes) if changes else lambda cur: None)
            else:
                self.record = rec

        return self._write(write)

    def _write(self, write: Callable[[], Any]) -> bool:
        """Run ``write()``; on a failure to write the record, log it and return False."""
        try:
            write()
        except (OrchestratorError, OSError) as exc:
            self.failed("the record", exc)
            return False
        self._pending.clear()
        self.written("the record")
        return True

    def write_file(self, path: Path, text: str) -> bool:
        """:func:`..core.files.write_atomic`, but a failure is logged and returns False instead of raising."""
        try:
            write_atomic(path, text)
        except (OrchestratorError, OSError) as exc:
            self.failed(str(path), exc)
            return False
        self.written(str(path))
        return True

    def failing(self, what: str) -> bool:
        """True while ``what`` (e.g. ``"the record"``) cannot be written."""
        return what in self._failing

    def failed(self, what: str, exc: BaseException) -> None:
        """Log that ``what`` cannot be written, once per streak of failures."""
        self._last_error = exc
        if what not in self._failing:
            self._failing.add(what)
            said = str(exc) if isinstance(exc, StorageError) else f"cannot write {what}: {exc}"  # a StorageError names its path
            self.log(f"{said}; will retry")

    def written(self, what: str) -> None:
        """Log that ``what`` could be written again after failures."""
        if what in self._failing:
            self._failing.discard(what)
            self.log(f"written again: {what}")

    def persist(self, writes: list[tuple[str, Callable[[], bool]]], limit_s: float) -> bool:
        """Do each write, in order, until all have succeeded, for at most ``limit_s`` seconds.

        ``writes`` are ``(what, write)``; ``write()`` returns True once done.
        Each round tries the writes not done yet; between rounds the wait
        starts at :data:`RETRY_FIRST_WAIT_S` and doubles up to
        :data:`RETRY_MAX_WAIT_S`.  A stop request does not cut this short; a
        failure retrying cannot cure (:func:`may_pass`) gives that write up.

        Returns:
            True if all were written; else False (what was given up is logged).
        """
        deadline = time.monotonic() + limit_s
        wait = RETRY_FIRST_WAIT_S
        todo = list(writes)
        while True:
            failed: dict[str, BaseException | None] = {}
            for what, write in todo:
                self._last_error = None
                if not write():
                    failed[what] = self._last_error
            todo = [(what, write) for what, write in todo if what in failed]
            if not todo:
                return True
            hopeless = [what for what, exc in failed.items() if not may_pass(exc)]
            if hopeless:  # e.g. a folder where the result file goes: waiting would hold the agent's name for nothing
                self.log(f"gave up writing {', '.join(hopeless)}: retrying cannot cure that")
                todo = [(what, write) for what, write in todo if what not in hopeless]
                if not todo:
                    return False
            if time.monotonic() + wait > deadline:
                self.log(
                    f"gave up writing {', '.join(what for what, _ in todo)} after {limit_s:g} s; "
                    "the record will be shown lost once this supervisor has exited"
                )
                return False
            time.sleep(wait)
            wait = min(wait * 2, RETRY_MAX_WAIT_S)


def _applying(changes: list[Change]) -> Callable[[StatusRecord], StatusRecord | None]:
    """A mutation that applies ``changes`` in order and stores the record (None: nothing to store if there are none)."""

    def mutate(cur: StatusRecord) -> StatusRecord | None:
        for change in changes:
            change(cur)
        return cur if changes else None

    return mutate
