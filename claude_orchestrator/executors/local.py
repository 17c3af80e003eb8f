"""The ``local`` executor: the supervisor is a detached process on this machine.

The launcher takes the agent's life lock (and a ``--max-parallel`` slot if
any) and :meth:`LocalExecutor.submit` starts the supervisor with them,
forked from the launcher or as a fresh interpreter (:mod:`.detach`);
liveness is that lock, which the kernel drops when the supervisor dies;
stopping signals PIDs only with their recorded start times.  Also the
processes of a run, which the other executors use for what runs on this host.

This module is on the launch path: psutil (through :mod:`..core.procs`) is
imported only by the functions that look at processes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core import locks
from ..core.paths import StatePaths
from . import detach
from .base import Executor, Handoff, Liveness, Verdict

if TYPE_CHECKING:
    import psutil

    from ..core.errors import OrchestratorError
    from ..records.status_record import StatusRecord

class LocalExecutor(Executor):
    """The supervisor is a detached process on this machine.

    Liveness is the agent's life lock (``status/<agent>.supervisor.lock``),
    held by the supervisor and dropped by the kernel when it dies.  PIDs in a
    record are used only to signal, and only with their start times.
    """

    name = "local"
    keeps_queue = True
    host_bound = True

    def submit(self, paths: StatePaths, runs: Sequence[tuple[StatusRecord, Handoff]]) -> list[BaseException | None]:
        """Start each run's supervisor detached, never waited for.

        - A fan-out's, or one its caller waits for (:attr:`.base.Handoff.caller_waits`): forked from
          this process (:func:`.detach.fork_supervisors`).  A fan-out imports the supervisor's modules
          once, before the forks (:func:`.detach.prepare`): N runs cost N forks, not N interpreters; a
          waited-for run's supervisor imports them itself, after the fork.  Measured (bench item 2 and
          ``bench/compare.py``): ``launch_agent.py --wait`` on a CLI that answers at once 270 -> 180 ms.
        - A single run nobody waits for, or any run if this process runs threads: a fresh interpreter
          (:func:`.detach.spawn_supervisor`).  A fork made such a launch return about 10 ms later
          (``bench/compare.py``, 100 -> 110 ms): the launcher's exit then copies every page it still
          shares with the supervisor it forked.

        The answer for a run is an ``OSError`` if its supervisor could not be started.
        """
        detached = [detach.Detached(rec.agent, rec.run_id, handoff.held, handoff.log_fd) for rec, handoff in runs]
        forked = len(detached) > 1 or any(handoff.caller_waits for _, handoff in runs)
        if forked and detach.can_fork():
            if len(detached) > 1:
                detach.prepare()
            return list(detach.fork_supervisors(paths, detached))
        answers: list[BaseException | None] = []
        for run in detached:
            try:
                detach.spawn_supervisor(paths, run)
            except OSError as exc:
                answers.append(exc)
            else:
                answers.append(None)
        return answers

    def probe(self, paths: StatePaths, recs: Sequence[StatusRecord], *, deep: bool = False) -> list[Liveness]:
        """ALIVE while the agent's life lock is held (a read-only probe: works on a read-only or full state
        root), of an active run or of an ended one whose supervisor runs its ``--on-complete`` hook
        (it keeps the lock until the hook's outcome is written); with ``deep``, the recorded
        supervisor and CLI PIDs are checked with their start times."""
        out = []
        for rec in recs:
            alive = (rec.state.is_active or rec.hook_unfinished) and locks.is_held(paths.alive_lock(rec.agent))
            verdict = Liveness(Verdict.ALIVE) if alive else Liveness(Verdict.GONE, gone_reason(rec) if rec.state.is_active else None)
            if deep:  # a stop asks every 50 ms: the recorded tree is looked at only once the supervisor is gone
                running = supervisor_process(rec) is not None
                verdict = verdict._replace(
                    supervisor_running=running, cli_running=cli_process(rec) is not None,
                    leftovers=False if running else bool(leftover_tree(rec)),
                )
            out.append(verdict)
        return out

    def stop(self, runs: Sequence[tuple[StatusRecord, float]], *, force: bool = False) -> list[bool | OrchestratorError]:
        """For each ``(record, grace_s)``, one run after another: without ``force``, SIGTERM to the
        supervisor (PID and start time checked), which stops the tree (SIGTERM, grace, SIGKILL); with
        ``force``, :func:`..core.procs.stop_tree` on :func:`leftover_tree` and, if the CLI still runs (the
        supervisor is stuck), the supervisor too; the CLI's process group is signalled as well while
        the CLI runs (:func:`stop_remains`).  Never an error: a process that is gone is an answer."""
        import psutil  # only a stop pays for psutil (the launch path never loads it)

        out: list[bool | OrchestratorError] = []
        for rec, grace_s in runs:
            if force:
                out.append(stop_remains(rec, grace_s))
                continue
            sup = supervisor_process(rec)
            try:
                if sup is not None:
                    sup.terminate()
            except psutil.Error:
                sup = None
            out.append(sup is not None)
        return out

    def unreadable_runs(self, paths: StatePaths, name: str, *, stop_grace_s: float | None = None) -> list[str]:
        """``pid N`` of each live supervisor of ``name`` (the life lock is held; found by :func:`supervisors_by_name`).

        With ``stop_grace_s``: SIGTERM to each, a wait for the life lock to drop (the grace
        plus 5 s), then SIGKILL to any still there and the tree each had.
        """
        import psutil  # only an unreadable record's stop pays for psutil

        from ..core import procs

        if not locks.is_held(paths.alive_lock(name)):
            return []
        if stop_grace_s is None:  # found: the lock says so, no process scan needed
            return [f"the supervisor holding {paths.alive_lock(name).name}"]
        sups = supervisors_by_name(paths, name)
        found = [f"pid {p.pid}" for p in sups] or ["a supervisor whose process was not found"]
        tree: dict[int, psutil.Process] = {}
        for p in sups:  # its CLI is its child (it is a subreaper): known now, before anything exits
            try:
                tree.update({c.pid: c for c in p.children(recursive=True)})
                p.terminate()
            except psutil.Error:
                pass
        deadline = time.monotonic() + stop_grace_s + 5.0
        while locks.is_held(paths.alive_lock(name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if locks.is_held(paths.alive_lock(name)):  # stuck: stop it and its whole tree ourselves
            procs.stop_tree([*sups, *tree.values()], grace_s=0.0)
        return found if sups else []


def stop_remains(rec: StatusRecord, grace_s: float) -> bool:
    """Stop what of run ``rec`` still runs on this host without a working supervisor: :func:`leftover_tree`
    and, if the CLI still runs (its supervisor is stuck), that supervisor; SIGTERM, ``grace_s`` seconds,
    SIGKILL (:func:`..core.procs.stop_tree`).  True if anything was found to stop."""
    from ..core import procs  # psutil: off the launch path

    cli = cli_process(rec)
    stuck = supervisor_process(rec) if cli is not None else None
    left = leftover_tree(rec) + ([stuck] if stuck else [])
    if left:
        procs.stop_tree(left, grace_s=grace_s, pgid=rec.pid if cli is not None else None)
    return bool(left)


def gone_reason(rec: StatusRecord) -> str:
    """The ``error`` of a local run found ``lost``: its supervisor is gone, the outcome unknown."""
    pid = f" (pid {rec.supervisor_pid})" if rec.supervisor_pid else ""
    return f"the supervisor{pid} is gone; the run's outcome is unknown"


def supervisors_by_name(paths: StatePaths, name: str) -> list[psutil.Process]:
    """Live local supervisor processes of agent ``name`` under this state root: those holding its life lock open.

    For a run whose record cannot be read (so its PIDs are unknown) while its
    life lock is held.  A supervisor keeps ``status/<name>.supervisor.lock``
    open for its whole life, whether it was forked or spawned (its command line
    is then the launcher's, not its own), and neither its CLI nor its hook
    inherits it.  Processes whose descriptors cannot be read (another user's) are passed over.
    """
    import psutil  # off the launch path

    lock = os.path.realpath(paths.alive_lock(name))
    found = []
    for p in psutil.process_iter():
        try:
            if any(f.path == lock for f in p.open_files()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def supervisor_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live local supervisor process (PID and start time checked), or None."""
    from ..core import procs  # psutil: off the launch path

    return procs.find_process(rec.supervisor_pid, rec.supervisor_started)


def cli_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live CLI process (PID and start time checked), or None."""
    from ..core import procs  # psutil: off the launch path

    return procs.find_process(rec.pid, rec.pid_started)


def leftover_tree(rec: StatusRecord) -> list[psutil.Process]:
    """Processes of a run whose supervisor is gone: its CLI, every descendant
    the supervisor recorded (``tree``), and the orphans of an earlier lost run
    handed to it (``orphans``) that its supervisor has not stopped yet; each
    verified by its start time."""
    from ..core import procs  # psutil: off the launch path

    entries = [[rec.pid, rec.pid_started], *(rec.tree or []), *(rec.orphans or [])]
    return procs.find_entries(entries)
