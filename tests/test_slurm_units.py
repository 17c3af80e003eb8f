"""The slurm executor's parts that need no cluster: options, limits, dependencies,
the batch script, and how Slurm's answers are read (its commands replaced by stubs).

The end-to-end behaviour on a real (private) cluster is in test_slurm.py.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import time

import pytest

from claude_orchestrator.commands import options
from claude_orchestrator.core.errors import BadInput
from claude_orchestrator.core.limits import RunLimits
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import ExitCode, State
from claude_orchestrator.executors import slurm, slurm_commands
from claude_orchestrator.executors.base import Handoff, Verdict
from claude_orchestrator.records.spec import RunSpec
from claude_orchestrator.records.status_record import RecordStore, StatusRecord


def args(**given) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    options.add_run_options(p)
    ns = p.parse_args([])
    for key, value in given.items():
        setattr(ns, key, value)
    return ns


def record(name: str = "a1", status: State = State.QUEUED, **fields) -> StatusRecord:
    rec = StatusRecord(agent=name, run_id=f"r-{name}", task="t", **fields)
    rec.status = status
    return rec


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    slurm_commands._cache.clear()
    monkeypatch.setattr(slurm_commands, "_down_until", 0.0)
    monkeypatch.setattr(slurm_commands, "CACHE_S", 3600.0)  # an answer stays fresh for the whole test, however loaded the machine
    yield
    slurm_commands._cache.clear()


# -- where a run goes ------------------------------------------------------------


def test_executor_comes_from_the_flag_then_the_profile_then_the_environment(monkeypatch):
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_SLURM_ARGS", raising=False)
    assert options.executor_options(args()) == {"executor": "local", "executor_args": ()}
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "slurm")
    assert options.executor_options(args())["executor"] == "slurm"
    assert options.executor_options(args(), {"executor": "local"})["executor"] == "local"
    assert options.executor_options(args(executor="slurm"), {"executor": "local"})["executor"] == "slurm"


def test_sbatch_options_come_from_the_environment_then_the_profile_then_the_flags(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_SLURM_ARGS", "--partition=batch '--comment=two words'")
    got = options.executor_options(args(executor="slurm", slurm_arg=["--hold"]), {"slurm_args": ["--qos=low"]})
    assert got["executor_args"] == ("--partition=batch", "--comment=two words", "--qos=low", "--hold")


@pytest.mark.parametrize(
    ("env", "given", "message"),
    [
        ({"ORCHESTRATOR_EXECUTOR": "k8s"}, {}, "no such executor"),
        ({}, {"executor": "local", "slurm_arg": ["--hold"]}, "--slurm-arg is for --executor slurm"),
        ({}, {"slurm_arg": ["--array=1-10"]}, "'--array=1-10'"),
        ({}, {"slurm_arg": ["--arr=1-2"]}, "'--arr=1-2'"),
        ({}, {"slurm_arg": ["--cluster=x"]}, "'--cluster=x'"),
        ({}, {"slurm_arg": ["-M", "other"]}, "'-M'"),
        ({"ORCHESTRATOR_SLURM_ARGS": "--clusters=x"}, {"executor": "slurm"}, "SLURM_CONF"),
        ({}, {"executor": "slurm", "max_parallel": 3}, "--licenses"),
        ({"ORCHESTRATOR_SLURM_ARGS": "'unbalanced"}, {"executor": "slurm"}, "ORCHESTRATOR_SLURM_ARGS"),
    ],
)
def test_bad_executor_options_are_refused_with_what_to_do(monkeypatch, env, given, message):
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(BadInput, match=message):
        options.executor_options(args(**given))


def test_an_sbatch_option_alone_asks_for_slurm(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "local")
    assert options.executor_options(args(slurm_arg=["--hold"])) == {"executor": "slurm", "executor_args": ("--hold",)}


def test_the_environment_max_parallel_does_not_stop_a_slurm_launch(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_MAX_PARALLEL", "2")
    assert options.run_spec(args(executor="slurm"), None, {}).executor == "slurm"


# -- the job's options -------------------------------------------------------------


def test_time_and_memory_are_a_little_above_the_run_limits():
    rec = record(spec=RunSpec(limits=RunLimits(timeout_s=600, kill_grace_s=10, memory_limit_mb=2048)))
    assert slurm.limit_args(rec) == ["--time=14", "--mem=2816M"]  # ceil((600+10+60+120)/60); ceil(2048*1.25+256)
    assert slurm.limit_args(record(spec=RunSpec(limits=RunLimits(timeout_s=0, memory_limit_mb=0)))) == []
    retried = record(spec=RunSpec(limits=RunLimits(timeout_s=60, kill_grace_s=0, memory_limit_mb=0, retries=3, retry_backoff_s=1)))
    assert slurm.limit_args(retried) == ["--time=7"], "3 attempts counted of 60 s, backoffs 1+2 s, lead and margin: 363 s"
    huge = record(spec=RunSpec(limits=RunLimits(timeout_s=60, kill_grace_s=0, memory_limit_mb=0, retries=10**6)))
    assert slurm.limit_args(huge) == ["--time=7"], "retries beyond the counted ones do not grow the job's limit"
    slow = record(spec=RunSpec(limits=RunLimits(kill_grace_s=100)))
    assert slurm.time_limit_lead_s(slow) == 130 and slurm.time_limit_lead_s(rec) == 60
    assert slurm.limit_args(rec, waits_inside=True) == ["--mem=2816M"], "no --time while it waits for a local agent"


def test_after_becomes_afterany_on_the_active_slurm_jobs_only(tmp_path):
    store = RecordStore(StatePaths(tmp_path))
    store.paths.ensure()
    deps = {
        "s1": record("s1", State.RUNNING, executor_ref="11", spec=RunSpec(executor="slurm")),
        "s2": record("s2", State.QUEUED, executor_ref="12", spec=RunSpec(executor="slurm")),
        "done": record("done", State.COMPLETED, executor_ref="13", spec=RunSpec(executor="slurm")),
        "loc": record("loc", State.RUNNING),
    }
    for rec in deps.values():
        store.write(rec)
    rec = record("b", State.WAITING, spec=RunSpec(executor="slurm", after=("s1", "done", "loc", "s2", "ghost")))
    assert slurm.dependency_args(store, rec) == (["--dependency=afterany:11:12"], True), "loc runs here: waited for inside"
    assert slurm.dependency_args(store, record("c", spec=RunSpec(after=("done",)))) == ([], False)
    assert slurm.dependency_args(store, record("d", spec=RunSpec(after=("s1",)))) == (["--dependency=afterany:11"], False)


def test_the_batch_script_execs_the_supervisor_with_every_argument_quoted():
    argv = ["/opt/py thon/bin/python", "-S", "-m", "claude_orchestrator.supervisor", "--root", "/state/it's", "a1", "r1"]
    script = slurm.batch_script(argv, record())
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh" and lines[-1].startswith("exec ")
    assert shlex.split(lines[-1])[1:] == argv


# -- reading Slurm's answers -----------------------------------------------------------


def stub_run(monkeypatch, answers: list[subprocess.CompletedProcess | Exception]) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake(argv, timeout, env=None):
        calls.append(argv)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(slurm_commands, "_run", fake)
    return calls


def done(rc: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], rc, out, err)


def test_submit_reads_the_job_id_and_reports_slurms_message(monkeypatch, tmp_path):
    stub_run(monkeypatch, [done(out="4711;cluster\n"), done(1, err="sbatch: error: invalid partition specified: gpu\n")])
    assert slurm_commands.submit(tmp_path / "s.sbatch", [], {}) == "4711"
    with pytest.raises(slurm_commands.SlurmError, match="invalid partition specified: gpu") as caught:
        slurm_commands.submit(tmp_path / "s.sbatch", ["--partition=gpu"], {})
    assert caught.value.exit_code == ExitCode.UNAVAILABLE == 69


def test_query_asks_once_and_tells_gone_from_unknown(monkeypatch):
    calls = stub_run(monkeypatch, [
        done(out="11|PENDING|JobHeldUser|Unknown\n12|CANCELLED|None|2026-11-22T10:55:19\n"),
        done(1, err="slurm_load_jobs error: Invalid job id specified"),
        slurm_commands.SlurmError("squeue did not answer within 10 s"),
    ])
    slurm_commands.query(["11", "12", "13"])
    assert len(calls) == 1 and calls[0][-1] == "11,12,13"
    assert slurm_commands.job_info("11") == slurm_commands.JobInfo("PENDING", "JobHeldUser") and slurm_commands.job_info("11").alive
    assert not slurm_commands.job_info("12").alive
    assert slurm_commands.job_info("12").ended_at == time.mktime((2026, 11, 22, 10, 55, 19, 0, 0, -1))
    assert slurm_commands.job_info("13") is None, "a job squeue did not list is gone"
    assert len(calls) == 1, "answers are reused for a moment"
    slurm_commands._cache.clear()
    assert slurm_commands.job_info("14") is None, "'Invalid job id' means Slurm no longer has it"
    assert slurm_commands.job_info("15") is slurm_commands.UNKNOWN, "no answer is not an answer"
    assert slurm_commands.job_info("16") is slurm_commands.UNKNOWN and len(calls) == 3, "a controller that did not answer is not asked again at once"


def test_liveness_asks_slurm_and_an_outage_marks_nothing_lost(monkeypatch, tmp_path):
    paths = StatePaths(tmp_path)
    ex = slurm.SlurmExecutor()
    rec = record(spec=RunSpec(executor="slurm"), executor_ref="11")

    def probe(info, r=rec):
        monkeypatch.setattr(slurm_commands, "job_info", lambda _j: info)
        monkeypatch.setattr(slurm_commands, "query", lambda _ids: None)
        return ex.probe(paths, [r])[0]

    answers = {"PENDING": Verdict.ALIVE, "RUNNING": Verdict.ALIVE, "COMPLETED": Verdict.GONE, "CANCELLED": Verdict.GONE}
    for state, verdict in answers.items():
        assert probe(slurm_commands.JobInfo(state, "None")).verdict is verdict, state
    outage = probe(slurm_commands.UNKNOWN)
    assert outage.verdict is Verdict.UNKNOWN and "could not be asked" in outage.reason
    gone = probe(None)
    assert gone.verdict is Verdict.GONE and "no longer has job 11" in gone.reason and gone.ended is None
    failed = probe(slurm_commands.JobInfo("FAILED", "NonZeroExitCode"))
    assert "ended FAILED (reason NonZeroExitCode)" in failed.reason and failed.ended is None
    # a job that ended a moment ago: its supervisor's last write may still be on its way (NFS)
    monkeypatch.setenv("ORCHESTRATOR_SLURM_SETTLE", "30")
    assert probe(slurm_commands.JobInfo("COMPLETED", "None", time.time() - 5)).verdict is Verdict.ALIVE
    assert probe(slurm_commands.JobInfo("COMPLETED", "None", time.time() - 31)).verdict is Verdict.GONE
    monkeypatch.setenv("ORCHESTRATOR_SLURM_SETTLE", "0")
    assert probe(slurm_commands.JobInfo("COMPLETED", "None", time.time() - 5)).verdict is Verdict.GONE
    ended = record(status=State.COMPLETED, spec=RunSpec(executor="slurm"), executor_ref="11")
    assert probe(slurm_commands.JobInfo("RUNNING", "None"), ended).verdict is Verdict.GONE


def test_a_job_slurm_killed_for_its_memory_ends_memory_exceeded(monkeypatch, tmp_path):
    """Slurm's memory backstop may kill the job, supervisor and all, before the supervisor's own sampler
    stops the tree: the run then ends memory_exceeded with Slurm's words, not lost."""
    from claude_orchestrator.usecases import control

    monkeypatch.setenv("ORCHESTRATOR_SLURM_SETTLE", "0")
    store = RecordStore(StatePaths(tmp_path))
    store.paths.ensure()
    log = store.paths.log("a1", "r-a1")  # where sbatch --output puts the job's output: the run's log
    log.parent.mkdir(parents=True)
    log.write_text("supervisor: CLI started, pid 77\nslurmstepd: error: Job 11 exceeded memory limit (1258291 > 1158144), being killed\n")
    rec = record("a1", State.RUNNING, spec=RunSpec(executor="slurm"), executor_ref="11", log_file=str(log))
    store.write(rec)
    monkeypatch.setattr(slurm_commands, "query", lambda _ids: {})
    monkeypatch.setattr(slurm_commands, "job_info", lambda _j: slurm_commands.JobInfo("FAILED", "JobLaunchFailure", time.time() - 5))
    ended = control.reconcile(store, store.read("a1"))
    assert ended.status is State.MEMORY_EXCEEDED, ended.error
    assert "exceeded memory limit (1258291 > 1158144)" in ended.error and "Slurm killed job 11" in ended.error
    # a record naming another file as its log (records are untrusted) is not read: the run is lost
    elsewhere = tmp_path / "other.log"
    elsewhere.write_text(log.read_text())
    store.write(record("a1", State.RUNNING, spec=RunSpec(executor="slurm"), executor_ref="11", log_file=str(elsewhere)))
    assert control.reconcile(store, store.read("a1")).status is State.LOST
    # with cgroups Slurm says so in the job's state
    store.write(record("b1", State.RUNNING, spec=RunSpec(executor="slurm"), executor_ref="12"))
    monkeypatch.setattr(slurm_commands, "job_info", lambda _j: slurm_commands.JobInfo("OUT_OF_MEMORY", "OutOfMemory", time.time() - 5))
    assert control.reconcile(store, store.read("b1")).status is State.MEMORY_EXCEEDED
    # any other end of the job stays lost: its outcome is unknown
    store.write(record("c1", State.RUNNING, spec=RunSpec(executor="slurm"), executor_ref="13"))
    monkeypatch.setattr(slurm_commands, "job_info", lambda _j: slurm_commands.JobInfo("FAILED", "NonZeroExitCode", time.time() - 5))
    assert control.reconcile(store, store.read("c1")).status is State.LOST


def test_a_resume_runs_where_the_agent_ran_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_SLURM_ARGS", raising=False)
    paths = StatePaths(tmp_path)
    paths.ensure()
    RecordStore(paths).write(record("a1", State.COMPLETED, spec=RunSpec(executor="slurm", executor_args=("--partition=gpu",))))
    plain = RunSpec()
    kept = options.where_it_ran(plain, args(), {}, paths, "a1")
    assert (kept.executor, kept.executor_args) == ("slurm", ("--partition=gpu",))
    assert options.where_it_ran(plain, args(executor="local"), {}, paths, "a1").executor == "local"
    assert options.where_it_ran(plain, args(), {"executor": "local"}, paths, "a1").executor == "local"
    monkeypatch.setenv("ORCHESTRATOR_SLURM_ARGS", "--partition=cpu")
    assert options.where_it_ran(plain, args(), {}, paths, "a1").executor_args == ("--partition=cpu",), "given ones replace the old"
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR", "local")
    assert options.where_it_ran(plain, args(), {}, paths, "a1").executor == "local"
    assert options.where_it_ran(plain, args(), {}, paths, "nobody") is plain
    monkeypatch.delenv("ORCHESTRATOR_EXECUTOR")
    monkeypatch.delenv("ORCHESTRATOR_SLURM_ARGS")
    RecordStore(paths).write(record("loc", State.COMPLETED))
    assert options.where_it_ran(plain, args(), {}, paths, "loc") is plain
    chosen = RunSpec(executor="slurm", executor_args=("--comment=x",))
    assert options.where_it_ran(chosen, args(slurm_arg=["--comment=x"]), {}, paths, "loc") is chosen, "an sbatch option chose Slurm"


def test_readers_ask_slurm_once_per_pass_not_once_per_record(monkeypatch, tmp_path):
    from claude_orchestrator.usecases import control, launch

    store = RecordStore(StatePaths(tmp_path))
    store.paths.ensure()
    names = [f"a{i}" for i in range(30)]
    for i, name in enumerate(names):
        store.write(record(name, State.RUNNING if i % 2 else State.LOST, executor_ref=str(100 + i), spec=RunSpec(executor="slurm")))
    for i in range(20):  # ended runs: Slurm is never asked about their jobs (a stub with no answer left would fail)
        store.write(record(f"done{i}", State.COMPLETED, executor_ref=str(500 + i), spec=RunSpec(executor="slurm")))
    listing = "".join(f"{100 + i}|RUNNING|None|Unknown\n" for i in range(30))
    calls = stub_run(monkeypatch, [done(out=listing) for _ in range(3)])
    assert len(control.read_records(store)) == 50
    slurm_commands._cache.clear()
    assert len(control._read_all_quietly(store, names)) == 30  # wait_agents --follow's pass
    slurm_commands._cache.clear()
    assert len(launch.active_runs(store, names)) == 15  # a launch's busy check
    assert [len(c[-1].split(",")) for c in calls] == [30, 30, 15], "one squeue per pass, for every record at once"


def test_the_job_is_submitted_with_the_toolkits_options_then_the_users(monkeypatch, tmp_path):
    paths = StatePaths(tmp_path / "state")
    paths.ensure()
    paths.run_dir("a1").mkdir()
    spec = RunSpec(executor="slurm", executor_args=("--partition=gpu", "--time=30"),
                   limits=RunLimits(timeout_s=60, kill_grace_s=5, memory_limit_mb=100))
    rec = record(spec=spec, cwd=str(tmp_path), log_file=str(paths.log("a1", "r-a1")))
    RecordStore(paths).write(rec)
    seen = {}

    def submit(script, options_given, env):
        seen.update(script=script, options=options_given)
        return "4711"

    monkeypatch.setattr(slurm_commands, "submit", submit)
    assert slurm.SlurmExecutor().submit(paths, [(rec, Handoff((), -1))]) == [None]
    assert seen["options"] == [
        "--job-name=a1", f"--chdir={tmp_path}", f"--output={paths.log('a1', 'r-a1')}", "--open-mode=append",
        "--no-requeue", "--signal=B:USR1@60", "--time=5", "--mem=381M", "--partition=gpu", "--time=30",
    ], "the user's options come last: sbatch lets a later one win"
    assert seen["script"] == paths.run_dir("a1") / "r-a1.sbatch"
    argv = shlex.split(seen["script"].read_text().splitlines()[-1])
    assert argv[0] == "exec" and argv[-6:] == ["--time-limit-signal", "USR1", "--ref-from-env", "SLURM_JOB_ID", "a1", "r-a1"], (
        "only a Slurm job's supervisor takes SIGUSR1, and it is told, not which scheduler runs it"
    )
    assert RecordStore(paths).read("a1").executor_ref == "4711"
    assert json.loads(paths.status("a1").read_text())["slurm_job_id"] == "4711", "stored under the executor's name"


def test_a_stop_that_rechecks_a_job_often_asks_slurm_once_a_second(monkeypatch, tmp_path):
    """A stop probes its run every 50 ms while it waits for the supervisor: answers under a second old are reused."""
    rec = record("a1", State.RUNNING, spec=RunSpec(executor="slurm"), executor_ref="11")
    calls = stub_run(monkeypatch, [done(out="11|RUNNING|None|Unknown\n")])
    answers = [slurm.SlurmExecutor().probe(StatePaths(tmp_path), [rec], deep=True)[0] for _ in range(10)]
    assert len(calls) == 1, calls
    assert all(a.verdict is Verdict.ALIVE and a.supervisor_running and a.cli_running for a in answers)


def test_the_supervisor_is_told_the_time_limit_signal_and_where_its_job_id_is():
    """Not which scheduler runs it; and a batch script of an earlier release (``--slurm-job``), still
    pending across an upgrade, means the same."""
    from claude_orchestrator.supervisor import entry

    told = entry._parser().parse_args(["--root", "/s", "--time-limit-signal", "USR1", "--ref-from-env", "SLURM_JOB_ID", "a1", "r1"])
    earlier = entry._parser().parse_args(["--root", "/s", "--slurm-job", "a1", "r1"])
    local = entry._parser().parse_args(["--root", "/s", "a1", "r1"])
    assert entry.executor_flags(told) == entry.executor_flags(earlier) == (signal.SIGUSR1, "SLURM_JOB_ID")
    assert entry.executor_flags(local) == (None, None)
    with pytest.raises(SystemExit):
        entry._parser().parse_args(["--root", "/s", "--time-limit-signal", "NOSUCH", "a1", "r1"])
