"""Asking Slurm about jobs: ``sbatch``, ``squeue`` and ``scancel``, with timeouts and a short memory.

The commands the slurm executor (:mod:`.slurm`) runs, never through a shell,
each bounded by a timeout (Slurm's client commands block while the controller
is down), and what their answers mean.  Facts checked on Slurm 22.05
(``../shared/SLURM.md``): ``sbatch --parsable`` prints ``JOBID`` or
``JOBID;CLUSTER``; ``squeue -t all -j IDS`` lists jobs in any state until
``MinJobAge`` seconds after their end, and exits 1 with "Invalid job id
specified" when it knows none of them; ``scancel --batch`` cannot signal a
pending job.  Standard library only.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from ..core.errors import OrchestratorError
from ..core.paths import StatePaths
from ..core.states import ExitCode

#: Seconds ``sbatch`` may take (it answers in milliseconds; a controller that does not answer is an error).
SUBMIT_TIMEOUT_S = 30.0
#: Seconds ``squeue``/``scancel`` may take; they block while the controller is down
#: (squeue gives up by itself after about 18 s on Slurm 22.05's default MessageTimeout).
QUERY_TIMEOUT_S = 5.0
#: Seconds Slurm is not asked again after a query failed: a reader pays the timeout once, not once per record.
DOWN_RETRY_S = 30.0
#: Seconds one ``scancel`` of several jobs may take besides :data:`QUERY_TIMEOUT_S`, a job (one scancel of
#: 1,000 held jobs took 0.3-0.55 s on the test cluster).
CANCEL_S_PER_JOB = 0.01
#: How scancel names a job it could not cancel or signal (Slurm 22.05's src/scancel/scancel.c):
#: ``scancel: error: Kill job error on job id 17: Invalid job id specified``.
_CANCEL_ERROR_RE = re.compile(r"\berror on job (?:step )?id (\d+)\b")
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
    import shutil  # here: a queued Slurm run's supervisor reaches this module, and the supervisor avoids shutil (its RSS)

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


def refresh(job_ids: list[str]) -> None:
    """Ask ``squeue`` once (:func:`query`) about those of ``job_ids`` whose answer is older than
    :data:`CACHE_S` seconds (or missing), so that :func:`job_info` then answers each from memory:
    one question for a reader's many records, none for a stop that re-checks a job every 50 ms."""
    now = time.monotonic()
    stale = [j for j in job_ids if (seen := _cache.get(j)) is None or now - seen[0] >= CACHE_S]
    if stale:
        query(stale)


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
    ``batch_term`` ``scancel --batch --signal=TERM JOB`` (SIGTERM to the batch step's script alone):
    :func:`cancel_many` of one job.

    Returns:
        True if scancel succeeded; False if it failed because Slurm no longer runs the job
        (it has ended, or Slurm does not know it).

    Raises:
        SlurmError: scancel is missing, did not answer (the controller is down), or
            failed while the job still runs or cannot be asked about (a bad
            ``SLURM_CONF``, no permission): nothing was stopped; Slurm's message is in it.
    """
    answer = cancel_many([job_id], batch_term=batch_term)[job_id]
    if isinstance(answer, SlurmError):
        raise answer
    return answer


def cancel_many(job_ids: list[str], *, batch_term: bool = False) -> dict[str, bool | SlurmError]:
    """:func:`cancel` of several jobs with one ``scancel`` (it takes many job IDs).

    What scancel does with several (Slurm 22.05, tried on the test cluster): it
    cancels, or signals, each of them, and names on stderr each job it could
    not, a line each (``scancel: error: Kill job error on job id 17: Invalid job
    id specified``); with ``--batch --signal=TERM`` it then exits 1, the other jobs
    signalled all the same.  A plain ``scancel`` passes over a job that has ended
    or that Slurm does not know without a word (exit 0) unless ``--verbose``
    (still exit 0), which it is given, so that such a job is told from a cancelled
    one without asking ``squeue`` first.  So a job named on stderr failed; if
    scancel failed and named no job (a bad ``SLURM_CONF``, no controller), every
    job did.  The failed ones are then asked about with one ``squeue``: one that
    Slurm no longer runs is False.  One scancel of 1,000 held jobs took 0.3-0.55 s
    here; it may take :data:`QUERY_TIMEOUT_S` plus :data:`CANCEL_S_PER_JOB` a job.

    Returns:
        ``{job_id: answer}`` for each of ``job_ids``: True (scancel succeeded for it),
        False (it failed because Slurm no longer runs the job), or the
        :class:`SlurmError` that :func:`cancel` raises for it (nothing was stopped).
    """
    ids = list(dict.fromkeys(job_ids))
    if not ids:
        return {}
    for job_id in ids:
        _cache.pop(job_id, None)
    argv = ["scancel", "--batch", "--signal=TERM", *ids] if batch_term else ["scancel", "--verbose", *ids]
    try:
        done = _run(argv, QUERY_TIMEOUT_S + CANCEL_S_PER_JOB * len(ids))
    except SlurmError as exc:
        return {job_id: SlurmError(f"cannot stop Slurm job {job_id}: {exc}") for job_id in ids}
    errors = [line.strip() for line in done.stderr.splitlines() if "error" in line.lower()]
    named: dict[str, str] = {}
    for line in errors:
        found = _CANCEL_ERROR_RE.search(line)
        if found and found.group(1) in ids:
            named.setdefault(found.group(1), line)
    if len(named) < len(errors) or (done.returncode != 0 and not named):  # a line of no job of ours: it says why all failed
        named = dict.fromkeys(ids, _first_line(done.stderr))
    answers: dict[str, bool | SlurmError] = dict.fromkeys(ids, True)
    if not named:
        return answers
    now = query(list(named))
    for job_id, line in named.items():
        info = None if now is None else now.get(job_id, None)
        if now is not None and (info is None or not info.alive):
            answers[job_id] = False
        else:
            answers[job_id] = SlurmError(f"cannot stop Slurm job {job_id}: scancel failed (exit {done.returncode}): {line[:500]}")
    return answers


def cancel_quietly(job_id: str) -> None:
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
