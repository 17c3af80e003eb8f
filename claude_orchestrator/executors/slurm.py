"""The ``slurm`` executor: a Slurm batch job runs the run's supervisor.

The launcher writes the record, then :meth:`SlurmExecutor.start` writes a
batch script (``outputs/<agent>/<run_id>.sbatch``) that ``exec``\\ s the same
supervisor a local run has, in the foreground so that Slurm tracks it, and
submits it with ``sbatch --parsable``; the launch returns when sbatch has
answered.  The file contract is unchanged: the state root must be on a
filesystem the compute nodes share.

What differs from a local run, and why:

- **Liveness asks Slurm** (``squeue``), never PIDs or lock files: the
  reader's host is not the job's, and a lock cannot cross hosts.  A job
  Slurm still has (pending, running, completing, ...) is alive; a job it no
  longer has while the record is active makes the run ``lost``, with Slurm's
  last state and reason in ``error``.  If Slurm cannot be asked (the
  controller is down), a run is taken as alive: nothing is marked ``lost``
  for an outage.
- **``queued`` means pending in Slurm's queue** (held, waiting for resources,
  a license or a dependency): the toolkit keeps no slots of its own
  (:attr:`keeps_queue` is False); the supervisor moves the run to
  ``starting`` when Slurm starts it.
- **Stopping** is ``scancel --batch --signal=TERM`` (the supervisor alone gets
  SIGTERM, stops the CLI's tree and records ``killed``), then a plain
  ``scancel`` if it has not ended after the grace.  A pending job is cancelled.
- **Limits**: the supervisor still enforces ``--timeout`` and
  ``--memory-limit``; the job's ``--time`` and ``--mem`` are set a little above
  them (:func:`limit_args`), as a backstop and for the scheduler's packing.  If
  the job's time limit comes first anyway (a user's ``--time``), Slurm's
  SIGUSR1 shortly before it lets the supervisor end the run ``timeout``.
- **``--after``** is also a Slurm dependency (``afterany`` on the jobs of the
  agents still active), so a dependent job does not hold a node while it
  waits; its supervisor still decides run-or-skip from the records.

Slurm's commands themselves (sbatch, squeue, scancel, with their timeouts
and what their answers mean) are in :mod:`.slurm_jobs`.  Standard library only.
"""

from __future__ import annotations

import math
import shlex
import time

from ..core import locks
from ..core.errors import OrchestratorError
from ..core.files import write_atomic
from ..core.paths import StatePaths
from ..records import lifecycle
from ..records.status_record import RecordStore, StatusRecord
from . import slurm_commands as jobs
from .local import Executor, get_executor, leftover_tree, supervisor_command
from .slurm_commands import SlurmError

__all__ = ["SlurmError", "SlurmExecutor", "batch_script", "dependency_args", "limit_args", "time_limit_lead_s"]

#: The signal Slurm sends the supervisor alone shortly before the job's time limit
#: (``sbatch --signal=B:USR1@LEAD``, LEAD from :func:`time_limit_lead_s`): a job whose
#: ``--time`` comes first (a user's own, or a partition's cap) then ends ``timeout``,
#: its tree stopped by the supervisor, not ``killed`` by Slurm's SIGTERM.
TIME_LIMIT_SIGNAL = "USR1"
#: Seconds added to the run's own time, besides the signal's lead, for the job's
#: ``--time``: Slurm may send the signal up to 60 s early (sbatch(1), ``--signal``),
#: and checks time limits about every 30 s, in whole minutes.
TIME_MARGIN_S = 120.0
#: Retries counted in the job's ``--time`` (each doubles the backoff): a run that
#: retries more ends ``timeout`` at the job's limit, warned by the signal.
TIME_RETRIES_COUNTED = 2
#: The job's ``--mem`` is the memory limit times this, plus :data:`MEM_MARGIN_MB`
#: (Slurm counts the supervisor too, and polls RSS once a second).
MEM_FACTOR = 1.25
MEM_MARGIN_MB = 256


# -- the batch job ---------------------------------------------------------------


def time_limit_lead_s(rec: StatusRecord) -> int:
    """Seconds before the job's time limit Slurm signals the supervisor: its grace plus 30 s
    (to stop the tree and write the end), at least 60."""
    return max(60, math.ceil(rec.spec.limits.kill_grace_s + 30))


def limit_args(rec: StatusRecord, waits_inside: bool = False) -> list[str]:
    """``--time`` and ``--mem`` a little above the run's own limits (none for a limit of 0).

    ``--time`` is in whole minutes: every attempt's timeout and grace (``--retries``
    adds attempts, up to :data:`TIME_RETRIES_COUNTED`), the backoffs between them,
    the signal's lead (:func:`time_limit_lead_s`) and :data:`TIME_MARGIN_S`, rounded up;
    none if the timeout is 0 (the partition's default applies) or if the supervisor
    will wait inside the job for an ``--after`` agent Slurm does not run
    (``waits_inside``: how long is unknown).  ``--mem`` is in MiB: the memory limit
    times :data:`MEM_FACTOR` plus :data:`MEM_MARGIN_MB`, rounded up.
    """
    limits = rec.spec.limits
    out = []
    if limits.timeout_s and not waits_inside:
        attempts = 1 + min(max(0, int(limits.retries)), TIME_RETRIES_COUNTED)
        backoffs = sum(limits.retry_backoff_s * 2**k for k in range(attempts - 1))
        seconds = attempts * (limits.timeout_s + limits.kill_grace_s) + backoffs + time_limit_lead_s(rec) + TIME_MARGIN_S
        out.append(f"--time={math.ceil(seconds / 60)}")
    if limits.memory_limit_mb:
        out.append(f"--mem={math.ceil(limits.memory_limit_mb * MEM_FACTOR + MEM_MARGIN_MB)}M")
    return out


def dependency_args(store: RecordStore, rec: StatusRecord) -> tuple[list[str], bool]:
    """``--dependency=afterany:ID:ID`` for the ``--after`` agents whose runs are active Slurm jobs.

    ``afterany`` whatever ``--after-any`` says: the supervisor decides run or skip
    from the records once the jobs have ended (an ``afterok`` job whose parent
    failed would never start, and could not record ``skipped``).  Active agents
    that Slurm does not run (local runs) are waited for by the supervisor alone,
    inside its job.

    Returns:
        ``(sbatch options, waits_inside)``: the options ([] if none), and whether
        the supervisor will wait in its job for an agent Slurm does not run.
    """
    ids, waits_inside = [], False
    for dep in rec.spec.after:
        try:
            dep_rec = store.read(dep)
        except OrchestratorError:
            continue
        if dep_rec is None or not dep_rec.state.is_active:
            continue
        if dep_rec.spec.executor == "slurm" and dep_rec.slurm_job_id:
            ids.append(dep_rec.slurm_job_id)
        else:
            waits_inside = True
    return ([f"--dependency=afterany:{':'.join(ids)}"] if ids else []), waits_inside


def batch_script(argv: list[str], rec: StatusRecord) -> str:
    """The batch script: a comment naming the run, then ``exec`` of the supervisor (so Slurm tracks it)."""
    return (
        "#!/bin/sh\n"
        f"# claude_orchestrator: the supervisor of agent {rec.agent}, run {rec.run_id}\n"
        f"exec {shlex.join(argv)}\n"
    )


class SlurmExecutor(Executor):
    """A Slurm batch job runs the supervisor (see the module docstring)."""

    name = "slurm"
    keeps_queue = False

    def start(self, paths: StatePaths, rec: StatusRecord, held: list[int], log_fd: int) -> None:
        """Write the batch script, submit it, and record the job ID (``slurm_job_id``).

        Raises:
            SlurmError: sbatch failed (Slurm's message is in it); the caller records the run ``failed``.
            OSError: the batch script cannot be written.
        """
        store = RecordStore(paths)
        argv, env = supervisor_command(paths, [], rec.agent, rec.run_id, flags=("--slurm-job",))
        for name in ("SBATCH_ARRAY_INX", "SBATCH_CLUSTERS", "SLURM_CLUSTERS"):  # one run is one job, on this cluster
            env.pop(name, None)
        script = paths.run_dir(rec.agent) / f"{rec.run_id}.sbatch"
        write_atomic(script, batch_script(argv, rec).encode("utf-8"), durable=False)
        dependency, waits_inside = dependency_args(store, rec)
        options = [
            f"--job-name={rec.agent}",
            f"--chdir={rec.cwd}",
            f"--output={rec.log_file}",
            "--open-mode=append",
            "--no-requeue",  # a requeued job would start a second supervisor for a run the first one ended
            f"--signal=B:{TIME_LIMIT_SIGNAL}@{time_limit_lead_s(rec)}",  # the time limit is near: the supervisor ends it as timeout
            *limit_args(rec, waits_inside),
            *dependency,
            *rec.spec.slurm_args,
        ]
        job_id = jobs.submit(script, options, env)
        rec.slurm_job_id = job_id

        def note(cur: StatusRecord) -> StatusRecord:
            cur.slurm_job_id = cur.slurm_job_id or job_id
            return cur

        try:
            stored = lifecycle.update_run(store, rec.agent, rec.run_id, note, durable=False)
        except BaseException:
            jobs.cancel_quietly(job_id)  # a job nobody can find again must not run
            raise
        if stored is None or stored.run_id != rec.run_id or (stored.state.is_terminal and stored.supervisor_pid is None):
            jobs.cancel_quietly(job_id)  # stopped (or replaced) before its supervisor claimed it: the job has nothing to do

    def is_alive(self, paths: StatePaths, rec: StatusRecord) -> bool:
        """Slurm still has the run's job pending or running, or it ended less than
        :func:`.slurm_jobs.settle_s` seconds ago (its supervisor's last write may still be on its
        way over a shared filesystem); while sbatch has not answered (no job ID
        yet), the launcher's hold on the agent's life lock, on the launcher's host."""
        if not rec.state.is_active:
            return False
        if not rec.slurm_job_id:
            return locks.is_held(paths.alive_lock(rec.agent))
        info = jobs.job_info(rec.slurm_job_id)
        if info is None:
            return False
        if info is jobs.UNKNOWN or info.alive:
            return True
        return info.ended_at is not None and time.time() - info.ended_at < jobs.settle_s()

    def look_ahead(self, recs: list[StatusRecord]) -> None:
        """One ``squeue`` for the jobs of ``recs`` (:func:`.slurm_jobs.query`)."""
        jobs.query([r.slurm_job_id for r in recs if r.slurm_job_id])

    def gone_reason(self, rec: StatusRecord) -> str:
        """Slurm's last word on the job: its state and reason while it still knows it."""
        if not rec.slurm_job_id:
            return "sbatch never answered for this run; the run's outcome is unknown"
        info = jobs.job_info(rec.slurm_job_id)
        if info is None:
            return f"Slurm no longer has job {rec.slurm_job_id} and the supervisor recorded no end; the run's outcome is unknown"
        return (
            f"Slurm job {rec.slurm_job_id} ended {info.state} (reason {info.reason}) before its supervisor "
            "recorded the end; the run's outcome is unknown"
        )

    def request_stop(self, rec: StatusRecord) -> bool:
        """``scancel --batch --signal=TERM`` to a running job: the supervisor stops the tree and
        records ``killed``.  False for a job that is not running (pending: :meth:`force_stop` cancels it).

        Raises:
            SlurmError: scancel failed while the job runs (see :func:`.slurm_jobs.cancel`).
        """
        if not rec.slurm_job_id:
            return False
        info = jobs.job_info(rec.slurm_job_id)
        return info is not None and info.state == "RUNNING" and jobs.cancel(rec.slurm_job_id, batch_term=True)

    def supervisor_running(self, rec: StatusRecord) -> bool:
        """Slurm still has the job (or cannot be asked)."""
        if not rec.slurm_job_id:
            return False
        info = jobs.job_info(rec.slurm_job_id)
        return info is not None and (info is jobs.UNKNOWN or info.alive)

    def cli_running(self, rec: StatusRecord) -> bool:
        """Unknown from another host: True while the job runs (a stop then waits for the record)."""
        return self.supervisor_running(rec)

    def has_leftovers(self, rec: StatusRecord) -> bool:
        """Slurm still has the job of an ended run, or processes of its tree run on this host."""
        return self.supervisor_running(rec) or bool(leftover_tree(rec))

    def stop_leftovers(self, rec: StatusRecord, grace_s: float) -> bool:
        """``scancel`` the job if Slurm still has it; stop what of its tree runs on this host
        (PIDs checked by start time: on another host they match nothing).

        Raises:
            SlurmError: scancel failed while the job runs (see :func:`.slurm_jobs.cancel`); nothing was stopped.
        """
        cancelled = self.supervisor_running(rec) and jobs.cancel(rec.slurm_job_id or "")
        return get_executor("local").stop_leftovers(rec, grace_s) or bool(cancelled)

    def force_stop(self, rec: StatusRecord, grace_s: float) -> None:
        """``scancel`` the job (SIGTERM to all its processes, SIGKILL after Slurm's ``KillWait``).

        Raises:
            SlurmError: scancel failed while the job runs; the caller records nothing.
        """
        self.stop_leftovers(rec, grace_s)

    def alive_without_record(self, paths: StatePaths, name: str) -> bool:
        """Slurm has a live job of the agent's (:func:`.slurm_jobs.jobs_of`)."""
        return bool(jobs.jobs_of(paths, name))

    def stop_unreadable(self, paths: StatePaths, name: str, grace_s: float) -> bool:
        """``scancel --batch --signal=TERM`` the agent's running jobs (a pending one is
        cancelled at once: it has no supervisor to ask); a plain ``scancel`` for any still
        there after the grace plus 5 s.

        Raises:
            SlurmError: scancel failed while a job runs (see :func:`.slurm_jobs.cancel`).
        """
        found = jobs.jobs_of(paths, name)
        for job_id, state in found:
            jobs.cancel(job_id, batch_term=state == "RUNNING")
        deadline = time.monotonic() + grace_s + 5.0
        while time.monotonic() < deadline and any((jobs.job_info(j) or jobs.UNKNOWN).alive for j, _ in found):
            time.sleep(0.25)
        for job_id, _ in jobs.jobs_of(paths, name):
            jobs.cancel(job_id)
        return bool(found)
