"""Where a run's supervisor runs: the seam between the toolkit and a machine or a cluster.

DESIGN.md ("Executors"): the file contract is the same for every executor
(records, sessions, outputs and transcripts under the state root); what
differs is behind this small interface:

- :meth:`Executor.start` hands a run whose record is written to a supervisor, and returns at once;
- :meth:`Executor.is_alive` tells whether a run's supervisor is alive;
- :meth:`Executor.request_stop` asks that supervisor to stop its run (it
  stops the CLI's tree and records ``killed``); :meth:`Executor.supervisor_running`
  tells whether it still runs, and :meth:`Executor.force_stop` stops what is
  left when it does not respond;
- :attr:`Executor.keeps_queue` says what ``queued`` means: True if the toolkit
  keeps ``--max-parallel`` slots and its FIFO queue (this machine); a cluster's
  scheduler keeps its own queue instead.

Two executors exist: :class:`LocalExecutor` (``local``, the default) and
:class:`.slurm.SlurmExecutor` (``slurm``, made only when a run asks for it).
Liveness, stopping and clearing call this interface, never PIDs or lock files
directly.  This module is on the launch path: psutil is imported only by the
methods that look at processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..core import locks
from ..core.errors import BadInput
from ..core.paths import StatePaths

if TYPE_CHECKING:
    import psutil

    from ..records.status_record import StatusRecord

#: What the supervisor imports.  It runs as ``python -S`` (no site hooks: a
#: ``.pth`` file that imports something costs every supervisor start-up time
#: and memory for the whole run) and finds these through ``PYTHONPATH``.
SUPERVISOR_PACKAGES = ("claude_orchestrator", "psutil", "filelock", "watchdog")
_supervisor_path: list[str] | None = None


class Executor:
    """The interface every executor implements (see the module docstring).

    No method raises for a process or job that is gone: that is an answer
    (False, nothing to stop), not an error.  ``rec`` is always a record this
    executor runs (:func:`executor_of`).
    """

    #: The name a spec gives (a key of :data:`_EXECUTORS`).
    name = ""
    #: True if ``--max-parallel`` slots and the FIFO queue are the toolkit's (``queued`` = waiting for a slot).
    keeps_queue = True

    def start(self, paths: StatePaths, rec: StatusRecord, held: list[int], log_fd: int) -> None:
        """Hand run ``rec`` (its record written) to a supervisor; return at once.

        Args:
            paths: the state root.
            rec: the run's first record, as written.
            held: descriptors the supervisor takes over (the life lock, then a slot if any).
            log_fd: the run's log, opened for appending: the supervisor's stdout and stderr.

        Raises:
            OSError: the supervisor could not be started (the caller records the run ``failed``).
        """
        raise NotImplementedError

    def is_alive(self, paths: StatePaths, rec: StatusRecord) -> bool:
        """True if ``rec`` is active and its supervisor is alive.  Cheap: no process scan (every reader asks it)."""
        raise NotImplementedError

    def request_stop(self, rec: StatusRecord) -> bool:
        """Ask the run's supervisor to stop its run (it stops the tree and records ``killed``).

        Returns:
            False if there is no live supervisor to ask.
        """
        raise NotImplementedError

    def supervisor_running(self, rec: StatusRecord) -> bool:
        """True while the run's supervisor still runs (checked while a stop is awaited)."""
        raise NotImplementedError

    def cli_running(self, rec: StatusRecord) -> bool:
        """True while the run's CLI still runs."""
        raise NotImplementedError

    def has_leftovers(self, rec: StatusRecord) -> bool:
        """True if processes of the run (its CLI, the tree its supervisor recorded, orphans it was handed) still run."""
        raise NotImplementedError

    def stop_leftovers(self, rec: StatusRecord, grace_s: float) -> bool:
        """Stop the run's leftover processes (SIGTERM, ``grace_s`` seconds, SIGKILL); False if there were none."""
        raise NotImplementedError

    def force_stop(self, rec: StatusRecord, grace_s: float) -> None:
        """Stop what is left of a run whose supervisor is gone or does not respond:
        its leftovers (:meth:`stop_leftovers`) and a stuck supervisor."""
        raise NotImplementedError

    def alive_without_record(self, paths: StatePaths, name: str) -> bool:
        """True if this executor runs a live supervisor of agent ``name`` whose record cannot be read."""
        raise NotImplementedError

    def gone_reason(self, rec: StatusRecord) -> str:
        """The ``error`` of a run found ``lost``: what is known of why its supervisor is gone, in a sentence."""
        pid = f" (pid {rec.supervisor_pid})" if rec.supervisor_pid else ""
        return f"the supervisor{pid} is gone; the run's outcome is unknown"

    def look_ahead(self, recs: list[StatusRecord]) -> None:
        """Learn at once what :meth:`is_alive` will be asked about ``recs`` (a reader of many
        records calls it first); the default learns nothing."""

    def stop_unreadable(self, paths: StatePaths, name: str, grace_s: float) -> bool:
        """Stop the live supervisor of agent ``name`` whose record cannot be read (it stops
        its tree and rewrites its record from its own copy); False if there is none."""
        raise NotImplementedError


class LocalExecutor(Executor):
    """The supervisor is a detached process on this machine.

    Liveness is the agent's life lock (``status/<agent>.supervisor.lock``),
    held by the supervisor and dropped by the kernel when it dies.  PIDs in a
    record are used only to signal, and only with their start times.
    """

    name = "local"
    keeps_queue = True

    def start(self, paths: StatePaths, rec: StatusRecord, held: list[int], log_fd: int) -> None:
        """Spawn ``python -m claude_orchestrator.supervisor`` detached (new session, stdin /dev/null), never waited for."""
        argv, env = supervisor_command(paths, held, rec.agent, rec.run_id)
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
        # It is never waited for: it outlives this process and is reparented to
        # init (or the nearest subreaper).

    def is_alive(self, paths: StatePaths, rec: StatusRecord) -> bool:
        """The life lock is held (a read-only probe: works on a read-only or full state root)."""
        return rec.state.is_active and locks.is_held(paths.alive_lock(rec.agent))

    def request_stop(self, rec: StatusRecord) -> bool:
        """SIGTERM to the supervisor (PID and start time checked): it stops the tree (SIGTERM, grace, SIGKILL)."""
        import psutil

        sup = supervisor_process(rec)
        if sup is None:
            return False
        try:
            sup.terminate()
        except psutil.Error:
            return False
        return True

    def supervisor_running(self, rec: StatusRecord) -> bool:
        """The recorded supervisor PID runs, with the recorded start time."""
        return supervisor_process(rec) is not None

    def cli_running(self, rec: StatusRecord) -> bool:
        """The recorded CLI PID runs, with the recorded start time."""
        return cli_process(rec) is not None

    def has_leftovers(self, rec: StatusRecord) -> bool:
        """Any of :func:`leftover_tree` runs."""
        return bool(leftover_tree(rec))

    def stop_leftovers(self, rec: StatusRecord, grace_s: float) -> bool:
        """:func:`.procs.stop_tree` on :func:`leftover_tree`, with the CLI's process group if the CLI still runs."""
        from ..core import procs

        left = leftover_tree(rec)
        if left:
            procs.stop_tree(left, grace_s=grace_s, pgid=rec.pid if cli_process(rec) else None)
        return bool(left)

    def force_stop(self, rec: StatusRecord, grace_s: float) -> None:
        """The leftovers and, if the CLI still runs (the supervisor is stuck), the supervisor too."""
        from ..core import procs

        cli = cli_process(rec)
        stuck = supervisor_process(rec) if cli is not None else None
        left = leftover_tree(rec) + ([stuck] if stuck else [])
        if left:
            procs.stop_tree(left, grace_s=grace_s, pgid=rec.pid if cli is not None else None)

    def alive_without_record(self, paths: StatePaths, name: str) -> bool:
        """The agent's life lock is held."""
        return locks.is_held(paths.alive_lock(name))

    def stop_unreadable(self, paths: StatePaths, name: str, grace_s: float) -> bool:
        """SIGTERM to the supervisor (found by :func:`supervisors_by_name`); waits for its life
        lock to drop (the grace plus 5 s), then SIGKILLs it and the tree it had."""
        import time

        import psutil

        from ..core import procs

        if not locks.is_held(paths.alive_lock(name)):
            return False
        sups = supervisors_by_name(paths, name)
        tree: dict[int, psutil.Process] = {}
        for p in sups:  # its CLI is its child (it is a subreaper): known now, before anything exits
            try:
                tree.update({c.pid: c for c in p.children(recursive=True)})
                p.terminate()
            except psutil.Error:
                pass
        deadline = time.monotonic() + grace_s + 5.0
        while locks.is_held(paths.alive_lock(name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if locks.is_held(paths.alive_lock(name)):  # stuck: stop it and its whole tree ourselves
            procs.stop_tree([*sups, *tree.values()], grace_s=0.0)
        return bool(sups)


def supervisors_by_name(paths: StatePaths, name: str) -> list[psutil.Process]:
    """Live local supervisor processes of agent ``name`` under this state root, found by their command line.

    For a run whose record cannot be read (so its PIDs are unknown) while its
    life lock is held: the supervisor runs ``python -m claude_orchestrator.supervisor
    --root ROOT ... NAME RUN_ID`` (:func:`supervisor_command`).
    """
    import psutil

    root = str(paths.root)
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "claude_orchestrator.supervisor" in cmd and len(cmd) >= 2 and cmd[-2] == name and root in cmd:
            found.append(p)
    return found


def all_executors() -> list[Executor]:
    """Every executor of this release (asked about a run whose record cannot say which one runs it)."""
    return [get_executor(name) for name in EXECUTOR_NAMES]


def get_executor(name: str | None = None) -> Executor:
    """The executor called ``name`` (default ``local``), made when first asked for.

    Raises:
        BadInput: no such executor (exit 2).
    """
    name = name or "local"
    found = _EXECUTORS.get(name)
    if found is None:
        if name not in EXECUTOR_NAMES:
            raise BadInput(f"executor {name!r}: no such executor; this release has: {', '.join(EXECUTOR_NAMES)}")
        from .slurm import SlurmExecutor  # only a Slurm run pays for the module

        found = _EXECUTORS[name] = SlurmExecutor()
    return found


def executor_of(rec: StatusRecord) -> Executor:
    """The executor that runs ``rec`` (its spec's); an unknown one (a newer toolkit's record) is treated as local."""
    try:
        return get_executor(rec.spec.executor)
    except BadInput:
        return _LOCAL


_LOCAL = LocalExecutor()
#: Every executor of this release, by the name a spec gives: the one list of names.
EXECUTOR_NAMES = ("local", "slurm")
#: The executors made so far (``slurm`` is made by :func:`get_executor` when a run asks for it).
_EXECUTORS: dict[str, Executor] = {_LOCAL.name: _LOCAL}


def supervisor_command(
    paths: StatePaths, held: list[int], name: str, run_id: str, flags: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, str]]:
    """The supervisor's argument vector and environment.

    ``held`` are the inherited descriptors: the life lock, then a slot if any
    (none for a supervisor that another host starts, as a Slurm job's is);
    ``flags`` are more of its options (``--slurm-job``).
    The environment is the caller's, with ``PYTHONPATH`` naming the folders of
    :data:`SUPERVISOR_PACKAGES` and the caller's own value kept in
    ``ORCHESTRATOR_CALLER_PYTHONPATH`` (the supervisor puts it back before it
    starts anything).  If a package's folder cannot be found the supervisor
    starts with the site hooks, as any script would.
    """
    global _supervisor_path
    if _supervisor_path is None:
        _supervisor_path = _package_dirs()
    argv = [sys.executable, "-m", "claude_orchestrator.supervisor", "--root", str(paths.root)]
    if held:
        argv += ["--alive-fd", str(held[0])]
    if len(held) > 1:
        argv += ["--slot-fd", str(held[1])]
    env = dict(os.environ)
    if _supervisor_path:
        argv.insert(1, "-S")
        env["ORCHESTRATOR_CALLER_PYTHONPATH"] = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(_supervisor_path)
    return [*argv, *flags, name, run_id], env


def _package_dirs() -> list[str]:
    """The folders holding :data:`SUPERVISOR_PACKAGES`, or [] if one cannot be found."""
    from importlib.util import find_spec

    dirs: list[str] = []
    for package in SUPERVISOR_PACKAGES:
        spec = find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            return []
        folder = str(Path(locations[0]).parent)
        if folder not in dirs:
            dirs.append(folder)
    return dirs


def supervisor_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live local supervisor process (PID and start time checked), or None."""
    from ..core import procs

    return procs.find_process(rec.supervisor_pid, rec.supervisor_started)


def cli_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live CLI process (PID and start time checked), or None."""
    from ..core import procs

    return procs.find_process(rec.pid, rec.pid_started)


def leftover_tree(rec: StatusRecord) -> list[psutil.Process]:
    """Processes of a run whose supervisor is gone: its CLI, every descendant
    the supervisor recorded (``tree``), and the orphans of an earlier lost run
    handed to it (``orphans``) that its supervisor has not stopped yet; each
    verified by its start time."""
    from ..core import procs

    entries = [[rec.pid, rec.pid_started], *(rec.tree or []), *(rec.orphans or [])]
    return procs.find_entries(entries)
