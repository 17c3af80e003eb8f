"""The status record and its store: one JSON file per agent, written atomically.

A record is the status record of docs/files.md (a superset of the seed's ``agent``,
``task``, ``status``, ``started``, ``output_file``).  Writes go to a temp file
in the same folder, are fsynced and then ``os.replace``d over the record, all
under ``status/<agent>.json.lock`` (filelock), so readers never see half a
record and no read-modify-write is lost.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..core.errors import BadRecord, OrchestratorError, storage_error
from ..core.files import write_atomic
from ..core.paths import StatePaths
from ..core.states import State
from .shape import SPARSE, check_shape, executor_args, executor_args_key, executor_ref_key, is_type, parse_time
from .spec import RunSpec

__all__ = ["SCHEMA", "RecordStore", "StatusRecord", "read_session"]

#: The keys of ``options`` this version reads into a :class:`.spec.RunSpec` (besides ``<executor>_args``).
SPEC_KEYS = frozenset(RunSpec.__dataclass_fields__) - {"executor_args"}

#: Version of the record's JSON shape; bump when a field changes meaning.
#: 1: the launch request in an untyped ``options`` dict, other facts among unknown keys.
#: 2: the request is a :class:`.spec.RunSpec` (still stored as ``options``, with more keys); the
#:    facts schema 1 kept among unknown keys are typed fields (:data:`SPARSE`) of the same names.
SCHEMA = 2
#: Characters of the result text kept in the record (the rest is in the output file).
RESULT_PREVIEW_CHARS = 500
#: Characters of the task kept in the record; a longer task is cut to a preview
#: ending in "…" (the whole task is in the record's ``task_file``).
TASK_IN_RECORD_CHARS = 16384


def task_preview(task: str) -> str:
    """The task as a record keeps it: whole up to :data:`TASK_IN_RECORD_CHARS`, else cut, ending in "…"."""
    return task if len(task) <= TASK_IN_RECORD_CHARS else task[: TASK_IN_RECORD_CHARS - 1] + "…"


def is_task_preview(task: str) -> bool:
    """True if a record's ``task`` may be only :func:`task_preview`'s cut of a longer task."""
    return len(task) >= TASK_IN_RECORD_CHARS and task.endswith("…")


def read_session(paths: StatePaths, name: str) -> str | None:
    """The session ID stored for agent ``name`` (``sessions/<name>_session.txt``), or None."""
    try:
        sid = paths.session(name).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return sid or None


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
    task_file: str | None = None  # the whole task, byte-exact; the CLI reads it on stdin
    spec: RunSpec = dataclasses.field(default_factory=RunSpec)  # the launch request, stored as "options"
    stop_reason: str | None = None  # why the supervisor stopped the tree (:class:`..core.states.StopReason`)
    # Fields written only when set (schema 1 kept them among the unknown keys):
    isolation: str | None = None  # how the workspace was made (dir, worktree); kept by a resume
    worktree: dict[str, str] | None = None  # {"path", "branch", "repo"} of an isolated git worktree
    slot_granted_at: float | None = None  # time.time() a --max-parallel slot was granted (FIFO order)
    tree: list[list[Any]] | None = None  # [pid, start time] of every descendant the supervisor saw
    orphans: list[list[Any]] | None = None  # [pid, start time] a lost earlier run left, to be stopped
    orphans_stopped: list[int] | None = None  # the PIDs of those the supervisor found and stopped
    stop_grace_s: float | None = None  # a stop request's grace period (kill_agent.py --grace)
    api_error_status: int | None = None  # the HTTP status of the API error the run ended on
    stopped_after_result: bool | None = None  # the CLI lingered after its result event and was stopped
    on_complete: dict[str, Any] | None = None  # the --on-complete hook: {"argv", "running": true} while it runs, then {"argv", "exit_code", ["error"]}
    stream_lines_skipped: int | None = None  # stream lines the supervisor could not read
    transcript_bytes_lost: int | None = None  # output bytes the transcript could not take (full disk)
    # The reference the run's executor gave it (a job ID), opaque here; stored as ``<executor>_job_id``
    # (:func:`.shape.executor_ref_key`, e.g. ``slurm_job_id``), written only when set.
    executor_ref: str | None = None
    # Talking to the run (records/channel.py):
    messages: dict[str, Any] | None = None  # {"received", "delivered", "answered", "skipped", "last_received_at", "last_delivered_at", ["undelivered", "continued_in"]}
    keep_open_until: str | None = None  # a finished turn waits for another message until then (--keep-open)
    waiting_for: dict[str, Any] | None = None  # the permission question asked now: {"id", "tool_name", "input", "asked_at", "timeout_at"}
    questions: dict[str, int] | None = None  # {"asked", "allowed", "denied", "timed_out"} over the run
    # When the run entered each state before ``running`` ({"waiting"|"queued"|"starting": ISO time}), so the time
    # it spent waiting for --after, queued and starting can be told from its run time (``started``, ``finished``):
    entered: dict[str, str] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # unknown keys, kept and written back
    spec_extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # unknown keys of "options" (a newer toolkit's)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data: the spec as ``options``, unset optional fields left out, ``extra`` merged in at top level."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _NOT_STORED_AS_NAMED or (f.name in SPARSE and value is None):
                continue
            data[f.name] = value
            if f.name == "task_file":  # where schema 1 had it
                data["options"] = {**self.spec_extra, **self.spec.to_dict()}
        data["status"] = State(self.status).value
        ref_key = executor_ref_key(self.spec.executor)
        if ref_key and self.executor_ref is not None:
            data[ref_key] = self.executor_ref
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusRecord:
        """Build a record from stored data of this, an older or a newer schema (a schema-1 record loads as it is).

        Unknown keys go to ``extra`` (unknown keys of ``options`` to
        ``spec_extra``), and are written back, as is a newer ``schema``;
        missing ones take their defaults; an optional field of the wrong type
        (schema 1 never checked those) is kept among the unknown keys, not trusted.

        Raises:
            ValueError: not a record's shape (:func:`check_shape`).
        """
        check_shape(data)
        names = _STORED_FIELDS
        known = {k: v for k, v in data.items() if k in names and (k not in SPARSE or v is None or is_type(v, SPARSE[k]))}
        options = data.get("options") or {}
        spec = RunSpec.from_dict(options)
        ref_key = executor_ref_key(spec.executor)
        if ref_key and isinstance(data.get(ref_key), str):  # another type: kept among the unknown keys, not trusted
            known["executor_ref"] = data[ref_key]
        extra = {k: v for k, v in data.items() if k not in known and k != "options" and not (k == ref_key and "executor_ref" in known)}
        known.setdefault("run_id", "legacy")  # the seed's records had no run id
        known.setdefault("task", "")
        known["status"] = State(known.get("status", State.STARTING))
        known["schema"] = max(SCHEMA, data.get("schema", 1))  # written back in this schema, or a newer one's
        if data.get("schema", 1) < 2 and spec.resume_id is None and known.get("resumed_from") and not spec.context_from:
            spec = spec.replace(resume_id=known["resumed_from"])  # schema 1 kept the resumed session only at top level
        args_key = executor_args_key(spec.executor) if executor_args(options, spec.executor) is not None else None
        spec_extra = {k: v for k, v in options.items() if k not in SPEC_KEYS and k != args_key}
        return cls(**known, spec=spec, spec_extra=spec_extra, extra=extra)

    @property
    def state(self) -> State:
        return State(self.status)

    @property
    def hook_unfinished(self) -> bool:
        """True if the run has ended, has an ``--on-complete`` hook, and the hook's outcome is not in
        ``on_complete`` yet (it is about to run, or runs: ``{"argv", "running": true}``).

        Whether its supervisor is still there to run it is the executor's to tell
        (:meth:`..executors.base.Executor.probe`); :func:`..usecases.control.hook_running` asks both.
        """
        if not self.state.is_terminal or not self.spec.on_complete:
            return False
        return self.on_complete is None or self.on_complete.get("running") is True

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
            end = now if now is not None else time.time()
        return max(0.0, end - start)


#: Fields not stored under their own name: the unknown keys, the spec (``options``), the executor's reference.
_NOT_STORED_AS_NAMED = frozenset({"extra", "spec", "spec_extra", "executor_ref"})
#: The record's fields read from a key of the same name.
_STORED_FIELDS = frozenset(StatusRecord.__dataclass_fields__) - _NOT_STORED_AS_NAMED


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
            BadRecord: the file exists but cannot be read as this agent's
                record (not UTF-8, not JSON, not a record's shape, another
                agent's name, a folder, unreadable) (exit 2).
        """
        path = self.paths.status(name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
            try:
                with open(fd, "rb", closefd=False) as f:
                    raw = f.read()
            finally:
                os.close(fd)
        except FileNotFoundError:
            return None
        except NotADirectoryError as exc:  # status/ (or a folder above it) is a file: the state root is broken, not the record
            raise storage_error(exc, path) from exc
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW: a record is never read through a link out of the state root
                raise BadRecord(name, path, "a symlink: the toolkit never reads a record through one; remove it") from exc
            raise BadRecord(name, path, exc.strerror or str(exc)) from exc
        if not raw.strip():
            raise BadRecord(name, path, "empty file")
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadRecord(name, path, f"not UTF-8: byte {raw[exc.start]:#04x} at offset {exc.start}") from exc
        except RecursionError as exc:
            raise BadRecord(name, path, "JSON nested too deeply") from exc
        except ValueError as exc:
            raise BadRecord(name, path, f"not JSON: {exc}") from exc
        try:
            rec = StatusRecord.from_dict(data)
        except (ValueError, TypeError, RecursionError) as exc:
            raise BadRecord(name, path, str(exc) or "not a status record") from exc
        if rec.agent != name:
            raise BadRecord(name, path, f"it is agent {rec.agent!r}'s record")
        return rec

    @contextmanager
    def locked(self, name: str, timeout: float = 30.0) -> Iterator[None]:
        """Hold ``status/<name>.json.lock`` (filelock) for a read-modify-write.

        Raises:
            OrchestratorError: the lock was not acquired within ``timeout`` seconds.
            StorageError: the lock file cannot be made (read-only or full state root) (exit 74).
        """
        from filelock import FileLock, Timeout  # a supervisor reads and writes records without loading filelock

        path = self.paths.lock(name)
        try:
            self.paths.status_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path), timeout=timeout)
            lock.acquire()
        except Timeout as exc:
            raise OrchestratorError(f"timed out waiting for the lock of agent {name!r}; is a script stuck?") from exc
        except OSError as exc:
            raise storage_error(exc, path) from exc
        try:
            yield
        finally:
            lock.release()

    def _write_unlocked(self, record: StatusRecord, durable: bool = True) -> None:
        path = self.paths.status(record.agent)
        write_atomic(path, json.dumps(record.to_dict(), indent=2, sort_keys=False) + "\n", durable=durable)

    def write(self, record: StatusRecord) -> None:
        """Replace the agent's record atomically, under its lock."""
        with self.locked(record.agent):
            self._write_unlocked(record)

    def update(
        self,
        name: str,
        mutate: Callable[[StatusRecord | None], StatusRecord | None],
        durable: bool = True,
        fallback: StatusRecord | None = None,
    ) -> StatusRecord | None:
        """Read-modify-write the record under its lock.

        ``mutate`` gets the current record (or None) and returns the record to
        store, or None to leave the file as it is.  Returns what is stored now.
        ``durable=False`` skips the fsync (see :func:`write_atomic`).
        ``fallback``: the record to start from if the file is unreadable (a
        supervisor's last known copy of its own record; a copy of it is
        changed, never it); without it an unreadable file raises.

        Raises:
            BadRecord: the file is unreadable and no ``fallback`` was given.
            StorageError: the record cannot be written (exit 74); the file is as it was.
        """
        with self.locked(name):
            try:
                current = self.read(name)
            except BadRecord:
                if fallback is None:
                    raise
                current = copy.deepcopy(fallback)  # copied only here: the caller's copy stays as it was
            new = mutate(current)
            if new is None:
                return current
            self._write_unlocked(new, durable=durable)
            return new
