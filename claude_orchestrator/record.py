"""The status record and its store: one JSON file per agent, written atomically.

A record is DESIGN.md's status record (a superset of the seed's ``agent``,
``task``, ``status``, ``started``, ``output_file``).  Writes go to a temp file
in the same folder, are fsynced and then ``os.replace``d over the record, all
under ``status/<agent>.json.lock`` (filelock), so readers never see half a
record and no read-modify-write is lost.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import OrchestratorError
from .paths import StatePaths
from .states import TRANSITIONS, State

#: Version of the record's JSON shape; bump when a field changes meaning.
SCHEMA = 1
#: Characters of the result text kept in the record (the rest is in the output file).
RESULT_PREVIEW_CHARS = 500


def utc_now() -> str:
    """The current time as ISO-8601 UTC with milliseconds, e.g. ``2026-11-20T23:03:01.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an ISO-8601 time written by :func:`utc_now`, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclasses.dataclass
class StatusRecord:
    """One agent's current run, as stored in ``status/<agent>.json``.

    Times are ISO-8601 UTC strings; durations are seconds; memory is MiB;
    ``*_started`` process start times are seconds since the epoch as psutil
    reports them (``Process.create_time()``), kept to tell a reused PID apart.
    Unknown keys read from disk are kept in ``extra`` and written back.
    """

    agent: str
    run_id: str
    task: str
    status: State = State.STARTING
    schema: int = SCHEMA
    created: str | None = None  # when the launch was accepted
    started: str | None = None  # when the CLI was started
    finished: str | None = None
    status_changed: str | None = None  # when ``status`` last changed (the time of a change event)
    duration_s: float | None = None
    last_activity: str | None = None
    cwd: str | None = None
    model: str | None = None
    session_id: str | None = None
    resumed_from: str | None = None  # session ID given to -r
    forked_from: str | None = None  # agent whose session was forked (--session-from)
    pid: int | None = None  # the CLI's
    pid_started: float | None = None
    supervisor_pid: int | None = None
    supervisor_started: float | None = None
    exit_code: int | None = None  # the CLI's exit status; negative: killed by that signal
    is_error: bool | None = None
    error: str | None = None
    attempt: int = 1  # 1 + retries used so far
    num_turns: int = 0
    last_tool: dict[str, str] | None = None  # {"name", "input" preview} of the latest tool call
    tokens: dict[str, int] | None = None  # {"input", "output"} so far (input includes cache tokens)
    cost_usd: float | None = None  # from result events (the CLI reports cost only there)
    usage: dict[str, Any] | None = None
    peak_rss_mb: float | None = None  # of the CLI's whole process tree
    memory_warnings: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    result: str | None = None  # a preview; the whole text is in output_file
    output_file: str | None = None
    transcript_file: str | None = None
    log_file: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)  # the launch request
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (``extra`` merged in at top level)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        data["status"] = State(self.status).value
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusRecord:
        """Build a record from stored data of this or an older schema.

        Unknown keys go to ``extra``; missing ones take their defaults.

        Raises:
            ValueError: ``agent`` is missing or ``status`` is not a known state.
        """
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        if "agent" not in known:
            raise ValueError("record lacks 'agent'")
        known.setdefault("run_id", "legacy")  # the seed's records had no run id
        known.setdefault("task", "")
        known["status"] = State(known.get("status", State.STARTING))
        return cls(**known, extra=extra)

    @property
    def state(self) -> State:
        return State(self.status)

    def changed_at(self) -> str | None:
        """When the run entered its current state (ISO-8601 UTC).

        ``status_changed`` where written; for records written before it
        existed, the best stamp the state has (finished, started, created).
        """
        if self.status_changed:
            return self.status_changed
        state = State(self.status)
        if state.is_terminal and self.finished:
            return self.finished
        if state is State.RUNNING and self.started:
            return self.started
        return self.created

    def elapsed_s(self, now: float | None = None) -> float | None:
        """Seconds from start (or creation) to finish, or to ``now`` if still active."""
        start = parse_time(self.started) or parse_time(self.created)
        if start is None:
            return None
        end = parse_time(self.finished)
        if end is None:
            import time

            end = now if now is not None else time.time()
        return max(0.0, end - start)

    def transition(self, target: State, **fields: Any) -> None:
        """Move to ``target``, checking it may be entered from the current state.

        Stamps ``status_changed``; terminal states also stamp ``finished`` and
        ``duration_s``.  ``fields`` are set on the record as well.

        Raises:
            OrchestratorError: the transition is not allowed (a bug, not bad input).
        """
        current = State(self.status)
        if current not in TRANSITIONS[target]:
            raise OrchestratorError(f"{self.agent}: cannot go from {current} to {target}")
        self.status = target
        for key, value in fields.items():
            setattr(self, key, value)
        now = utc_now()
        self.status_changed = now
        if target.is_terminal:
            self.finished = self.finished or now
            self.status_changed = self.finished
            start = parse_time(self.started) or parse_time(self.created)
            end = parse_time(self.finished)
            if start is not None and end is not None:
                self.duration_s = round(max(0.0, end - start), 3)


class RecordStore:
    """Reads and writes the status records of one state root.

    Args:
        paths: the state root's :class:`StatePaths`.
    """

    def __init__(self, paths: StatePaths) -> None:
        self.paths = paths

    def read(self, name: str) -> StatusRecord | None:
        """The agent's record, or None if it has none (the slot is free).

        Lock-free: writers replace the file atomically.

        Raises:
            OrchestratorError: the file exists but is not a valid record.
        """
        path = self.paths.status(name)
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return StatusRecord.from_dict(json.loads(raw))
        except (ValueError, TypeError) as exc:
            raise OrchestratorError(
                f"{path} is not a valid status record ({exc}); move it aside or run clear_outputs.py {name} --purge"
            ) from exc

    @contextmanager
    def locked(self, name: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold ``status/<name>.json.lock`` (filelock) for a read-modify-write.

        Raises:
            OrchestratorError: the lock was not acquired within ``timeout`` seconds.
        """
        from filelock import FileLock, Timeout

        self.paths.status_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.paths.lock(name)), timeout=timeout)
        try:
            with lock:
                yield
        except Timeout as exc:
            raise OrchestratorError(f"timed out waiting for the lock of agent {name!r}; is a script stuck?") from exc

    def _write_unlocked(self, record: StatusRecord, durable: bool = True) -> None:
        path = self.paths.status(record.agent)
        write_atomic(path, json.dumps(record.to_dict(), indent=2, sort_keys=False) + "\n", durable=durable)

    def write(self, record: StatusRecord) -> None:
        """Replace the agent's record atomically, under its lock."""
        with self.locked(record.agent):
            self._write_unlocked(record)

    def update(
        self, name: str, mutate: Callable[[StatusRecord | None], StatusRecord | None], durable: bool = True
    ) -> StatusRecord | None:
        """Read-modify-write the record under its lock.

        ``mutate`` gets the current record (or None) and returns the record to
        store, or None to leave the file as it is.  Returns what is stored now.
        ``durable=False`` skips the fsync (see :func:`write_atomic`).
        """
        with self.locked(name):
            current = self.read(name)
            new = mutate(current)
            if new is None:
                return current
            self._write_unlocked(new, durable=durable)
            return new

    def delete(self, name: str) -> None:
        """Remove the agent's record (the lock file stays, as filelock expects)."""
        with self.locked(name):
            try:
                self.paths.status(name).unlink()
            except FileNotFoundError:
                pass


def write_atomic(path: Path, text: str, durable: bool = True) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half.

    A temp file in the same folder, fsync, then ``os.replace``.  Without the
    fsync (``durable=False``) readers still never see half a file; only a
    crash of the whole machine can lose the write.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
