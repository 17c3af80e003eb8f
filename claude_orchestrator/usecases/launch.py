"""Starting runs: check the request, write the first record, hand the run to its executor, return.

This is the launch path, so it stays cheap: no psutil (a local run's liveness
is a lock probe, :meth:`..executors.local.LocalExecutor.probe`).  The launch never waits for
the CLI; the supervisor (:mod:`..supervisor`) owns the run.

A launch, in order: :func:`resolve_spec` completes the caller's
:class:`..records.spec.RunSpec` (cwd, CLI, dependencies); the task file and the log are
written; :func:`_claim_run` writes the first record in its initial state
(:func:`..records.lifecycle.create`); the executor starts the supervisor.  Whatever
fails first undoes what was made: no half-made run is left.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from ..claude.invocation import find_claude
from ..core import locks
from ..core.errors import BadInput, Conflict, NotFound, OrchestratorError, storage_error
from ..core.files import write_atomic
from ..core.modes import dir_mode, file_mode
from ..core.paths import StatePaths, refuse_symlink, validate_name
from ..core.programs import command
from ..core.states import State
from ..executors import registry
from ..executors.base import Executor, Handoff
from ..executors.registry import get_executor
from ..records import lifecycle
from ..records.spec import RunSpec
from ..records.status_record import RecordStore, StatusRecord, read_session, task_preview
from .control import hook_running, is_alive, liveness, reconcile
from .isolation import prepare, remove_worktree
from .scheduling import take_slot_or_enqueue

#: Seconds a launch waits for a previous supervisor of the agent that is still exiting.
PREVIOUS_SUPERVISOR_WAIT_S = 5.0
#: Runs a fan-out claims before it hands them to their executor together.  A claimed run holds up to
#: three descriptors until then (life lock, log, slot): 100 stay well under a common ``ulimit -n`` of 1024.
LAUNCH_CHUNK = 100


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261120T230301Z-3fa9c1``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def active_runs(store: RecordStore, names: list[str], records: list[StatusRecord | None] | None = None) -> list[StatusRecord]:
    """The records of those of ``names`` whose run is active, reconciled (a run whose supervisor is gone is ``lost``, not active).

    ``records``: the records of ``names`` already read (None for an agent without one), so none is parsed twice.

    Raises:
        BadRecord: a record is unreadable (exit 2).
    """
    if records is None:
        records = [store.read(name) for name in names]
    read = [rec for rec in records if rec is not None and rec.state.is_active]
    answers = liveness(store, read)
    return [rec for rec in (reconcile(store, r, a) for r, a in zip(read, answers, strict=True)) if rec.state.is_active]


def busy_error(rec: StatusRecord, advice: str = "wait for it, stop it, or pick another name") -> Conflict:
    """The one message for an agent whose run is active (exit 3): "agent 'a' is already running (run R); ADVICE"."""
    return Conflict(f"agent {rec.agent!r} is already {rec.status} (run {rec.run_id}); {advice}")


def hook_busy_error(rec: StatusRecord) -> Conflict:
    """The message for an agent whose ended run's ``--on-complete`` hook still runs (exit 3)."""
    return Conflict(
        f"agent {rec.agent!r} is still running its --on-complete hook (run {rec.run_id}, {rec.status}); "
        f"wait for it ({command('wait_agents')} {rec.agent}), or stop it ({command('kill_agent')} {rec.agent})"
    )


def refuse_busy(store: RecordStore, names: list[str], advice: str | None = None) -> None:
    """Raise :class:`Conflict` (exit 3) if a run of one of ``names`` is active, or has ended
    but still runs its ``--on-complete`` hook (:func:`..usecases.control.hook_running`).

    Asked of one name, the message is :func:`busy_error`'s (:func:`hook_busy_error`'s for
    a hook); of several, one line lists them: "already active: a (running), b (completed, its
    --on-complete hook running); ADVICE".

    Raises:
        Conflict: one or more are active.  BadRecord: a record is unreadable (exit 2).
    """
    records = [store.read(n) for n in names]  # each parsed once (a fan-out of 1,000 reads 1,000)
    active = active_runs(store, names, records)
    hooked = [rec for rec in records if rec is not None and hook_running(store, rec)]
    if hooked and not active and len(names) == 1:
        raise hook_busy_error(hooked[0])
    active += hooked
    if active and len(names) == 1:
        raise busy_error(active[0], *([advice] if advice else []))
    if active:
        listed = ", ".join(f"{r.agent} ({r.status}{', its --on-complete hook running' if r.state.is_terminal else ''})" for r in active)
        raise Conflict(f"already active: {listed}; {advice or 'wait for them, stop them, or use --names'}")


def orphan_entries(rec: StatusRecord) -> list:
    """``[pid, start time]`` of the processes a run whose supervisor is gone may have left: its CLI and its recorded tree.

    Also the ``orphans`` that run was handed, if it died before stopping them.
    Carried into the next run's record (``orphans``), whose supervisor stops
    those still alive (same PID *and* start time) before it starts its CLI:
    no process of an old run is ever left without a record naming it.
    """
    cli = [[rec.pid, rec.pid_started]] if rec.pid is not None else []
    # and the orphans it was handed itself, if it died before it stopped them
    return [*cli, *(rec.tree or []), *(rec.orphans or [])]  # checked where they are read (procs.find_entries)


def resolve_spec(paths: StatePaths, name: str, spec: RunSpec) -> RunSpec:
    """Check ``spec`` and complete it: dependencies, the cwd (absolute), the CLI executable.

    ``--with-context-from A`` implies ``--after A`` and runs in A's cwd, where
    the CLI keeps A's session.

    Raises:
        BadInput: a bad option or name, a cwd that is not a directory, a
            permission mode this CLI refuses (exit 2).
        NotFound: an ``after`` or ``context_from`` agent has no record (exit 4), named
            with the option that was given (``--after`` or ``--with-context-from``).
        CliMissing: no Claude CLI (exit 127).
    """
    after = list(dict.fromkeys(spec.after))
    option = {dep: "--after" for dep in after}
    cwd = spec.cwd
    if spec.context_from:
        cwd = _context_cwd(paths, spec)
        if spec.context_from not in after:
            after.append(spec.context_from)
            option[spec.context_from] = "--with-context-from"
    for dep in after:
        validate_name(dep)
        if dep == name:
            raise BadInput(f"agent {name!r} cannot wait for itself")
        if not paths.status(dep).exists():
            raise NotFound(f"{option[dep]} {dep}: no such agent; launch it first (see {command('check_status')})")
    spec.claude.validate()
    spec.limits.validate()
    get_executor(spec.executor)
    workdir = Path(cwd or os.getcwd()).expanduser()
    if not workdir.is_dir():
        raise BadInput(f"--cwd {str(workdir)!r} is not a directory")
    claude_bin = find_claude()
    if spec.claude.permission_mode:  # refused now if this CLI's modes are known; else its supervisor checks
        from ..claude.features import cached_features  # asks the CLI (cached): only with --permission-mode

        known = cached_features(paths, claude_bin)
        refused = known.refuse_permission_mode(spec.claude.permission_mode) if known else None
        if refused:
            raise BadInput(refused)
    return spec.replace(after=tuple(after), cwd=str(workdir.resolve()), claude_bin=claude_bin)


def _context_cwd(paths: StatePaths, spec: RunSpec) -> str | None:
    """The cwd of a ``--with-context-from`` run: its source agent's, where the CLI keeps that session."""
    source = spec.context_from
    validate_name(source)
    if spec.resume_id:
        raise BadInput("--with-context-from starts a new agent from another's session; it cannot be combined with a resume")
    if spec.isolation != "none":
        raise BadInput("--with-context-from runs where NAME's session was made (the CLI keeps sessions per directory); drop --isolation")
    rec = RecordStore(paths).read(source)
    folder = session_folder(rec) if rec is not None else None
    if not folder:
        return spec.cwd
    if spec.cwd is not None and Path(spec.cwd).expanduser().resolve() != Path(folder).resolve():
        raise BadInput(
            f"--with-context-from {source}: its session lives in {folder} (the CLI keeps sessions "
            "per directory); drop --cwd or give that one"
        )
    return folder


def session_folder(rec: StatusRecord) -> str | None:
    """The folder where the CLI keeps agent ``rec.agent``'s session: where a resume without ``--cwd`` runs.

    The run's ``cwd``; but a resume that ran in another folder (``--cwd``) and did
    not complete leaves the agent in the folder it had before (the spec's
    ``session_cwd``).  Measured: a CLI before 2.1.330 (2.1.197) looks a session up
    only in the folder it runs in, so such a resume fails with "No conversation
    found", and had it moved the agent's folder, every later resume would fail
    too; 2.1.330 and later find the session from any folder (and keep writing it
    where it was made), so going back is right on both.  A resume that completed
    elsewhere moves the agent there (it could only complete on a CLI that finds
    the session from that folder).  None if the record has no cwd.
    """
    if rec.spec.session_cwd and rec.spec.resume_id and not rec.spec.fork and rec.state is not State.COMPLETED:
        return rec.spec.session_cwd
    return rec.cwd


def _undo(paths_made: list[Path]) -> None:
    """Remove the run's own files that a launch that failed made: nothing is left half-made.

    The agent's folder ``outputs/<name>/`` stays: launches of the same name
    may be writing their own files into it at this moment.
    """
    for path in reversed(paths_made):
        try:
            path.unlink()
        except OSError:
            pass


def _write_run_files(paths: StatePaths, name: str, run_id: str, task: str, made: list[Path]) -> int:
    """Write the task file (byte-exact, the CLI's stdin) and open the log; what is made is appended to ``made``.

    Returns:
        The log's descriptor (append, close-on-exec).

    Raises:
        BadInput: ``outputs/<name>`` is a symlink (exit 2).
        StorageError: the state root cannot be written (exit 74).
    """
    try:
        paths.ensure()
    except OSError as exc:
        raise storage_error(exc) from exc
    run_dir = refuse_symlink(paths.run_dir(name))
    try:
        run_dir.mkdir(mode=dir_mode(), exist_ok=True)  # simultaneous launches of one name all get here
        task_file = paths.task_file(name, run_id)
        write_atomic(task_file, task.encode("utf-8"), durable=False)
        made.append(task_file)
        log_path = paths.log(name, run_id)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, file_mode())
        made.append(log_path)
    except OSError as exc:
        raise storage_error(exc) from exc
    return log_fd


def launch(
    paths: StatePaths, name: str, task: str, spec: RunSpec | None = None, *, inherit: dict | None = None, waits: bool = False
) -> StatusRecord:
    """Start one run of agent ``name`` in the background and return its record at once.

    The launcher takes the agent's life lock and, if the executor keeps the
    queue, a slot is free and no run is queued, a ``--max-parallel`` slot, and
    hands both to the supervisor as open descriptors; otherwise the run is
    recorded ``queued`` and its supervisor waits for its turn.

    Args:
        paths: the state root.
        name: the agent (checked by :func:`validate_name` before any file is touched).
        task: the prompt (UTF-8 text without NUL bytes, any size): written
            byte-exact to ``outputs/<name>/<run_id>.task``, which the CLI reads on
            stdin; the record keeps it whole up to :data:`..records.status_record.TASK_IN_RECORD_CHARS`.
        spec: what to run (default: a plain run in the caller's cwd); completed by :func:`resolve_spec`.
        inherit: record fields a resumed run keeps from the run before (``isolation``, ``worktree``).
        waits: the caller will wait for the run's end (``--wait``): its executor may start the
            supervisor the way that is quicker to the CLI's start (:attr:`..executors.base.Handoff.caller_waits`).

    Returns:
        The record as written: status ``waiting``, ``queued`` or ``starting``, with run id, session ID and files.

    Raises:
        BadInput: bad name, empty task, missing cwd, bad option, an unreadable
            record, ``outputs/<name>`` is a symlink (exit 2).
        CliMissing: no Claude CLI (exit 127); nothing is written.
        Conflict: the agent is waiting, queued, starting or running, or its ended run's
            ``--on-complete`` hook still runs (exit 3).
        StorageError: the state root cannot be written (exit 74); nothing is left half-written.
        OrchestratorError: the executor could not start the run, e.g. a ``SlurmError``
            (sbatch refused the job, exit 69; its message names the agent); the run is recorded ``failed``.
    """
    claimed = _prepare(paths, name, task, spec, inherit, waits)
    executor = get_executor(claimed.record.spec.executor)
    try:
        failed = executor.submit(paths, [(claimed.record, claimed.handoff)])[0]
    finally:
        claimed.release()
    if failed is not None:
        return _submit_failed(paths, claimed.record, failed, raise_refusal=True)
    # The supervisor records its own PID and start time when it claims the
    # run; a stop that comes first marks the record killed and the supervisor
    # then finds nothing to do.
    return claimed.record


class _Claimed(NamedTuple):
    """A run whose files and first record are written, not yet handed to its executor.

    Attributes:
        record: the record as written.
        handoff: the descriptors the supervisor takes over (the life lock, a slot) and the log's.
    """

    record: StatusRecord
    handoff: Handoff

    def release(self) -> None:
        """Close the launcher's copies of the descriptors (the supervisor holds its own once submitted)."""
        for fd in (self.handoff.log_fd, *self.handoff.held):
            os.close(fd)


def _prepare(paths: StatePaths, name: str, task: str, spec: RunSpec | None, inherit: dict | None, waits: bool = False) -> _Claimed:
    """Check the request, write the task file and the log, and claim the run (:func:`_claim_run`).

    Raises:
        what :func:`launch` raises before its executor is asked; nothing is left half-made.
    """
    validate_name(name)
    if not task or not task.strip():
        raise BadInput("the task is empty; give it as an argument or with --task-file")
    spec = resolve_spec(paths, name, spec or RunSpec())
    executor = get_executor(spec.executor)
    run_id = new_run_id()
    made: list[Path] = []  # undone if the launch fails
    try:
        log_fd = _write_run_files(paths, name, run_id, task, made)
    except BaseException:
        _undo(made)
        raise
    try:
        record, held = _claim_run(paths, name, run_id, task, spec, executor, inherit or {})
    except BaseException:
        os.close(log_fd)
        _undo(made)
        raise
    return _Claimed(record, Handoff(tuple(held), log_fd, waits))


def _submit_failed(paths: StatePaths, record: StatusRecord, exc: BaseException, *, raise_refusal: bool) -> StatusRecord:
    """Record a run its executor could not start ``failed`` (its error says why) and return that record.

    An executor's refusal (an :class:`OrchestratorError`, e.g. sbatch refused the job)
    is re-raised with the agent's name when ``raise_refusal``.
    """
    store = RecordStore(paths)
    failed = lifecycle.change_state(store, record.agent, record.run_id, State.FAILED,
                                    error=f"could not start the supervisor: {exc}", is_error=True)
    if raise_refusal and isinstance(exc, OrchestratorError):  # the caller is told, with the scheduler's message
        exc.args = (f"agent {record.agent!r}: {exc}",)
        raise exc
    return failed or record


def _new_record(paths: StatePaths, name: str, run_id: str, task: str, spec: RunSpec, workdir: str) -> StatusRecord:
    """The first record of a run (its state is decided when it is written: :func:`..records.lifecycle.create`)."""
    return StatusRecord(
        agent=name,
        run_id=run_id,
        task=task_preview(task),
        cwd=workdir,
        model=spec.claude.model,
        session_id=str(uuid.uuid4()) if spec.new_session else spec.resume_id,
        resumed_from=spec.resume_id,
        forked_from=spec.forked_from,
        output_file=str(paths.latest_output(name)),
        transcript_file=str(paths.transcript(name, run_id)),
        log_file=str(paths.log(name, run_id)),
        task_file=str(paths.task_file(name, run_id)),
        spec=spec,
    )


def _claim_run(
    paths: StatePaths, name: str, run_id: str, task: str, spec: RunSpec, executor: Executor, inherit: dict
) -> tuple[StatusRecord, list[int]]:
    """Make the run's workspace and write its first record, under the agent's lock.

    Takes the agent's life lock and, if the executor keeps the queue and one
    is free and nobody queues, a ``--max-parallel`` slot; the initial state is
    ``waiting`` (``after``), ``queued`` or ``starting``.  A previous run whose
    supervisor is gone hands its leftover processes on (:func:`orphan_entries`).

    Returns:
        ``(record as written, descriptors holding the life lock and maybe a slot)``.

    Raises:
        Conflict: the agent is active (exit 3); BadRecord: its record is unreadable (exit 2);
        StorageError (exit 74).  The workspace is removed again and no descriptor stays open.
    """
    store = RecordStore(paths)
    workdir, worktree = spec.cwd, None
    if spec.isolation != "none":
        refuse_busy(store, [name])  # before making a workspace for nothing
        made_dir, worktree = prepare(paths, name, run_id, spec.isolation, Path(spec.cwd))
        workdir = str(made_dir)
    record = _new_record(paths, name, run_id, task, spec, workdir)
    record.isolation = inherit.get("isolation") or (spec.isolation if spec.isolation != "none" else None)
    record.worktree = worktree or inherit.get("worktree")
    held: list[int] = []  # descriptors holding the life lock and a slot, for the supervisor

    def decide(current: StatusRecord | None) -> State:
        if current is not None and is_alive(store, current):  # under the lock: no reconcile here
            raise busy_error(current)
        if current is not None and hook_running(store, current):  # ended, but its supervisor runs the hook
            raise hook_busy_error(current)
        gone = current is not None and (current.state is State.LOST or current.state.is_active)  # its supervisor is gone
        if gone and current.spec.executor in registry.EXECUTORS:  # an unknown executor's processes are not ours to stop
            record.orphans = orphan_entries(current) or None
        # A previous supervisor may still be exiting after writing its final record.
        alive_fd = locks.lock_within(paths.alive_lock(name), timeout_s=PREVIOUS_SUPERVISOR_WAIT_S)
        if alive_fd is None:
            raise Conflict(f"agent {name!r}'s previous supervisor is still exiting; try again in a few seconds")
        held.append(alive_fd)
        if current is not None:
            _keep_previous(paths, current)
        return _initial_state(paths, record, executor, held)

    try:
        lifecycle.create(store, record, decide)
    except BaseException:
        for fd in held:
            os.close(fd)
        if record.status is State.QUEUED:
            locks.remove_from_queue(paths, name)
        if worktree:
            remove_worktree(worktree)
        raise
    return record, held


def _keep_previous(paths: StatePaths, previous: StatusRecord) -> None:
    """Keep the record a new run replaces as ``outputs/NAME/RUN_ID.record.json`` (the timeline shows every run).

    Best effort: a run ID not of a run ID's shape (a seed's ``legacy``) or a
    write that fails loses only that history, never the launch.
    """
    try:
        write_atomic(paths.run_record(previous.agent, previous.run_id), json.dumps(previous.to_dict()) + "\n", durable=False)
    except (BadInput, OSError):
        pass


def _initial_state(paths: StatePaths, record: StatusRecord, executor: Executor, held: list[int]) -> State:
    """``waiting`` if the run has dependencies (its supervisor takes a slot once they are done);
    ``queued`` if the executor's scheduler keeps the queue (a cluster job is pending until it starts);
    else ``starting`` with a slot (appended to ``held``), or ``queued``."""
    limits = record.spec.limits
    if record.spec.after:
        return State.WAITING
    if not executor.keeps_queue:
        return State.QUEUED  # in the cluster's queue; its supervisor moves it on when the scheduler starts it
    if not limits.max_parallel:
        return State.STARTING
    slot_fd, granted = take_slot_or_enqueue(paths, record.agent, record.run_id, int(limits.max_parallel))
    if slot_fd is None:
        return State.QUEUED
    held.append(slot_fd)
    record.slot_granted_at = granted
    return State.STARTING


def resume(
    paths: StatePaths, name: str, task: str, spec: RunSpec | None = None, *, session_from: str | None = None, waits: bool = False
) -> StatusRecord:
    """Continue agent ``name``'s session with a new task, or fork ``session_from``'s into it.

    Without ``session_from`` the run resumes ``sessions/<name>_session.txt``
    (``-r``); its cwd defaults to the agent's folder (:func:`session_folder`:
    its previous run's cwd, unless that run was a resume elsewhere that did not
    complete), where the CLI keeps the session; the run's spec records that
    folder as ``session_cwd``, so a resume of it given another ``--cwd`` that
    fails does not move the agent.  With ``session_from``, ``name`` starts from
    a fork of that agent's session (``-r <id> --fork-session``), in that
    agent's folder, and the other agent is left untouched.  ``waits``: as :func:`launch`'s.

    Raises:
        NotFound: there is no session to resume (exit 4).
        and everything :func:`launch` raises.
    """
    validate_name(name)
    source = session_from or name
    validate_name(source)
    store = RecordStore(paths)
    refuse_busy(store, [name], "wait for it to end before resuming it")
    current = store.read(name)
    session = read_session(paths, source)
    if session is None:
        raise NotFound(
            f"agent {source!r} has no session to resume; start one with: "
            f"{command('launch_agent')} {source} \"TASK\""
        )
    spec = spec or RunSpec()
    previous = current if source == name else store.read(source)
    folder = session_folder(previous) if previous is not None else None
    inherit = {}
    if spec.cwd is None and folder and Path(folder).is_dir():
        spec = spec.replace(cwd=folder)
    if source == name and previous is not None and previous.worktree:
        # the worktree stays the agent's, wherever this run works (a resume given another --cwd, which may fail
        # and leave the next one back in the worktree): clear_outputs.py keeps guarding its work and removes it
        inherit = {"isolation": previous.isolation, "worktree": previous.worktree}
    if source == name and folder:
        spec = spec.replace(session_cwd=folder)
    spec = spec.replace(resume_id=session, fork=session_from is not None, forked_from=session_from)
    return launch(paths, name, task, spec, inherit=inherit, waits=waits)


def launch_many(paths: StatePaths, jobs: list[tuple[str, str, RunSpec]]) -> list[StatusRecord]:
    """Launch one agent per ``(name, task, spec)``; return their records at once.

    Every name and task is checked, and every name checked for a live run,
    before the first launch, so a refused fan-out launches nothing.  The runs
    are claimed (files and first record) in order, up to :data:`LAUNCH_CHUNK`
    at a time, and each chunk handed to its executors together (:meth:`Executor.submit`);
    a scheduler's chunk (:attr:`Executor.submits_in_main_thread` false) is submitted in
    a background thread while the next chunk is claimed.

    Raises:
        BadInput: a bad or repeated name, an empty task (exit 2).
        Conflict: one of the names is active (exit 3).
        CliMissing: no Claude CLI (exit 127).
        OrchestratorError: a run could not be started (e.g. sbatch refused a job, exit 69): it is
            recorded ``failed``, and the message names it, the others refused, and the agents
            that run on; or a launch failed part way, and the message names the agents launched
            before it, which run on.
    """
    names = [validate_name(n) for n, _, _ in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"agent names must be unique; repeated: {', '.join(dupes)}")
    for name, task, _ in jobs:
        if not task.strip():
            raise BadInput(f"the task for {name} is empty")
    find_claude()
    refuse_busy(RecordStore(paths), names)
    launched: list[StatusRecord] = []
    refused: list[tuple[StatusRecord, OrchestratorError]] = []
    in_flight: Future | None = None  # the previous chunk's submission, in a background thread

    def settle() -> None:
        nonlocal in_flight
        if in_flight is not None:
            done, in_flight = in_flight, None
            records, chunk_refused = done.result()
            launched.extend(records)
            refused.extend(chunk_refused)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="submit") as background:
        for first in range(0, len(jobs), LAUNCH_CHUNK):
            claimed: list[_Claimed] = []
            try:
                for name, task, spec in jobs[first:first + LAUNCH_CHUNK]:
                    claimed.append(_prepare(paths, name, task, spec, None))
            except OrchestratorError as exc:
                settle()
                launched.extend(_submit_claimed(paths, claimed)[0])  # e.g. the state root filled up: those claimed before it run
                running = [r.agent for r in launched if r.state is not State.FAILED]
                if running:
                    exc.args = (f"{exc}; launched before it and running: {', '.join(running)}",)
                raise
            except BaseException:
                settle()
                _submit_claimed(paths, claimed)
                raise
            settle()  # the chunks are submitted in order: a run's --after job exists before it is submitted
            if any(get_executor(c.record.spec.executor).submits_in_main_thread for c in claimed):
                records, chunk_refused = _submit_claimed(paths, claimed)
                launched.extend(records)
                refused.extend(chunk_refused)
            else:  # a scheduler's: submitted while the next chunk is claimed
                in_flight = background.submit(_submit_claimed, paths, claimed)
        settle()
    if refused:
        raise _refusal_report(launched, refused)
    return launched


def _submit_claimed(paths: StatePaths, claimed: list[_Claimed]) -> tuple[list[StatusRecord], list[tuple[StatusRecord, OrchestratorError]]]:
    """Hand the claimed runs to their executors, each executor once for all its runs (:meth:`Executor.submit`).

    Returns:
        ``(records in order, refusals)``: a run its executor could not start is recorded
        ``failed`` (:func:`_submit_failed`); those refused with an
        :class:`OrchestratorError` (e.g. sbatch refused the job) are also listed with the error.
    """
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(claimed):
        groups.setdefault(c.record.spec.executor, []).append(i)
    answers: list[BaseException | None] = [None] * len(claimed)
    try:
        for executor_name, group in groups.items():
            got = get_executor(executor_name).submit(paths, [(claimed[i].record, claimed[i].handoff) for i in group])
            for i, answer in zip(group, got, strict=True):
                answers[i] = answer
    finally:
        for c in claimed:
            c.release()
    records, refused = [], []
    for c, answer in zip(claimed, answers, strict=True):
        if answer is None:
            records.append(c.record)
            continue
        records.append(_submit_failed(paths, c.record, answer, raise_refusal=False))
        if isinstance(answer, OrchestratorError):
            refused.append((c.record, answer))
    return records, refused


def _refusal_report(records: list[StatusRecord], refused: list[tuple[StatusRecord, OrchestratorError]]) -> OrchestratorError:
    """One error for a fan-out some of whose runs its executor refused: the first refusal with its agent and
    message, the others refused by name, and the agents that run (exit status: the first refusal's)."""
    first_rec, first = refused[0]
    first.args = (f"agent {first_rec.agent!r}: {first}",)
    others = [r.agent for r, _ in refused[1:]]
    if others:
        first.args = (f"{first.args[0]}; also refused: {', '.join(others)}",)
    running = [r.agent for r in records if r.state is not State.FAILED]
    if running:
        first.args = (f"{first.args[0]}; launched and running: {', '.join(running)}",)
    return first
