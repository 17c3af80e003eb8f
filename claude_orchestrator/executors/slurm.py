"""The ``slurm`` executor: a Slurm batch job runs the run's supervisor.

The launcher writes the record, then :meth:`SlurmExecutor.submit` writes a
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
and what their answers mean) are in :mod:`.slurm_commands`.  Standard library only.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Sequence

from ..core import locks
from ..core.errors import BadInput, OrchestratorError
from ..core.files import write_atomic
from ..core.paths import StatePaths
from ..core.shell_words import VerbatimArg, split_words
from ..core.states import State
from ..records import lifecycle
from ..records.status_record import RecordStore, StatusRecord
from . import slurm_commands as jobs
from .base import Executor, Handoff, Liveness, Verdict
from .detach import supervisor_command
from .local import leftover_tree, stop_remains
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
        if dep_rec.spec.executor == SlurmExecutor.name and dep_rec.executor_ref:
            ids.append(dep_rec.executor_ref)
        else:
            waits_inside = True
    return ([f"--dependency=afterany:{':'.join(ids)}"] if ids else []), waits_inside


def _shlex():
    """:mod:`shlex`, imported when a job is submitted: this module is imported by every launch
    (its ``--slurm-arg`` option is registered in every launching script's parser)."""
    import shlex

    return shlex


def batch_script(argv: list[str], rec: StatusRecord) -> str:
    """The batch script: a comment naming the run, then ``exec`` of the supervisor (so Slurm tracks it)."""
    return (
        "#!/bin/sh\n"
        f"# claude_orchestrator: the supervisor of agent {rec.agent}, run {rec.run_id}\n"
        f"exec {_shlex().join(argv)}\n"
    )


#: The environment variable of sbatch options every Slurm run gets first (split as a shell splits words).
ARGS_ENV = "ORCHESTRATOR_SLURM_ARGS"
#: Variables of the launcher's environment that sbatch would read as options making one run other jobs.
_OTHER_JOBS_ENV = ("SBATCH_ARRAY_INX", "SBATCH_CLUSTERS", "SLURM_CLUSTERS")
#: The words of a job's log by which Slurm says it killed the job for its memory, without cgroups
#: (slurmstepd, ``JobAcctGatherParams=OverMemoryKill``: "Job N exceeded memory limit (X > Y), being killed").
_MEMORY_KILL_WORDS = "exceeded memory limit"
#: Bytes of a job's log read for those words (its end: the log is untrusted and may be large).
_LOG_TAIL_BYTES = 64 * 1024
#: sbatch processes a fan-out runs at once (:meth:`SlurmExecutor.submit`).  Each sbatch mostly waits for
#: the controller's answer, and slurmctld serves RPCs in threads of its own; measured on the test cluster
#: (2 cores): 200 held jobs in 0.67 s one after another, 0.46 s with 8 at once, no faster with 16.  Eight
#: keeps what one launcher puts on a shared login node and a site's controller modest.
SUBMIT_THREADS = 8


class SlurmExecutor(Executor):
    """A Slurm batch job runs the supervisor (see the module docstring).

    The run's reference (the record's ``executor_ref``, stored as ``slurm_job_id``)
    is the job ID; its options (``executor_args``, stored as ``options.slurm_args``)
    are sbatch options.
    """

    name = "slurm"
    keeps_queue = False
    submits_in_main_thread = False  # sbatch processes: a fan-out submits a chunk while it claims the next
    host_bound = False

    def submit(self, paths: StatePaths, runs: Sequence[tuple[StatusRecord, Handoff]]) -> list[BaseException | None]:
        """Submit one batch job per run (:meth:`_submit_one`), up to :data:`SUBMIT_THREADS` at once; a run's
        answer is the ``SlurmError`` or ``OSError`` its submission raised, else None.

        A run whose ``--after`` names another run of ``runs`` is submitted after the others, in
        order, so that its job depends on theirs (:func:`dependency_args` reads their job IDs
        from the records).  The launcher's descriptors stay on this host: the job's supervisor
        runs on a node, its liveness asked of Slurm.  An interrupt (Ctrl-C) lets the sbatch calls
        under way finish and submits no more: those runs have no job, and a reader finds them
        ``lost`` once the launcher has let go of their life locks.
        """
        names = {rec.agent for rec, _ in runs}
        first = [i for i, (rec, _) in enumerate(runs) if not names.intersection(rec.spec.after)]
        answers: list[BaseException | None] = [None] * len(runs)

        def one(i: int) -> None:
            try:
                self._submit_one(paths, runs[i][0])
            except (OSError, OrchestratorError) as exc:
                answers[i] = exc

        if len(first) > 1:
            from concurrent.futures import ThreadPoolExecutor  # threads: only a fan-out

            pool = ThreadPoolExecutor(max_workers=min(SUBMIT_THREADS, len(first)), thread_name_prefix="sbatch")
            try:
                for _ in pool.map(one, first):  # a bug's exception comes out here
                    pass
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        else:
            for i in first:
                one(i)
        for i in sorted(set(range(len(runs))) - set(first)):
            one(i)
        return answers

    def _submit_one(self, paths: StatePaths, rec: StatusRecord) -> None:
        """Write run ``rec``'s batch script, submit it, and record the job ID (``executor_ref``).

        Raises:
            SlurmError: sbatch failed (Slurm's message is in it); the caller records the run ``failed``.
            OSError: the batch script cannot be written.
        """
        store = RecordStore(paths)
        flags = ("--time-limit-signal", TIME_LIMIT_SIGNAL, "--ref-from-env", "SLURM_JOB_ID")
        argv, env = supervisor_command(paths, [], rec.agent, rec.run_id, flags=flags)
        for name in _OTHER_JOBS_ENV:  # one run is one job, on this cluster
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
            *rec.spec.executor_args,
        ]
        job_id = jobs.submit(script, options, env)
        rec.executor_ref = job_id

        def note(cur: StatusRecord) -> StatusRecord:
            cur.executor_ref = cur.executor_ref or job_id
            return cur

        try:
            stored = lifecycle.update_run(store, rec.agent, rec.run_id, note, durable=False)
        except BaseException:
            jobs.cancel_quietly(job_id)  # a job nobody can find again must not run
            raise
        if stored is None or stored.run_id != rec.run_id or (stored.state.is_terminal and stored.supervisor_pid is None):
            jobs.cancel_quietly(job_id)  # stopped (or replaced) before its supervisor claimed it: the job has nothing to do

    def probe(self, paths: StatePaths, recs: Sequence[StatusRecord], *, deep: bool = False) -> list[Liveness]:
        """One ``squeue`` for the jobs of ``recs`` (:func:`.slurm_commands.refresh`: none for answers under
        a second old), then for each run:

        - ALIVE: Slurm has the job pending or running, or it ended less than
          :func:`.slurm_commands.settle_s` seconds ago (its supervisor's last write may still
          be on its way over a shared filesystem); while sbatch has not answered (no job
          ID yet), the launcher's hold on the agent's life lock, on the launcher's host;
        - UNKNOWN: Slurm could not be asked (nothing is marked ``lost`` for an outage);
        - GONE: otherwise, with Slurm's last word on the job; ``ended`` is
          ``memory_exceeded`` if Slurm killed the job for its memory (state
          OUT_OF_MEMORY with cgroups; slurmstepd's words in the job's log without).

        An ended run is GONE, unless its ``--on-complete`` hook has not recorded its
        outcome: then as above (its supervisor runs the hook in the job).

        With ``deep``: the job still there is both the supervisor and the CLI
        (the CLI cannot be seen from another host); leftovers are the job, or processes
        of the run's recorded tree on this host (PIDs checked by start time).
        """
        asked = {id(r): r.executor_ref for r in recs
                 if r.executor_ref and (deep or r.state.is_active or r.state is State.LOST or r.hook_unfinished)}
        jobs.refresh(list(asked.values()))
        out = []
        for rec in recs:
            ref = asked.get(id(rec))  # an ended run's job is not asked about: GONE whatever Slurm says
            info = jobs.job_info(ref) if ref else None
            there = _still_there(info)
            answer = self._liveness(paths, rec, info)
            if deep:
                answer = answer._replace(
                    supervisor_running=there, cli_running=there, leftovers=there or bool(leftover_tree(rec))
                )
            out.append(answer)
        return out

    def _liveness(self, paths: StatePaths, rec: StatusRecord, info: jobs.JobInfo | None) -> Liveness:
        """:meth:`probe`'s answer for one run, Slurm's word on its job (``info``) known."""
        if not rec.state.is_active and not rec.hook_unfinished:
            return Liveness(Verdict.GONE)
        if not rec.state.is_active:  # its supervisor may still run the --on-complete hook in the job
            if info is jobs.UNKNOWN:
                return Liveness(Verdict.UNKNOWN, f"Slurm could not be asked about job {rec.executor_ref}")
            recent = info is not None and info.ended_at is not None and time.time() - info.ended_at < jobs.settle_s()
            return Liveness(Verdict.ALIVE if rec.executor_ref and (_still_there(info) or recent) else Verdict.GONE)
        if not rec.executor_ref:
            if locks.is_held(paths.alive_lock(rec.agent)):
                return Liveness(Verdict.ALIVE)
            return Liveness(Verdict.GONE, "sbatch never answered for this run; the run's outcome is unknown")
        job = rec.executor_ref
        if info is jobs.UNKNOWN:
            return Liveness(Verdict.UNKNOWN, f"Slurm could not be asked about job {job}")
        if info is None:
            return Liveness(
                Verdict.GONE, f"Slurm no longer has job {job} and the supervisor recorded no end; the run's outcome is unknown"
            )
        if info.alive or (info.ended_at is not None and time.time() - info.ended_at < jobs.settle_s()):
            return Liveness(Verdict.ALIVE)
        killed_for_memory = memory_kill_words(paths, rec) if info.state != "OUT_OF_MEMORY" else f"state {info.state}"
        if killed_for_memory:
            return Liveness(
                Verdict.GONE,
                f"Slurm killed job {job} for its memory before its supervisor recorded the end ({killed_for_memory})",
                State.MEMORY_EXCEEDED,
            )
        return Liveness(
            Verdict.GONE,
            f"Slurm job {job} ended {info.state} (reason {info.reason}) before its supervisor "
            "recorded the end; the run's outcome is unknown",
        )

    def stop(self, runs: Sequence[tuple[StatusRecord, float]], *, force: bool = False) -> list[bool | OrchestratorError]:
        """Stop each ``(record, grace_s)``'s job, Slurm asked once for all of them: one ``scancel``
        (:func:`.slurm_commands.cancel_many`), after one ``squeue`` without ``force`` (:func:`.slurm_commands.refresh`).

        Without ``force``: ``scancel --batch --signal=TERM`` to the running jobs (each supervisor
        stops its tree and records ``killed``); False for a job that is not running (a pending one
        is cancelled by ``force``).  With ``force``: ``scancel`` the jobs (SIGTERM to all their
        processes, SIGKILL after Slurm's ``KillWait``; Slurm's answer tells a job it no longer runs,
        and no ``squeue`` is asked unless scancel fails for one), then stop what of each run's tree
        runs on this host (PIDs checked by start time: on another host they match nothing), one
        run after another (a run that never started has none).

        Returns:
            One answer per run, in order: as :meth:`..base.Executor.stop` says, or the ``SlurmError``
            of a job scancel failed to stop while it runs (:func:`.slurm_commands.cancel`): nothing
            more was done for that run.
        """
        refs = [rec.executor_ref or "" for rec, _ in runs]
        if not force:
            jobs.refresh([job for job in refs if job])  # scancel --batch cannot signal a pending job: it retries
            infos = [jobs.job_info(job) if job else None for job in refs]
            running = [job for job, info in zip(refs, infos, strict=True) if info is not None and info is not jobs.UNKNOWN and info.state == "RUNNING"]
            asked = jobs.cancel_many(running, batch_term=True)
            return [asked.get(job, False) if job else False for job in refs]
        cancelled = jobs.cancel_many([job for job in refs if job])  # a job that has ended is an answer (False), not an error
        out: list[bool | OrchestratorError] = []
        for (rec, grace_s), job in zip(runs, refs, strict=True):
            answer = cancelled.get(job, False) if job else False
            out.append(answer if isinstance(answer, SlurmError) else stop_remains(rec, grace_s) or answer)
        return out

    def unreadable_runs(self, paths: StatePaths, name: str, *, stop_grace_s: float | None = None) -> list[str]:
        """The agent's live jobs (:func:`.slurm_commands.jobs_of`: by job name and batch script), as ``job N``.

        With ``stop_grace_s``: ``scancel --batch --signal=TERM`` the running jobs (a pending
        one is cancelled at once: it has no supervisor to ask); a plain ``scancel`` for any
        still there after the grace plus 5 s.

        Raises:
            SlurmError: scancel failed while a job runs (see :func:`.slurm_commands.cancel`).
        """
        found = jobs.jobs_of(paths, name)
        if stop_grace_s is not None and found:
            asked = jobs.cancel_many([j for j, state in found if state == "RUNNING"], batch_term=True)
            _raise_first({**asked, **jobs.cancel_many([j for j, state in found if state != "RUNNING"])})
            deadline = time.monotonic() + stop_grace_s + 5.0
            while time.monotonic() < deadline and any((jobs.job_info(j) or jobs.UNKNOWN).alive for j, _ in found):
                time.sleep(0.25)
            _raise_first(jobs.cancel_many([j for j, _ in jobs.jobs_of(paths, name)]))
        return [f"job {job_id}" for job_id, _ in found]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """``--slurm-arg ARG`` (repeatable): an sbatch option, as is, even one that begins with ``-`` (:class:`..core.shell_words.VerbatimArg`)."""
        parser.add_argument(
            "--slurm-arg",
            metavar="ARG",
            action=VerbatimArg,  # takes a next word that begins with '-': --slurm-arg --hold
            help="an sbatch option, as is (repeatable), e.g. --slurm-arg --partition=gpu --slurm-arg --hold; "
            f"after ${ARGS_ENV} and the profile's slurm_args (implies --executor slurm)",
        )

    @classmethod
    def options_from(cls, args: argparse.Namespace, profile: dict, previous: Sequence[str] | None = None) -> tuple[str, ...]:
        """The sbatch options: ``$ORCHESTRATOR_SLURM_ARGS`` (split as a shell splits words), then the
        profile's ``slurm_args``, then each ``--slurm-arg``: sbatch lets a later option win, so the
        command line wins.  A resumed run keeps ``previous`` unless the profile or the environment give some.

        Raises:
            BadInput: unbalanced quotes in ``$ORCHESTRATOR_SLURM_ARGS``, ``--max-parallel`` (the cluster
                schedules the runs), or an sbatch option that would make one run more or other jobs
                than one (``--array``, ``--clusters``) (exit 2).
        """
        if getattr(args, "max_parallel", None) is not None:
            raise BadInput(
                "--max-parallel limits the runs of this machine; on Slurm the cluster schedules them: limit them "
                "with a license your site defines (--slurm-arg=--licenses=NAME:1) or your QOS (see docs/slurm.md, "
                "How the concepts map\")"
            )
        given = list(getattr(args, "slurm_arg", None) or [])
        from_env_text = os.environ.get(ARGS_ENV, "")
        if previous is not None and not (given or profile.get("slurm_args") or from_env_text):
            return tuple(previous)
        sbatch_args = tuple(split_words(from_env_text, ARGS_ENV) + list(profile.get("slurm_args", [])) + given)
        _refuse_other_jobs(sbatch_args)
        return sbatch_args


def _refuse_other_jobs(sbatch_args: tuple[str, ...]) -> None:
    """Refuse sbatch options that make one run other jobs than one, on another cluster than ``SLURM_CONF``'s.

    Raises:
        BadInput: ``--array`` or ``--clusters`` (or a prefix sbatch takes for them: getopt), ``-a``, ``-M`` (exit 2).
    """
    for arg in sbatch_args:
        option = arg.split("=", 1)[0]
        if (len(option) >= 5 and "--array".startswith(option)) or option in ("--cluster", "--clusters") or arg.startswith(("-a", "-M")):
            raise BadInput(
                f"sbatch option {arg!r}: one run is one job on the default cluster; give the tasks to "
                "launch_parallel.py instead of --array, and set SLURM_CONF for another cluster instead of --clusters"
            )


def _raise_first(answers: dict[str, bool | SlurmError]) -> None:
    """Raise the first :class:`SlurmError` among :func:`.slurm_commands.cancel_many`'s answers, if any."""
    for answer in answers.values():
        if isinstance(answer, SlurmError):
            raise answer


def _still_there(info: jobs.JobInfo | None) -> bool:
    """Slurm still has the job (pending, running, ...) or cannot be asked (then it may: nothing is judged)."""
    return info is not None and (info is jobs.UNKNOWN or info.alive)


def memory_kill_words(paths: StatePaths, rec: StatusRecord) -> str | None:
    """Slurm's line in the job's log (the run's ``log_file``, sbatch ``--output``) saying it killed the
    job for its memory, or None.  Only the log's last :data:`_LOG_TAIL_BYTES` bytes are read."""
    log = paths.log(rec.agent, rec.run_id)
    if rec.log_file != str(log):  # the record is untrusted: read only the run's own log, where sbatch --output put it
        return None
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - _LOG_TAIL_BYTES))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if _MEMORY_KILL_WORDS in line and "slurmstepd" in line:
            return line.strip()[:300]
    return None
