"""Starting runs: validate, record ``starting``, spawn the detached supervisor, return.

This is the launch path, so it stays cheap: psutil is imported only when an
existing record must be checked for liveness.  The launch never waits for the
CLI; the supervisor (:mod:`.supervisor`) owns the run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

from . import locks
from .claude_cli import ClaudeOptions, find_claude
from .errors import BadInput, Conflict, NotFound, storage_error
from .limits import RunLimits
from .paths import StatePaths, refuse_symlink, validate_name
from .record import RecordStore, StatusRecord, task_preview, utc_now, write_atomic
from .states import State

#: What the supervisor imports.  It runs as ``python -S`` (no site hooks: a
#: ``.pth`` file that imports something costs every supervisor start-up time
#: and memory for the whole run) and finds these through ``PYTHONPATH``.
SUPERVISOR_PACKAGES = ("claude_orchestrator", "psutil", "filelock", "watchdog")
_supervisor_path: list[str] | None = None


def supervisor_command(paths: StatePaths, held: list[int], name: str, run_id: str) -> tuple[list[str], dict[str, str]]:
    """The supervisor's argument vector and environment.

    ``held`` are the inherited descriptors: the life lock, then a slot if any.
    The environment is the caller's, with ``PYTHONPATH`` naming the folders of
    :data:`SUPERVISOR_PACKAGES` and the caller's own value kept in
    ``ORCHESTRATOR_CALLER_PYTHONPATH`` (the supervisor puts it back before it
    starts anything).  If a package's folder cannot be found the supervisor
    starts with the site hooks, as any script would.
    """
    global _supervisor_path
    if _supervisor_path is None:
        from importlib.util import find_spec

        dirs: list[str] = []
        for package in SUPERVISOR_PACKAGES:
            spec = find_spec(package)
            locations = list(spec.submodule_search_locations or []) if spec else []
            if not locations:
                dirs = []
                break
            folder = str(Path(locations[0]).parent)
            if folder not in dirs:
                dirs.append(folder)
        _supervisor_path = dirs
    argv = [sys.executable, "-m", "claude_orchestrator.supervisor", "--root", str(paths.root), "--alive-fd", str(held[0])]
    if len(held) > 1:
        argv += ["--slot-fd", str(held[1])]
    env = dict(os.environ)
    if _supervisor_path:
        argv.insert(1, "-S")
        env["ORCHESTRATOR_CALLER_PYTHONPATH"] = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(_supervisor_path)
    return [*argv, name, run_id], env


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261120T230301Z-3fa9c1``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def read_session(paths: StatePaths, name: str) -> str | None:
    """The session ID stored for agent ``name`` (``sessions/<name>_session.txt``), or None."""
    try:
        sid = paths.session(name).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return sid or None


def _refuse_if_active(store: RecordStore, current: StatusRecord | None) -> None:
    """Raise :class:`Conflict` (exit 3) if ``current`` is an active run whose supervisor lives."""
    if current is not None and current.state.is_active:
        from .control import is_alive

        if is_alive(store, current):
            raise Conflict(
                f"agent {current.agent!r} is already {current.status} (run {current.run_id}); "
                f"wait for it, stop it, or pick another name"
            )


def orphan_entries(rec: StatusRecord) -> list:
    """``[pid, start time]`` of the processes a run whose supervisor is gone may have left: its CLI and its recorded tree.

    Carried into the next run's record (``orphans``), whose supervisor stops
    those still alive (same PID *and* start time) before it starts its CLI:
    no process of an old run is ever left without a record naming it.
    """
    cli = [[rec.pid, rec.pid_started]] if rec.pid is not None else []
    return [*cli, *(rec.extra.get("tree") or [])]  # checked where they are read (procs.find_entries)


def _undo(paths_made: list[Path]) -> None:
    """Remove what a launch that failed made (files, then its empty folder): nothing is left half-made."""
    for path in reversed(paths_made):
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:
            pass


def launch(
    paths: StatePaths,
    name: str,
    task: str,
    *,
    cwd: str | None = None,
    options: ClaudeOptions | None = None,
    limits: RunLimits | None = None,
    on_complete: list[str] | None = None,
    profile: str | None = None,
    isolation: str = "none",
    inherit: dict | None = None,
    after: list[str] | None = None,
    after_any: bool = False,
    context_from: str | None = None,
    resume_id: str | None = None,
    fork: bool = False,
    forked_from: str | None = None,
) -> StatusRecord:
    """Start one run of agent ``name`` in the background and return its record at once.

    The launcher takes the agent's life lock and, if a slot is free and no
    run is queued, a ``--max-parallel`` slot, and hands both to the
    supervisor as open descriptors; otherwise the run is recorded ``queued``
    and its supervisor waits for its turn.

    Args:
        paths: the state root.
        name: the agent (checked by :func:`validate_name` before any file is touched).
        task: the prompt (UTF-8 text without NUL bytes, any size): written
            byte-exact to ``outputs/<name>/<run_id>.task``, which the CLI reads on
            stdin; the record keeps it whole up to :data:`.record.TASK_IN_RECORD_CHARS`.
        cwd: the agent's working directory (default: the caller's).
        options: CLI options (model, tools, ...).
        limits: timeout, memory limit, slots, retries (default: :meth:`RunLimits.from_env`).
        on_complete: an argument vector the supervisor runs when the run has ended.
        profile: the profile the options came from (kept in the record).
        isolation: ``none``, ``dir`` (``workspaces/NAME/``) or ``worktree`` (a git
            worktree of the repository at ``cwd`` on branch ``orchestrator/NAME/RUN_ID``).
        inherit: record fields a resumed run keeps from the run before (its worktree).
        after: agents that must have completed before this run starts; until
            then it is ``waiting``, and if one ends otherwise it is ``skipped``.
        after_any: start once every ``after`` agent has ended, however it ended.
        context_from: start from a fork of this agent's session once it has
            ended (implies ``after`` it); the cwd defaults to that agent's.
        resume_id: continue this session (``-r``) instead of starting a new one.
        fork: with ``resume_id``, fork it into a new session (``--fork-session``).
        forked_from: the agent whose session is forked (kept in the record).

    Returns:
        The record as written: status ``starting`` or ``queued``, with run id, session ID and files.

    Raises:
        BadInput: bad name, empty task, missing cwd, bad option, an unreadable
            record, ``outputs/<name>`` is a symlink (exit 2).
        CliMissing: no Claude CLI (exit 127); nothing is written.
        Conflict: the agent is queued, starting or running (exit 3).
        StorageError: the state root cannot be written (exit 74); nothing is left half-written.
    """
    validate_name(name)
    if not task or not task.strip():
        raise BadInput("the task is empty; give it as an argument or with --task-file")
    after = list(dict.fromkeys(after or []))
    if context_from:
        validate_name(context_from)
        if resume_id:
            raise BadInput("--with-context-from starts a new agent from another's session; it cannot be combined with a resume")
        if isolation != "none":
            raise BadInput("--with-context-from runs where NAME's session was made (the CLI keeps sessions per directory); drop --isolation")
        if context_from not in after:
            after.append(context_from)
        source = RecordStore(paths).read(context_from)
        if source is not None and source.cwd:
            if cwd is not None and Path(cwd).expanduser().resolve() != Path(source.cwd).resolve():
                raise BadInput(
                    f"--with-context-from {context_from}: its session lives in {source.cwd} (the CLI keeps sessions "
                    "per directory); drop --cwd or give that one"
                )
            cwd = source.cwd
    for dep in after:
        validate_name(dep)
        if dep == name:
            raise BadInput(f"agent {name!r} cannot wait for itself")
        if not paths.status(dep).exists():
            raise NotFound(f"--after {dep}: no such agent; launch it first (see python3 agents/check_status.py)")
    options = options or ClaudeOptions()
    options.validate()
    limits = limits or RunLimits.from_env()
    workdir = Path(cwd or os.getcwd()).expanduser()
    if not workdir.is_dir():
        raise BadInput(f"--cwd {str(workdir)!r} is not a directory")
    workdir = workdir.resolve()
    claude_bin = find_claude()
    if options.permission_mode:  # refused now if this CLI's modes are known; else its supervisor checks
        from .cli_features import cached_features

        known = cached_features(paths, claude_bin)
        refused = known.refuse_permission_mode(options.permission_mode) if known else None
        if refused:
            raise BadInput(refused)

    try:
        paths.ensure()
    except OSError as exc:
        raise storage_error(exc) from exc
    store = RecordStore(paths)
    run_id = new_run_id()
    made: list[Path] = []  # undone if the launch fails
    run_dir = refuse_symlink(paths.run_dir(name))
    try:
        if not run_dir.is_dir():
            run_dir.mkdir()
            made.append(run_dir)
        task_file = paths.task_file(name, run_id)
        write_atomic(task_file, task.encode("utf-8"), durable=False)
        made.append(task_file)
        log_path = paths.log(name, run_id)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        made.append(log_path)
    except BaseException as exc:
        _undo(made)
        if isinstance(exc, OSError):
            raise storage_error(exc) from exc
        raise
    try:
        record, held = _claim_run(
            paths, store, name, run_id, task_file, isolation, limits, after,
            session_id=str(uuid.uuid4()) if (not resume_id or fork) else resume_id,
            model=options.model, resumed_from=resume_id, forked_from=forked_from, inherit=inherit,
            options={"claude": options.to_dict(), "claude_bin": claude_bin, "fork": bool(fork), "limits": limits.to_dict(),
                     "on_complete": on_complete or None, "profile": profile, "after": after, "after_any": bool(after_any),
                     "context_from": context_from},
            workdir=workdir, task=task,
        )
    except BaseException:
        os.close(log_fd)
        _undo(made)
        raise
    argv, env = supervisor_command(paths, held, name, run_id)
    try:
        subprocess.Popen(  # noqa: S603 - an argument vector, no shell
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            cwd=str(paths.root),
            start_new_session=True,  # detached: no signal of the caller's terminal reaches it
            close_fds=True,  # no pipe of the caller leaks into it ...
            pass_fds=held,  # ... only the locks it takes over
        )
    except OSError as exc:
        reason = f"could not start the supervisor: {exc}"

        def failed(cur: StatusRecord | None) -> StatusRecord | None:
            if cur is None or cur.run_id != run_id:
                return None
            cur.transition(State.FAILED, error=reason, is_error=True)
            return cur

        return store.update(name, failed) or record
    finally:
        os.close(log_fd)
        for fd in held:  # the supervisor holds its own copies now
            os.close(fd)

    # The supervisor records its own PID and start time when it claims the
    # run; a stop that comes first marks the record killed and the supervisor
    # then finds nothing to do.  It is never waited for: it outlives this
    # process and is reparented to init (or the nearest subreaper).
    return record


def _claim_run(
    paths: StatePaths,
    store: RecordStore,
    name: str,
    run_id: str,
    task_file: Path,
    isolation: str,
    limits: RunLimits,
    after: list[str],
    *,
    session_id: str,
    model: str | None,
    resumed_from: str | None,
    forked_from: str | None,
    inherit: dict | None,
    options: dict,
    workdir: Path,
    task: str,
) -> tuple[StatusRecord, list[int]]:
    """Make the run's workspace and write its first record, under the agent's lock.

    Takes the agent's life lock and, if one is free and nobody queues, a
    ``--max-parallel`` slot; the initial state is ``waiting`` (``after``),
    ``queued`` or ``starting``.  A previous run whose supervisor is gone
    hands its leftover processes on (:func:`orphan_entries`).

    Returns:
        ``(record as written, descriptors holding the life lock and maybe a slot)``.

    Raises:
        Conflict: the agent is active (exit 3); BadRecord: its record is unreadable (exit 2);
        StorageError (exit 74).  The workspace is removed again and no descriptor stays open.
    """
    worktree = None
    if isolation != "none":
        _refuse_if_active(store, store.read(name))  # before making a workspace for nothing
        from .isolation import prepare

        workdir, worktree = prepare(paths, name, run_id, isolation, workdir)
    created = utc_now()
    record = StatusRecord(
        agent=name,
        run_id=run_id,
        task=task_preview(task),
        status=State.STARTING,
        created=created,
        status_changed=created,  # the initial state (starting, waiting or queued) is set in claim()
        cwd=str(workdir),
        model=model,
        session_id=session_id,
        resumed_from=resumed_from,
        forked_from=forked_from,
        output_file=str(paths.latest_output(name)),
        transcript_file=str(paths.transcript(name, run_id)),
        log_file=str(paths.log(name, run_id)),
        task_file=str(task_file),
        options=options,
    )
    held: list[int] = []  # descriptors holding the life lock and a slot, for the supervisor

    def claim(current: StatusRecord | None) -> StatusRecord:
        _refuse_if_active(store, current)
        if current is not None and (current.state is State.LOST or current.state.is_active):  # active: its supervisor is gone
            orphans = orphan_entries(current)
            if orphans:
                record.extra["orphans"] = orphans
        # A previous supervisor may still be exiting after writing its final record.
        alive_fd = locks.lock_within(paths.alive_lock(name), timeout_s=5.0)
        if alive_fd is None:
            raise Conflict(f"agent {name!r}'s previous supervisor is still exiting; try again in a few seconds")
        held.append(alive_fd)
        if after:
            record.status = State.WAITING  # the supervisor takes a slot once its dependencies are done
        elif limits.max_parallel:
            from filelock import FileLock

            with FileLock(str(paths.queue_lock), timeout=30):
                slot_fd = None if locks.queue_head(paths) else locks.take_slot(paths, limits.max_parallel)
                if slot_fd is None:
                    locks.enqueue(paths, name, run_id)
                    record.status = State.QUEUED
                else:
                    held.append(slot_fd)
                    record.extra["slot_granted_at"] = time.time()
        return record

    record.extra.update(inherit or {})
    if isolation != "none":
        record.extra["isolation"] = isolation
    if worktree:
        record.extra["worktree"] = worktree
    try:
        # No fsync: on a loaded machine it took 38 ms of each launch, and the
        # supervisor rewrites the record, durably, when it claims the run.
        store.update(name, claim, durable=False)
    except BaseException:
        for fd in held:
            os.close(fd)
        if record.status is State.QUEUED:
            locks.remove_from_queue(paths, name)
        if worktree:
            from .isolation import remove_worktree

            remove_worktree(worktree)
        raise
    return record, held


def resume(
    paths: StatePaths,
    name: str,
    task: str,
    *,
    session_from: str | None = None,
    cwd: str | None = None,
    options: ClaudeOptions | None = None,
    limits: RunLimits | None = None,
    on_complete: list[str] | None = None,
    profile: str | None = None,
) -> StatusRecord:
    """Continue agent ``name``'s session with a new task, or fork ``session_from``'s into it.

    Without ``session_from`` the run resumes ``sessions/<name>_session.txt``
    (``-r``); its cwd defaults to the agent's previous cwd, where the CLI keeps
    the session.  With it, ``name`` starts from a fork of that agent's session
    (``-r <id> --fork-session``) and the other agent is left untouched.

    Raises:
        NotFound: there is no session to resume (exit 4).
        and everything :func:`launch` raises.
    """
    validate_name(name)
    source = session_from or name
    validate_name(source)
    store = RecordStore(paths)
    current = store.read(name)
    if current is not None and current.state.is_active:
        from .control import reconcile

        current = reconcile(store, current)
        if current.state.is_active:
            raise Conflict(f"agent {name!r} is still {current.status}; wait for it to end before resuming it")
    session = read_session(paths, source)
    if session is None:
        raise NotFound(
            f"agent {source!r} has no session to resume; start one with: "
            f"python3 agents/launch_agent.py {source} \"TASK\""
        )
    previous = current if source == name else store.read(source)
    inherit = {}
    if cwd is None and previous is not None and previous.cwd and Path(previous.cwd).is_dir():
        cwd = previous.cwd
        if source == name:  # the same workspace: keep knowing it is a worktree, for clear_outputs
            inherit = {k: previous.extra[k] for k in ("isolation", "worktree") if k in previous.extra}
    return launch(
        paths,
        name,
        task,
        cwd=cwd,
        options=options,
        limits=limits,
        on_complete=on_complete,
        profile=profile,
        inherit=inherit,
        resume_id=session,
        fork=session_from is not None,
        forked_from=session_from,
    )


def launch_many(
    paths: StatePaths,
    jobs: list[tuple[str, str]],
    *,
    cwd: str | None = None,
    options: ClaudeOptions | None = None,
    limits: RunLimits | None = None,
    on_complete: list[str] | None = None,
    per_job: list[tuple[ClaudeOptions, RunLimits, str | None]] | None = None,
    isolation: str = "none",
    per_job_isolation: list[str] | None = None,
    after: list[str] | None = None,
    after_any: bool = False,
    context_from: str | None = None,
) -> list[StatusRecord]:
    """Launch one agent per ``(name, task)`` pair; return their records at once.

    Every name and task is checked, and every name checked for a live run,
    before the first launch, so a refused fan-out launches nothing.
    ``per_job`` gives each job its own ``(options, limits, profile name)``
    (delegations mapped to profiles); otherwise all share ``options`` and ``limits``.

    Raises:
        BadInput: a bad or repeated name, an empty task (exit 2).
        Conflict: one of the names is active (exit 3).
        CliMissing: no Claude CLI (exit 127).
    """
    names = [validate_name(n) for n, _ in jobs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"agent names must be unique; repeated: {', '.join(dupes)}")
    for name, task in jobs:
        if not task.strip():
            raise BadInput(f"the task for {name} is empty")
    find_claude()
    store = RecordStore(paths)
    busy = []
    for name in names:
        current = store.read(name)
        if current is not None and current.state.is_active:
            from .control import reconcile

            current = reconcile(store, current)
            if current.state.is_active:
                busy.append(f"{name} ({current.status})")
    if busy:
        raise Conflict(f"already active: {', '.join(busy)}; wait for them, stop them, or use --names")
    limits = limits or RunLimits.from_env()
    settings = per_job or [(options, limits, None)] * len(jobs)
    isolations = per_job_isolation or [isolation] * len(jobs)
    return [
        launch(
            paths, name, task, cwd=cwd, options=opts, limits=lim, on_complete=on_complete, profile=prof, isolation=iso,
            after=after, after_any=after_any, context_from=context_from,
        )
        for (name, task), (opts, lim, prof), iso in zip(jobs, settings, isolations, strict=True)
    ]
