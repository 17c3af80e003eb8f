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

Facts used here were checked on Slurm 22.05 (``../shared/SLURM.md``):
``sbatch --parsable`` prints ``JOBID`` or ``JOBID;CLUSTER``; ``squeue -t all -j
IDS`` lists jobs in any state until ``MinJobAge`` seconds after their end, and
exits 1 with "Invalid job id specified" when it knows none of them; ``scancel
--batch`` cannot signal a pending job.  Standard library only.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from . import lifecycle, locks
from .errors import OrchestratorError
from .executor import Executor, get_executor, leftover_tree, supervisor_command
from .paths import StatePaths
from .record import RecordStore, StatusRecord, write_atomic
from .states import ExitCode

#: Seconds ``sbatch`` may take (it answers in milliseconds; a controller that does not answer is an error).
SUBMIT_TIMEOUT_S = 30.0
#: Seconds ``squeue``/``scancel`` may take; they block while the controller is down
#: (squeue gives up by itself after about 18 s on Slurm 22.05's default MessageTimeout).
QUERY_TIMEOUT_S = 5.0
#: Seconds Slurm is not asked again after a query failed: a reader pays the timeout once, not once per record.
DOWN_RETRY_S = 30.0
#: Seconds an answer of ``squeue`` is reused (a reader of 200 records asks once; a waiter once a second).
CACHE_S = 1.0
#: Job states in which Slurm still has the job (squeue(1), "JOB STATE CODES"): its supervisor is alive or to come.
ALIVE_JOB_STATES = frozenset({
    "PENDING", "CONFIGURING", "RUNNING", "SUSPENDED", "COMPLETING", "STOPPED", "SIGNALING", "STAGE_OUT",
    "RESIZING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SPECIAL_EXIT",
})
#: Seconds after a job's end before a run whose record is still active is taken as ``lost``
#: (``ORCHESTRATOR_SLURM_SETTLE``): on a shared filesystem the supervisor's last write
#: may reach this host later than Slurm's word that the job ended (NFS caches a
#: folder's entries for ``acdirmin``-``acdirmax`` seconds, 30-60 by default).
DEFAULT_SETTLE_S = 30.0
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


class SlurmError(OrchestratorError):
    """Slurm refused a request or could not be asked: exit status 69 (sysexits.h EX_UNAVAILABLE)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNAVAILABLE)


class JobInfo(NamedTuple):
    """What ``squeue`` says of one job: ``state`` (e.g. ``PENDING``, ``CANCELLED``), ``reason``
    (e.g. ``JobHeldUser``) and, once it has ended, ``ended_at`` (seconds since the epoch)."""

    state: str
    reason: str
    ended_at: float | None = None

    @property
    def alive(self) -> bool:
        """True if Slurm still has the job pending or running (:data:`ALIVE_JOB_STATES`)."""
        return self.state in ALIVE_JOB_STATES


#: Answer of :func:`job_info` when Slurm could not be asked.
UNKNOWN = JobInfo("UNKNOWN", "Slurm could not be asked")
_cache: dict[str, tuple[float, JobInfo | None]] = {}
_down_until = 0.0  # time.monotonic() before which Slurm is not asked again (a query failed)


def _command(name: str) -> str:
    """The path of Slurm command ``name``.

    Raises:
        SlurmError: it is not on PATH.
    """
    found = shutil.which(name)
    if found is None:
        raise SlurmError(f"{name} not found on PATH: the slurm executor needs Slurm's client commands (sbatch, squeue, scancel)")
    return found


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a Slurm command (no shell), capturing its output as text.

    Raises:
        SlurmError: the command is missing or did not answer within ``timeout`` seconds.
    """
    argv = [_command(argv[0]), *argv[1:]]
    try:
        return subprocess.run(  # noqa: S603 - an argument vector, no shell
            argv, env=env, capture_output=True, text=True, errors="replace", timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise SlurmError(f"{os.path.basename(argv[0])} did not answer within {timeout:g} s: is slurmctld up?") from exc
    except OSError as exc:
        raise SlurmError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


def _first_line(text: str) -> str:
    """The first non-empty line of a command's stderr, stripped (Slurm's message), or ``no message``."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0][:500] if lines else "no message"


# -- asking Slurm ----------------------------------------------------------------


def submit(script: Path, options: list[str], env: dict[str, str]) -> str:
    """Submit batch script ``script`` with ``sbatch --parsable OPTIONS SCRIPT``.

    Returns:
        The job ID, as text (``--parsable`` prints ``JOBID[;CLUSTER]``).

    Raises:
        SlurmError: sbatch failed (its message is in the error) or printed no job ID.
    """
    done = _run(["sbatch", "--parsable", *options, str(script)], SUBMIT_TIMEOUT_S, env)
    if done.returncode != 0:
        raise SlurmError(f"sbatch failed (exit {done.returncode}): {_first_line(done.stderr)}")
    job_id = (done.stdout.strip().splitlines() or [""])[-1].split(";")[0].strip()
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed no job ID: {done.stdout.strip()[:200]!r}")
    return job_id


def query(job_ids: list[str]) -> dict[str, JobInfo] | None:
    """Ask ``squeue`` once about ``job_ids``: ``{job_id: JobInfo}`` for those Slurm still has.

    A job missing from the answer is one Slurm no longer has (ended more than
    ``MinJobAge`` seconds ago, or never submitted).  The answers are kept for
    :data:`CACHE_S` seconds for :func:`job_info`.

    Returns:
        The answer, or None if Slurm could not be asked (no squeue, no
        controller); then it is not asked again for :data:`DOWN_RETRY_S` seconds.
    """
    global _down_until
    ids = sorted({j for j in job_ids if j.isdigit()})
    if not ids:
        return {}
    if time.monotonic() < _down_until:
        return None
    try:
        done = _run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%r|%e", "-j", ",".join(ids)], QUERY_TIMEOUT_S)
    except SlurmError:
        done = None
    if done is None or (done.returncode != 0 and "Invalid job id" not in done.stderr):
        _down_until = time.monotonic() + DOWN_RETRY_S
        return None
    found: dict[str, JobInfo] = {}
    for line in done.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0] in ids:
            found[parts[0]] = JobInfo(parts[1], parts[2], _end_time(parts[3]))
    now = time.monotonic()
    for job_id in ids:
        _cache[job_id] = (now, found.get(job_id))
    return found


def _end_time(text: str) -> float | None:
    """squeue's ``%e`` (``2026-11-22T10:55:19``, local time; ``Unknown`` or ``N/A`` before the end) in seconds since the epoch."""
    try:
        return time.mktime(time.strptime(text.strip(), "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None


def settle_s() -> float:
    """``$ORCHESTRATOR_SLURM_SETTLE`` seconds (a number of 0 or more), else :data:`DEFAULT_SETTLE_S`."""
    try:
        value = float(os.environ.get("ORCHESTRATOR_SLURM_SETTLE", DEFAULT_SETTLE_S))
    except ValueError:
        return DEFAULT_SETTLE_S
    return value if 0 <= value < math.inf else DEFAULT_SETTLE_S


def job_info(job_id: str) -> JobInfo | None:
    """What Slurm says of ``job_id`` now (an answer at most :data:`CACHE_S` old).

    Returns:
        Its :class:`JobInfo`; None if Slurm no longer has it; :data:`UNKNOWN` if Slurm could not be asked.
    """
    seen = _cache.get(job_id)
    if seen is not None and time.monotonic() - seen[0] < CACHE_S:
        return seen[1]
    found = query([job_id])
    return UNKNOWN if found is None else found.get(job_id)


def cancel(job_id: str, *, batch_term: bool = False) -> bool:
    """``scancel JOB`` (SIGTERM to every process of the job, SIGKILL after ``KillWait``), or with
    ``batch_term`` ``scancel --batch --signal=TERM JOB`` (SIGTERM to the batch step's script alone).

    Returns:
        True if scancel succeeded; False if it failed because Slurm no longer runs the job.

    Raises:
        SlurmError: scancel is missing, did not answer (the controller is down), or
            failed while the job still runs or cannot be asked about (a bad
            ``SLURM_CONF``, no permission): nothing was stopped; Slurm's message is in it.
    """
    _cache.pop(job_id, None)
    argv = ["scancel", "--batch", "--signal=TERM", job_id] if batch_term else ["scancel", job_id]
    try:
        done = _run(argv, QUERY_TIMEOUT_S)
    except SlurmError as exc:
        raise SlurmError(f"cannot stop Slurm job {job_id}: {exc}") from exc
    if done.returncode == 0 and "error" not in done.stderr.lower():
        return True
    _cache.pop(job_id, None)
    info = job_info(job_id)
    if info is None or (info is not UNKNOWN and not info.alive):
        return False
    raise SlurmError(f"cannot stop Slurm job {job_id}: scancel failed (exit {done.returncode}): {_first_line(done.stderr)}")


def _cancel_quietly(job_id: str) -> None:
    """:func:`cancel`, best effort: a job left behind here finds its run ended and exits at once."""
    try:
        cancel(job_id)
    except SlurmError:
        pass


def jobs_of(paths: StatePaths, name: str) -> list[tuple[str, str]]:
    """``(job ID, state)`` of the live jobs that run a supervisor of agent ``name`` under this state root.

    Found by job name and batch script (``squeue -n NAME -o %i|%T|%o``: the
    script is ``outputs/<name>/<run_id>.sbatch``), for a run whose record
    cannot be read.  Slurm is not asked unless the agent has a batch script.
    """
    folder = paths.run_dir(name)
    try:
        if not any(folder.glob("*.sbatch")):
            return []
        done = _run(["squeue", "-h", "-n", name, "-o", "%i|%T|%o"], QUERY_TIMEOUT_S)
    except (OSError, SlurmError):
        return []
    out = []
    for line in done.stdout.splitlines():
        parts = line.strip().split("|", 2)
        if len(parts) == 3 and parts[1] in ALIVE_JOB_STATES and Path(parts[2]).parent == folder:
            out.append((parts[0], parts[1]))
    return out


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
        argv, env = supervisor_command(paths, [], rec.agent, rec.run_id)
        argv[-2:-2] = ["--slurm-job"]  # before NAME RUN_ID
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
        job_id = submit(script, options, env)
        rec.slurm_job_id = job_id

        def note(cur: StatusRecord) -> StatusRecord:
            cur.slurm_job_id = cur.slurm_job_id or job_id
            return cur

        try:
            stored = lifecycle.update_run(store, rec.agent, rec.run_id, note, durable=False)
        except BaseException:
            _cancel_quietly(job_id)  # a job nobody can find again must not run
            raise
        if stored is None or stored.run_id != rec.run_id or (stored.state.is_terminal and stored.supervisor_pid is None):
            _cancel_quietly(job_id)  # stopped (or replaced) before its supervisor claimed it: the job has nothing to do

    def is_alive(self, paths: StatePaths, rec: StatusRecord) -> bool:
        """Slurm still has the run's job pending or running, or it ended less than
        :func:`settle_s` seconds ago (its supervisor's last write may still be on its
        way over a shared filesystem); while sbatch has not answered (no job ID
        yet), the launcher's hold on the agent's life lock, on the launcher's host."""
        if not rec.state.is_active:
            return False
        if not rec.slurm_job_id:
            return locks.is_held(paths.alive_lock(rec.agent))
        info = job_info(rec.slurm_job_id)
        if info is None:
            return False
        if info is UNKNOWN or info.alive:
            return True
        return info.ended_at is not None and time.time() - info.ended_at < settle_s()

    def look_ahead(self, recs: list[StatusRecord]) -> None:
        """One ``squeue`` for the jobs of ``recs`` (:func:`query`)."""
        query([r.slurm_job_id for r in recs if r.slurm_job_id])

    def gone_reason(self, rec: StatusRecord) -> str:
        """Slurm's last word on the job: its state and reason while it still knows it."""
        if not rec.slurm_job_id:
            return "sbatch never answered for this run; the run's outcome is unknown"
        info = job_info(rec.slurm_job_id)
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
            SlurmError: scancel failed while the job runs (see :func:`cancel`).
        """
        if not rec.slurm_job_id:
            return False
        info = job_info(rec.slurm_job_id)
        return info is not None and info.state == "RUNNING" and cancel(rec.slurm_job_id, batch_term=True)

    def supervisor_running(self, rec: StatusRecord) -> bool:
        """Slurm still has the job (or cannot be asked)."""
        if not rec.slurm_job_id:
            return False
        info = job_info(rec.slurm_job_id)
        return info is not None and (info is UNKNOWN or info.alive)

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
            SlurmError: scancel failed while the job runs (see :func:`cancel`); nothing was stopped.
        """
        cancelled = self.supervisor_running(rec) and cancel(rec.slurm_job_id or "")
        return get_executor("local").stop_leftovers(rec, grace_s) or bool(cancelled)

    def force_stop(self, rec: StatusRecord, grace_s: float) -> None:
        """``scancel`` the job (SIGTERM to all its processes, SIGKILL after Slurm's ``KillWait``).

        Raises:
            SlurmError: scancel failed while the job runs; the caller records nothing.
        """
        self.stop_leftovers(rec, grace_s)

    def alive_without_record(self, paths: StatePaths, name: str) -> bool:
        """Slurm has a live job of the agent's (:func:`jobs_of`)."""
        return bool(jobs_of(paths, name))

    def stop_unreadable(self, paths: StatePaths, name: str, grace_s: float) -> bool:
        """``scancel --batch --signal=TERM`` the agent's running jobs (a pending one is
        cancelled at once: it has no supervisor to ask); a plain ``scancel`` for any still
        there after the grace plus 5 s.

        Raises:
            SlurmError: scancel failed while a job runs (see :func:`cancel`).
        """
        jobs = jobs_of(paths, name)
        for job_id, state in jobs:
            cancel(job_id, batch_term=state == "RUNNING")
        deadline = time.monotonic() + grace_s + 5.0
        while time.monotonic() < deadline and any((job_info(j) or UNKNOWN).alive for j, _ in jobs):
            time.sleep(0.25)
        for job_id, _ in jobs_of(paths, name):
            cancel(job_id)
        return bool(jobs)
