"""The Slurm executor with many agents at once: submissions in parallel, one ``scancel`` for many jobs.

On the session's private cluster (conftest's ``slurm_cluster``), as test_slurm.py
does, with its kit and its check that no job of a test's records is left alive:
a fan-out of held agents gets a job each, every job ID recorded; one refused
sbatch among several fails that run alone and the report names it and the
others, which run; ``kill_agent.py`` of many names and ``--all`` cancel every
held job with one ``scancel`` (counted by a shim on PATH that logs each call
and runs the real one) and record each run ``killed``.  Then, with Slurm's
commands replaced by stubs: how one scancel's answer is read job by job, and
the order of a fan-out's submissions when one run waits for another of it.

Every wait is on a record, a job's state or a finished command; nothing is timed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import test_slurm
from test_slurm import on_slurm, wait_job, wait_job_ended

from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import State
from claude_orchestrator.executors import slurm, slurm_commands
from claude_orchestrator.executors.base import Handoff
from claude_orchestrator.records.spec import RunSpec
from claude_orchestrator.records.status_record import RecordStore, StatusRecord

#: test_slurm.py's fixtures: its kit (the fake CLI on the session's cluster), and its check after each test
#: that no job of the test's records is still alive.
kit = test_slurm.kit
no_slurm_job_left_behind = test_slurm.no_slurm_job_left_behind

#: Agents of a fan-out here: enough for the submissions to overlap (slurm.SUBMIT_THREADS at once)
#: and for one scancel to carry many job IDs, few enough for the suite's time.
AGENTS = 12


def held_fan_out(kit, names: list[str]) -> list[dict]:
    """``launch_parallel.py --executor slurm --slurm-arg=--hold --json`` of one task per name: the launched runs."""
    tasks = [f"[[fake: ok]] task of {n}" for n in names]
    out = kit.run("launch_parallel", *on_slurm(kit), "--slurm-arg=--hold", "--names", ",".join(names), "--json", *tasks)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture
def scancel_log(kit, tmp_path) -> Path:
    """A ``scancel`` first on the kit's PATH that appends its arguments to the returned file, then runs Slurm's."""
    real = shutil.which("scancel", path=kit.env.get("PATH"))
    assert real, "Slurm's scancel is on PATH"
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "scancel.log"
    log.touch()
    shim = shim_dir / "scancel"
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    kit.env["PATH"] = f"{shim_dir}:{kit.env.get('PATH', '')}"
    return log


def cancelled_ids(log: Path) -> list[list[str]]:
    """The job IDs of each logged scancel call, one list per call (options left out)."""
    return [[w for w in line.split() if w.isdigit()] for line in log.read_text().splitlines()]


# -- on the cluster ---------------------------------------------------------------------------


def test_a_fan_out_of_many_slurm_agents_gets_a_job_each_with_its_id_recorded(kit, slurm_cluster):
    names = [f"f{i:02d}" for i in range(AGENTS)]
    launched = held_fan_out(kit, names)
    assert [r["agent"] for r in launched] == names and all(r["status"] == "queued" for r in launched)
    jobs = [r["slurm_job_id"] for r in launched]
    assert len(set(jobs)) == AGENTS and all(j.isdigit() for j in jobs), jobs
    for name, job_id in zip(names, jobs, strict=True):
        assert kit.record(name)["slurm_job_id"] == job_id, "the record holds the job ID when the launch returns"
        name_in_slurm, script = slurm_cluster.run("squeue", "-h", "-j", job_id, "-o", "%j|%o").stdout.strip().split("|")
        assert name_in_slurm == name and Path(script) == kit.root / "outputs" / name / f"{kit.record(name)['run_id']}.sbatch"
    wait_job(slurm_cluster, jobs[-1], "PENDING", "JobHeldUser")
    assert kit.run("kill_agent", "--all").returncode == 0


def test_one_refused_sbatch_among_several_fails_that_run_alone_and_names_it(kit, slurm_cluster, tmp_path):
    """One delegation's profile sends its job to a partition that does not exist (as test_slurm.py's refused
    sbatch does for every run): sbatch refuses that one; the report is one line naming it and the agents
    that run, as a fan-out whose jobs were submitted one after another reported it."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.builder]\ndescription = "builds"\n[profiles.nowhere]\nslurm_args = ["--partition=nosuch"]\n')
    kit.env["ORCHESTRATOR_PROFILES"] = str(profiles)
    text = "".join(f"**{role}**: [[fake: ok]] part {i}\n\n" for i, role in enumerate(["Builder", "Nowhere", "Builder", "Builder"]))
    out = kit.run("launch_parallel", *on_slurm(kit), "--slurm-arg=--hold", "--from-delegations", "-", input=text)
    assert out.returncode == 69, out.stdout + out.stderr
    assert out.stdout == "" and out.stderr.count("\n") == 1, out.stderr
    assert "agent 'nowhere'" in out.stderr and "invalid partition specified: nosuch" in out.stderr, out.stderr
    assert "launched and running: builder, builder-2, builder-3" in out.stderr, out.stderr
    refused = kit.record("nowhere")
    assert refused["status"] == "failed" and "invalid partition" in refused["error"] and refused.get("slurm_job_id") is None
    running = {n: kit.record(n) for n in ("builder", "builder-2", "builder-3")}
    assert all(r["status"] == "queued" and r["slurm_job_id"] for r in running.values()), running
    assert len({r["slurm_job_id"] for r in running.values()}) == 3
    killed = kit.run("kill_agent", "--all", "--json")
    assert killed.returncode == 0, killed.stderr
    assert {r["agent"]: r["status"] for r in json.loads(killed.stdout)} == dict.fromkeys(running, "killed")


def test_kill_of_many_names_and_kill_all_cancel_every_held_job_with_one_scancel(kit, slurm_cluster, scancel_log):
    names = [f"k{i:02d}" for i in range(AGENTS)]
    jobs = {r["agent"]: r["slurm_job_id"] for r in held_fan_out(kit, names)}
    for job_id in jobs.values():
        wait_job(slurm_cluster, job_id, "PENDING", "JobHeldUser")

    some = names[:3]
    out = kit.run("kill_agent", *some, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"agent": n, "action": "stopped", "status": "killed"} for n in some]
    assert [sorted(ids) for ids in cancelled_ids(scancel_log)] == [sorted(jobs[n] for n in some)], "one scancel for the three jobs"

    scancel_log.write_text("")
    out = kit.run("kill_agent", "--all", "--json")
    assert out.returncode == 0, out.stderr
    rest = names[3:]
    assert {r["agent"]: (r["action"], r["status"]) for r in json.loads(out.stdout)} == dict.fromkeys(rest, ("stopped", "killed"))
    calls = cancelled_ids(scancel_log)
    assert sorted(j for call in calls for j in call) == sorted(jobs[n] for n in rest), calls
    assert len(calls) < len(rest), f"scancel takes many jobs at once: {calls}"
    for name in names:
        rec = kit.record(name)
        assert rec["status"] == "killed" and rec["error"] == "stopped by request before it started", rec
        assert wait_job_ended(slurm_cluster, jobs[name]) == "CANCELLED"
    assert kit.run("kill_agent", "--all").stdout.strip() == "no active agents"


# -- Slurm's answers, read job by job (stubs) -----------------------------------------------------


@pytest.fixture
def slurm_calls(monkeypatch):
    """Slurm's commands replaced: ``answers`` (a list to fill) are returned in turn; ``calls`` logs each argv."""
    slurm_commands._cache.clear()
    monkeypatch.setattr(slurm_commands, "_down_until", 0.0)
    calls: list[list[str]] = []
    answers: list[subprocess.CompletedProcess] = []

    def fake(argv, timeout, env=None):
        calls.append(argv)
        return answers.pop(0)

    monkeypatch.setattr(slurm_commands, "_run", fake)
    yield calls, answers
    slurm_commands._cache.clear()


def done(rc: int = 0, out: str = "", err: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], rc, out, err)


def test_one_scancel_answers_for_each_job(slurm_calls):
    calls, answers = slurm_calls
    answers += [
        done(0, err="scancel: Terminating job 11\nscancel: Terminating job 12\n"
                    "scancel: error: Kill job error on job id 12: Job/step already completing or completed\n"
                    "scancel: Terminating job 13\nscancel: error: Kill job error on job id 13: Access/permission denied\n"),
        done(out="12|COMPLETED|None|2026-12-07T10:00:00\n13|PENDING|JobHeldUser|Unknown\n"),
    ]
    got = slurm_commands.cancel_many(["11", "12", "13"])
    assert [c[0] for c in calls] == ["scancel", "squeue"] and calls[0][-3:] == ["11", "12", "13"], calls
    assert "13" in calls[1][-1] and "11" not in calls[1][-1], "only the jobs scancel named are asked about"
    assert got["11"] is True and got["12"] is False, got
    assert isinstance(got["13"], slurm_commands.SlurmError) and "cannot stop Slurm job 13" in str(got["13"])
    assert "permission denied" in str(got["13"]) and got["13"].exit_code == 69


def test_a_scancel_that_names_no_job_failed_for_all_and_unknown_is_an_error(slurm_calls):
    calls, answers = slurm_calls
    answers += [done(1, err="scancel: fatal: Unable to establish controller machine\n"), done(1, err="squeue: fatal: no config\n")]
    got = slurm_commands.cancel_many(["21", "22"], batch_term=True)
    assert calls[0][:3] == ["scancel", "--batch", "--signal=TERM"] and calls[1][0] == "squeue"
    assert all(isinstance(a, slurm_commands.SlurmError) and "Unable to establish" in str(a) for a in got.values()), got
    answers.append(done(1, err="scancel: fatal: Unable to establish controller machine\n"))
    with pytest.raises(slurm_commands.SlurmError, match="cannot stop Slurm job 23: scancel failed"):
        slurm_commands.cancel("23")
    assert [c[0] for c in calls] == ["scancel", "squeue", "scancel"], "a controller that did not answer is not asked again at once"


def test_a_batch_signal_names_the_jobs_it_could_not_signal_and_signals_the_rest(slurm_calls):
    calls, answers = slurm_calls
    answers += [done(1, err="scancel: error: Kill job error on job id 32: Invalid job id specified\n"), done(1, err="Invalid job id specified")]
    assert slurm_commands.cancel_many(["31", "32"], batch_term=True) == {"31": True, "32": False}


def test_a_forced_stop_of_many_runs_is_one_scancel(slurm_calls, tmp_path):
    calls, answers = slurm_calls
    answers.append(done(0, err="".join(f"scancel: Terminating job {j}\n" for j in ("41", "42"))))
    runs = [(StatusRecord(agent=f"a{j}", run_id=f"r{j}", task="t", spec=RunSpec(executor="slurm"), executor_ref=j), 1.0)
            for j in ("41", "42")]
    runs.append((StatusRecord(agent="a0", run_id="r0", task="t", spec=RunSpec(executor="slurm")), 1.0))  # sbatch never answered
    assert slurm.SlurmExecutor().stop(runs, force=True) == [True, True, False]
    assert calls == [["scancel", "--verbose", "41", "42"]], "no squeue first: scancel's answer says which job was gone"


def test_a_run_that_waits_for_another_of_the_fan_out_is_submitted_after_it(monkeypatch, tmp_path):
    """Its job depends on the other's (afterany:ID), so the other's job ID must be in the record first."""
    store = RecordStore(StatePaths(tmp_path))
    order: list[str] = []
    dependencies: dict[str, list[str]] = {}

    def fake_submit(script, options, env):
        name = next(o.split("=", 1)[1] for o in options if o.startswith("--job-name="))
        dependencies[name] = [o for o in options if o.startswith("--dependency=")]
        if name == "bad":
            raise slurm_commands.SlurmError("sbatch failed (exit 1): sbatch: error: refused")
        order.append(name)
        return str(100 + len(order))

    monkeypatch.setattr(slurm_commands, "submit", fake_submit)
    runs = []
    for name, after in [("dep", ("base",)), ("base", ()), ("bad", ()), ("other", ())]:
        rec = StatusRecord(agent=name, run_id=f"r-{name}", task="t", spec=RunSpec(executor="slurm", after=after), cwd=str(tmp_path))
        rec.status = State.WAITING if after else State.QUEUED
        store.write(rec)
        store.paths.run_dir(name).mkdir(parents=True)
        runs.append((rec, Handoff((), -1)))
    answers = slurm.SlurmExecutor().submit(store.paths, runs)
    assert answers[0] is None and answers[1] is None and answers[3] is None
    assert isinstance(answers[2], slurm_commands.SlurmError), "the refused one's own answer, in its place"
    assert order[-1] == "dep", order
    assert dependencies["dep"] == [f"--dependency=afterany:{store.read('base').executor_ref}"]
    assert {store.read(n).executor_ref for n in ("dep", "base", "other")} == {"101", "102", "103"}


def test_a_stop_of_many_cancels_the_marked_runs_jobs_in_batches_as_it_marks_them(monkeypatch, tmp_path):
    """In process, Slurm's commands stubbed: every held run is recorded ``killed`` and its job cancelled,
    ``STOP_BATCH`` jobs a scancel (3 here: 7 runs make three calls), after one squeue for all."""
    from claude_orchestrator.usecases import control

    monkeypatch.setattr(control, "STOP_BATCH", 3)
    slurm_commands._cache.clear()
    monkeypatch.setattr(slurm_commands, "_down_until", 0.0)
    calls: list[list[str]] = []

    def fake(argv, timeout, env=None):
        calls.append(argv)
        if argv[0] == "squeue":
            return done(out="".join(f"{j}|PENDING|JobHeldUser|Unknown\n" for j in argv[-1].split(",")))
        return done(0, err="".join(f"scancel: Terminating job {j}\n" for j in argv if j.isdigit()))

    monkeypatch.setattr(slurm_commands, "_run", fake)
    store = RecordStore(StatePaths(tmp_path))
    names = [f"m{i}" for i in range(7)]
    for i, name in enumerate(names):
        rec = StatusRecord(agent=name, run_id=f"r-{name}", task="t", spec=RunSpec(executor="slurm"), executor_ref=str(500 + i))
        rec.status = State.QUEUED
        store.write(rec)
    answers = control.stop_many(store, names)
    assert [(what, rec.status) for what, rec in answers] == [("stopped", State.KILLED)] * 7, answers
    assert all(store.read(n).status is State.KILLED for n in names)
    scancels = [[j for j in c if j.isdigit()] for c in calls if c[0] == "scancel"]
    assert sorted(len(ids) for ids in scancels) == [1, 3, 3], calls
    assert sorted(j for ids in scancels for j in ids) == [str(500 + i) for i in range(7)]
    assert [c[0] for c in calls].count("squeue") == 1, calls
    slurm_commands._cache.clear()


def test_a_fan_out_in_chunks_submits_each_chunk_in_the_background_and_in_order(monkeypatch, tmp_path, fake_claude):
    """A scheduler's chunk is submitted while the next is claimed (launch.LAUNCH_CHUNK runs a chunk); chunk k's
    jobs exist before chunk k+1 is submitted, so a run waiting for one of an earlier chunk depends on its job."""
    import threading

    from claude_orchestrator.usecases import launch

    monkeypatch.setenv("CLAUDE_BIN", str(fake_claude))
    monkeypatch.setattr(launch, "LAUNCH_CHUNK", 2)
    order: list[str] = []
    dependencies: dict[str, list[str]] = {}
    in_main_thread: list[bool] = []
    submit = slurm.SlurmExecutor.submit

    def watched(self, paths, runs):
        in_main_thread.append(threading.current_thread() is threading.main_thread())
        return submit(self, paths, runs)

    def fake_sbatch(script, options, env):
        name = next(o.split("=", 1)[1] for o in options if o.startswith("--job-name="))
        dependencies[name] = [o for o in options if o.startswith("--dependency=")]
        order.append(name)
        return str(200 + len(order))

    monkeypatch.setattr(slurm.SlurmExecutor, "submit", watched)
    monkeypatch.setattr(slurm_commands, "submit", fake_sbatch)
    paths = StatePaths(tmp_path / "state")
    jobs = [(f"c{i}", "x", RunSpec(executor="slurm", after=("c0",) if i == 3 else (), cwd=str(tmp_path))) for i in range(5)]
    recs = launch.launch_many(paths, jobs)
    assert [r.agent for r in recs] == [f"c{i}" for i in range(5)]
    assert in_main_thread == [False, False, False], "three chunks, each submitted in the background"
    assert sorted(order) == [f"c{i}" for i in range(5)] and order.index("c0") < order.index("c3")
    store = RecordStore(paths)
    assert dependencies["c3"] == [f"--dependency=afterany:{store.read('c0').executor_ref}"]
    assert len({store.read(f"c{i}").executor_ref for i in range(5)}) == 5
