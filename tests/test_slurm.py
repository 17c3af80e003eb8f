"""End to end: the Slurm executor (``--executor slurm``) on a private one-node Slurm cluster.

Each run's supervisor is a real Slurm batch job of the session's cluster
(conftest's ``slurm_cluster``: slurmctld and slurmd of Slurm 22.05 on
127.0.0.1, ``KillWait=5``, ``MinJobAge=300``), driven through the scripts as a
user drives them, with the fake ``claude`` (tests/fake_claude.py) or the real
CLI against the fake Messages API.

Covered: parallel jobs of the real CLI whose Bash tool calls write files; a
held job (``--slurm-arg=--hold``) shown ``queued`` while Slurm says
``JobHeldUser``, completing once released (``scontrol release``); launch
returning with the job ID already in the record, and ``check_status.py
--json`` naming the executor and the job; ``kill_agent.py`` on a running job
(``killed``, stop_reason ``killed``, the job gone); ``--timeout`` and
``--memory-limit`` enforced by the supervisor inside the job (and the job's
``--time``/``--mem`` backstops); a job cancelled behind the toolkit's back,
``killed`` when the supervisor can end its tree within Slurm's ``KillWait``
and ``lost`` (with Slurm's word on the job, no process left) when it cannot;
``--after`` as a Slurm dependency (pending with reason ``Dependency``), with
``--with-context-from`` carrying the analyst's messages, ``skipped`` after a
failed dependency and ``--after-any`` running anyway; ``resume_agent.py``
staying on Slurm; ``wait_agents.py`` (inotify, and polling as on a network
filesystem) printing the changes and exiting 0 or 1; Slurm that cannot be
asked (squeue failing at once) marking nothing ``lost``; a refused ``sbatch``
(exit 69, Slurm's message in one line, the run ``failed``, the name free
again); ``kill_agent.py --all`` (a pending held job cancelled) and
``clear_outputs.py --all``.  After every test, no Slurm job named in the
test's records may still be alive (the autouse fixture).  Runs ask for the
executor with ``--executor slurm`` or, in some tests, ``ORCHESTRATOR_EXECUTOR=slurm``.

What one host cannot show: several nodes.  Here the supervisor, the CLI and
every reader share one host, so a local PID or lock that the executor relied
on instead of Slurm would still work and go unnoticed (the toolkit's PID
fallbacks, which on another host match nothing, succeed here).  Nor a real
NFS mount between the nodes (attribute caching; inotify blind to other hosts'
writes): the polling waiter is forced with ``ORCHESTRATOR_WATCH=poll``
instead.  A controller that does not answer at all (squeue and scancel
blocking until their timeout) is left out for time: it costs seconds per call.

Every wait is on an event or a gate: a record's state, a file, ``wait_agents``,
a held job released, or a Slurm job's state polled with a deadline.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import psutil
import pytest
from conftest import Toolkit, process_gone, wait_until

from claude_orchestrator.devtools.fake_api import user_prompt
from claude_orchestrator.executors.slurm_commands import ALIVE_JOB_STATES
from claude_orchestrator.records.shape import parse_time

#: Seconds a job may take to leave ALIVE_JOB_STATES (Slurm's states of a job running or to run: the package's
#: own list) once its run has ended (a cancel's KillWait is 5 s).
JOB_END_TIMEOUT_S = 20.0


# -- Slurm's view -------------------------------------------------------------------------


def job_ids_in_records(root: Path) -> set[str]:
    """Every ``slurm_job_id`` of the records under ``root``, archived ones (clear_outputs) included."""
    ids = set()
    for f in root.rglob("*.json"):
        if f.parent.name != "status":
            continue
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and isinstance(rec.get("slurm_job_id"), str):
            ids.add(rec["slurm_job_id"])
    return ids


def all_jobs(cluster) -> dict[str, str]:
    """``{job_id: state}`` of every job the cluster still knows (``squeue -h -t all -o %i|%T``)."""
    out = cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%T").stdout
    return dict(line.split("|", 1) for line in out.split())


def job(cluster, job_id: str, fmt: str = "%T|%r") -> list[str] | None:
    """Fields of one job as ``squeue -t all -j ID -o FMT`` gives them (split at "|"); None if Slurm does not know it."""
    line = cluster.run("squeue", "-h", "-t", "all", "-j", job_id, "-o", fmt, check=False).stdout.strip()
    return line.split("|") if line else None


def wait_job(cluster, job_id: str, state: str, reason: str | None = None) -> None:
    """Wait until Slurm says ``job_id`` is in ``state`` (with ``reason``, if given)."""

    def there() -> bool:
        seen = job(cluster, job_id)
        return bool(seen) and seen[0] == state and (reason is None or seen[1] == reason)

    wait_until(there, timeout=JOB_END_TIMEOUT_S, what=f"job {job_id} {state} {reason or ''}")


def wait_job_ended(cluster, job_id: str) -> str:
    """Wait until Slurm has ended ``job_id``; its final state."""
    return wait_until(
        lambda: (seen := job(cluster, job_id)) and seen[0] not in ALIVE_JOB_STATES and seen[0],
        timeout=JOB_END_TIMEOUT_S,
        what=f"job {job_id} to end",
    )


def dependency(cluster, job_id: str) -> str:
    """The job's ``Dependency=`` field as ``scontrol show job`` prints it."""
    fields = cluster.run("scontrol", "show", "job", "-o", job_id).stdout.split()
    return next(f.split("=", 1)[1] for f in fields if f.startswith("Dependency="))


@pytest.fixture(autouse=True)
def no_slurm_job_left_behind(slurm_cluster, state_root):
    """After each test: no job named in the test's records may still be alive in Slurm.

    Jobs get a bounded while to end (a cancelled one spends up to KillWait
    COMPLETING); any still alive then is cancelled and the test fails.
    """
    yield
    ids = job_ids_in_records(state_root)
    if not ids:
        return

    def alive() -> list[str]:
        states = all_jobs(slurm_cluster)
        return sorted(j for j in ids if states.get(j) in ALIVE_JOB_STATES)

    deadline = time.monotonic() + JOB_END_TIMEOUT_S
    left = alive()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = alive()
    if left:
        states = all_jobs(slurm_cluster)
        slurm_cluster.run("scancel", *left, check=False)
        pytest.fail(f"Slurm jobs left alive after the test: {[(j, states.get(j)) for j in left]}")


# -- kits -----------------------------------------------------------------------------------


@pytest.fixture
def kit(fake_kit, slurm_cluster, tmp_path):
    """The toolkit with the fake ``claude``, talking to the session's cluster; ``kit.work`` is a --cwd for its runs.

    ``ORCHESTRATOR_SLURM_SETTLE=0``: one host has no NFS delay to wait out before a run is ``lost``.
    """
    fake_kit.env.update(slurm_cluster.env, ORCHESTRATOR_SLURM_SETTLE="0")
    fake_kit.work = tmp_path / "work"
    fake_kit.work.mkdir()
    return fake_kit


@pytest.fixture
def real_slurm_kit(real_kit, slurm_cluster, tmp_path):
    """The toolkit with the real CLI (fake API), talking to the session's cluster; ``kit.work`` is a --cwd."""
    real_kit.env.update(slurm_cluster.env, ORCHESTRATOR_SLURM_SETTLE="0")
    real_kit.work = tmp_path / "work"
    real_kit.work.mkdir()
    return real_kit


def on_slurm(kit) -> list[str]:
    """The options that send a run to the cluster, in the test's work folder."""
    return ["--executor", "slurm", "--cwd", str(kit.work)]


def launch(kit, name: str, task: str, *options: str) -> dict:
    """``launch_agent.py NAME --executor slurm --cwd WORK --json OPTIONS TASK``: the launched run's JSON."""
    out = kit.run("launch_agent", name, *on_slurm(kit), "--json", *options, task)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def status_json(kit, *names: str) -> dict[str, dict]:
    """``check_status.py --json NAMES``, by agent."""
    out = kit.run("check_status", "--json", *names)
    assert out.returncode == 0, out.stderr
    return {r["agent"]: r for r in json.loads(out.stdout)}


def first_request_with_prompt(api, prompt: str) -> dict:
    for r in api.requests:
        if r["path"].startswith("/v1/messages") and user_prompt(r["body"]) == prompt:
            return r
    raise AssertionError(f"no request with prompt {prompt!r}")


# -- running --------------------------------------------------------------------------------


def test_parallel_jobs_of_the_real_cli_write_files_with_tool_calls_and_complete(real_slurm_kit, slurm_cluster):
    kit = real_slurm_kit
    names = ("one", "two", "three")
    tasks = [f"make {n} [[bash: printf {n} > {n}.txt]]" for n in names]
    out = kit.run("launch_parallel", *on_slurm(kit), "--allowed-tools", "Bash", "--json", *tasks)
    assert out.returncode == 0, out.stderr
    launched = json.loads(out.stdout)
    assert [r["status"] for r in launched] == ["queued"] * 3, "a Slurm run is queued until its job starts"
    jobs = [r["slurm_job_id"] for r in launched]
    assert len(set(jobs)) == 3 and all(j.isdigit() for j in jobs)

    waited = kit.run("wait_agents", "agent1", "agent2", "agent3", timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert "all ended: 3 completed" in waited.stdout
    for i, name in enumerate(names, start=1):
        rec = kit.record(f"agent{i}")
        assert rec["status"] == "completed", rec
        assert (kit.work / f"{name}.txt").read_text() == name, "the Bash tool ran in the job, in --cwd"
        assert rec["num_turns"] == 2 and "Tool said" in rec["result"]
        assert rec["options"]["executor"] == "slurm" and rec["slurm_job_id"] == jobs[i - 1]
        assert (kit.root / "outputs" / f"agent{i}_latest.txt").read_text() == rec["result"] + "\n"
    for job_id in jobs:
        assert wait_job_ended(slurm_cluster, job_id) == "COMPLETED"


def test_a_held_job_is_queued_until_released_then_completes(kit, slurm_cluster):
    kit.env["ORCHESTRATOR_EXECUTOR"] = "slurm"  # the variable, not the flag
    task = "[[fake: ok]] held back"
    out = kit.run("launch_agent", "held", "--cwd", str(kit.work), "--slurm-arg=--hold", "--json", task)
    assert out.returncode == 0, out.stderr
    launched = json.loads(out.stdout)
    job_id = launched["slurm_job_id"]
    assert launched["status"] == "queued" and launched["executor"] == "slurm"
    wait_job(slurm_cluster, job_id, "PENDING", "JobHeldUser")  # a reason is set by the scheduler, not at once

    table = kit.run("check_status", "held")
    assert re.search(r"^held\s+queued\b", table.stdout, re.M), table.stdout
    shown = status_json(kit, "held")["held"]
    assert shown["status"] == "queued" and shown["slurm_job_id"] == job_id
    assert kit.record("held")["status"] == "queued", "a reader leaves a held job's run alone"

    slurm_cluster.run("scontrol", "release", job_id)
    waited = kit.run("wait_agents", "held")
    assert waited.returncode == 0, waited.stdout + waited.stderr
    rec = kit.record("held")
    assert rec["status"] == "completed" and rec["result"] == "FAKE: " + task
    assert wait_job_ended(slurm_cluster, job_id) == "COMPLETED"
    # the time it was held is queued time, apart from its run time, in the report (and the console)
    report = kit.run("report_agents", "--json", "held")
    assert report.returncode == 0, report.stderr
    board = json.loads(report.stdout)
    (row,) = board["agents"]
    assert (row["executor"], row["executor_ref"]) == ("slurm", job_id)
    phases = [s["phase"] for s in row["runs"][-1]["segments"]]
    assert phases[0] == "queued" and phases[-1] == "running", phases
    assert row["queued_s"] > 0 and board["totals"]["queued_s"] == row["queued_s"] and board["totals"]["run_s"] == row["run_s"]


def test_launch_returns_with_the_job_id_recorded_and_check_status_names_the_job(kit, slurm_cluster, tmp_path):
    gate = tmp_path / "gate"  # the CLI waits for it: the run cannot end before the test opens it
    out = kit.run("launch_agent", "gated", *on_slurm(kit), f"[[fake: until:{gate}]]")
    assert out.returncode == 0, out.stderr
    rec = kit.record("gated")
    job_id = rec["slurm_job_id"]
    assert job_id and job_id.isdigit(), "the record holds the job ID when the launch returns"
    assert rec["status"] in ("queued", "starting", "running")
    assert f"slurm job:  {job_id}" in out.stdout
    name, script = job(slurm_cluster, job_id, "%j|%o")
    assert name == "gated"
    assert Path(script) == kit.root / "outputs" / "gated" / f"{rec['run_id']}.sbatch"
    assert "claude_orchestrator.supervisor" in Path(script).read_text()

    active = status_json(kit, "gated")["gated"]
    assert active["executor"] == "slurm" and active["slurm_job_id"] == job_id
    assert active["status"] in ("queued", "starting", "running")
    gate.write_text("go")
    assert kit.run("wait_agents", "gated").returncode == 0
    ended = status_json(kit)["gated"]
    assert ended["status"] == "completed" and ended["executor"] == "slurm" and ended["slurm_job_id"] == job_id


def test_resume_on_slurm_carries_the_earlier_messages(real_slurm_kit):
    kit = real_slurm_kit
    task = "remember this [[reply: the code is 4417]]"
    first = kit.run("launch_agent", "a1", *on_slurm(kit), "--wait", "--json", task, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    before = json.loads(first.stdout)
    # no --executor: a resume runs where the agent last ran (an sbatch option alone says Slurm too)
    out = kit.run("resume_agent", "a1", "--slurm-arg=--comment=again", "--wait", "--json", "what was the code?", timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["status"] == "completed"  # --json --wait: the short form; the record has the rest
    full = kit.record("a1")
    assert full["resumed_from"] == before["session_id"]
    assert full["options"]["executor"] == "slurm" and full["slurm_job_id"] not in (None, before["slurm_job_id"])
    history = json.dumps(first_request_with_prompt(kit.api, "what was the code?")["body"]["messages"])
    assert "the code is 4417" in history


# -- limits and stopping ------------------------------------------------------------------------


def test_kill_agent_stops_a_running_job(kit, slurm_cluster):
    job_id = launch(kit, "victim", "[[fake: hang]]")["slurm_job_id"]
    rec = kit.wait_running("victim")
    out = kit.run("kill_agent", "victim", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"agent": "victim", "action": "stopped", "status": "killed"}]
    final = kit.record("victim")
    assert final["status"] == "killed" and final["stop_reason"] == "killed"
    assert process_gone(rec["pid"], rec["pid_started"])
    wait_job_ended(slurm_cluster, job_id)
    supervisor = (rec["supervisor_pid"], rec["supervisor_started"])
    wait_until(lambda: process_gone(*supervisor), timeout=5, what="the supervisor to exit")


def test_timeout_ends_the_run_as_timeout(kit, slurm_cluster):
    limits = ["--timeout", "2", "--kill-grace", "1"]
    out = kit.run("launch_agent", "slow", *on_slurm(kit), *limits, "--wait", "--json", "[[fake: hang]]")
    assert out.returncode == 1, out.stderr
    rec = json.loads(out.stdout)
    assert rec["status"] == "timeout" and "2 s timeout" in rec["error"]
    full = kit.record("slow")
    assert full["stop_reason"] == "timeout"
    assert process_gone(full["pid"], full["pid_started"])
    # the job's --time: the timeout, the grace, SIGUSR1's lead (60 s) and Slurm's slack (120 s), in whole minutes
    assert job(slurm_cluster, rec["slurm_job_id"], "%l") == ["4:00"]
    assert wait_job_ended(slurm_cluster, rec["slurm_job_id"]) == "COMPLETED"


def test_slurms_time_limit_coming_first_ends_the_run_as_timeout(kit, slurm_cluster):
    job_id = launch(kit, "capped", "[[fake: hang]]", "--kill-grace", "1")["slurm_job_id"]
    rec = kit.wait_running("capped")
    # what Slurm sends the batch step shortly before a job's --time (sbatch --signal=B:USR1@LEAD)
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", job_id)
    waited = kit.run("wait_agents", "capped")
    assert waited.returncode == 1
    final = kit.record("capped")
    assert final["status"] == "timeout" and final["stop_reason"] == "timeout", final
    assert "job's time limit" in final["error"] and "scheduler's limit" in final["error"]
    assert process_gone(rec["pid"], rec["pid_started"])
    assert wait_job_ended(slurm_cluster, job_id) == "COMPLETED"


def test_memory_limit_ends_the_run_as_memory_exceeded(kit, slurm_cluster):
    limits = ["--memory-limit", "100", "--kill-grace", "1"]
    out = kit.run("launch_agent", "hog", *on_slurm(kit), *limits, "--wait", "--json", "[[fake: memhog:200]]")
    assert out.returncode == 1, out.stderr
    rec = json.loads(out.stdout)
    assert rec["status"] == "memory_exceeded" and "100 MiB" in rec["error"]
    full = kit.record("hog")
    assert full["stop_reason"] == "memory" and full["peak_rss_mb"] >= 100
    hog = int((kit.work / "memhog.pid").read_text())
    assert not psutil.pid_exists(hog) or psutil.Process(hog).status() == psutil.STATUS_ZOMBIE
    assert job(slurm_cluster, rec["slurm_job_id"], "%m") == ["381M"], "the job's --mem: 100 MiB x 1.25 + 256"
    assert wait_job_ended(slurm_cluster, rec["slurm_job_id"]) == "COMPLETED"


def test_a_job_slurm_kills_for_its_memory_ends_memory_exceeded_in_slurms_words(kit, slurm_cluster):
    """Slurm's own memory backstop comes first (the job's --mem, here the user's, is far below the run's
    --memory-limit): Slurm kills the job, supervisor and all, before the supervisor's sampler sees the
    limit.  The run ends memory_exceeded with slurmstepd's words, not lost (the test cluster has no cgroups:
    Slurm reports the job FAILED, and says why only in the job's log)."""
    options = ["--memory-limit", "4000", "--slurm-arg=--mem=300M"]
    job_id = launch(kit, "oom", "[[fake: memhog:800]]", *options)["slurm_job_id"]
    waited = kit.run("wait_agents", "oom")
    assert waited.returncode == 1, waited.stderr
    final = kit.record("oom")
    assert final["status"] == "memory_exceeded", final
    assert f"Slurm killed job {job_id} for its memory" in final["error"] and "exceeded memory limit" in final["error"]
    assert final.get("stop_reason") is None, "the supervisor did not stop the tree: Slurm did"
    assert wait_job_ended(slurm_cluster, job_id) in ("FAILED", "OUT_OF_MEMORY", "CANCELLED")
    # nothing of the job outlives it: the state root's fixture fails the test on a leftover process


def test_a_job_cancelled_behind_the_toolkits_back_is_killed(kit, slurm_cluster):
    job_id = launch(kit, "cancelled", "[[fake: hang]]")["slurm_job_id"]
    rec = kit.wait_running("cancelled")
    slurm_cluster.run("scancel", job_id)  # SIGTERM to the job's processes: the supervisor stops its tree and records it
    waited = kit.run("wait_agents", "cancelled")
    assert waited.returncode == 1
    assert re.search(r"cancelled: (\w+ -> )?killed", waited.stdout), waited.stdout
    final = kit.record("cancelled")
    assert final["status"] == "killed" and final["stop_reason"] == "killed" and "signal 15" in final["error"]
    assert process_gone(rec["pid"], rec["pid_started"])
    wait_job_ended(slurm_cluster, job_id)


def test_a_cancelled_job_whose_cli_outlives_killwait_is_lost_and_leaves_no_process(kit, slurm_cluster):
    job_id = launch(kit, "stubborn", "[[fake: ignore_term]]", "--kill-grace", "30")["slurm_job_id"]
    rec = kit.wait_running("stubborn")
    # ignore_term ignores SIGTERM before its first event: once that is in the transcript, only SIGKILL ends it
    wait_until(lambda: Path(rec["transcript_file"]).stat().st_size > 0, what="the CLI's first event")
    slurm_cluster.run("scancel", "--signal=KILL", "--full", job_id)
    waited = kit.run("wait_agents", "stubborn")
    assert waited.returncode == 1
    assert re.search(r"stubborn: (\w+ -> )?lost", waited.stdout), waited.stdout
    final = kit.record("stubborn")
    assert final["status"] == "lost"
    assert f"Slurm job {job_id} ended CANCELLED" in final["error"], final["error"]
    log = Path(rec["log_file"]).read_text()
    assert "SIGTERM to the tree; SIGKILL in 30 s" in log, "the supervisor was still in its grace when Slurm killed it"
    assert wait_job_ended(slurm_cluster, job_id) == "CANCELLED"
    processes = [(rec["supervisor_pid"], rec["supervisor_started"]), *map(tuple, final["tree"])]
    for pid, started in processes:
        wait_until(lambda pid=pid, started=started: process_gone(pid, started), timeout=5, what=f"process {pid} gone")
    assert kit.run("kill_agent", "stubborn", "--json").returncode == 0
    assert kit.record("stubborn")["status"] == "lost"


def test_slurm_that_cannot_be_asked_marks_nothing_lost(kit, tmp_path):
    launch(kit, "steady", "[[fake: hang]]")
    kit.wait_running("steady")
    unparsable = tmp_path / "unparsable.conf"
    unparsable.write_text("not a slurm.conf\n")  # squeue fails at once, as when the controller cannot be reached
    outage = Toolkit(kit.root, dict(kit.env, SLURM_CONF=str(unparsable)))
    shown = outage.run("check_status", "--json", "steady")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["status"] == "running"
    assert kit.record("steady")["status"] == "running"
    refused = outage.run("kill_agent", "steady")
    assert refused.returncode == 69, "a stop that could not reach Slurm must not claim the run was stopped"
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot stop Slurm job" in lines[0], refused.stderr
    assert kit.record("steady")["status"] == "running"
    assert kit.run("kill_agent", "steady").returncode == 0
    assert kit.record("steady")["status"] == "killed"


# -- dependencies ------------------------------------------------------------------------------


def test_after_with_context_pends_on_a_dependency_then_carries_the_analysts_messages(real_slurm_kit, slurm_cluster):
    kit = real_slurm_kit
    gate = kit.work / "gate"  # the analyst's tool call waits for it: the analyst runs until the test opens it
    task = "analyse [[bash: until test -e gate; do sleep 0.1; done; echo the plan is to add a cache]]"
    analyst = launch(kit, "analyst", task, "--allowed-tools", "Bash")
    try:
        context = ["--with-context-from", "analyst"]  # and no --cwd: the analyst's is the default
        out = kit.run("launch_agent", "impl", "--executor", "slurm", *context, "--json", "implement the plan")
        assert out.returncode == 0, out.stderr
        impl = json.loads(out.stdout)
        assert impl["status"] == "waiting" and impl["slurm_job_id"]
        wait_job(slurm_cluster, impl["slurm_job_id"], "PENDING", "Dependency")
        assert dependency(slurm_cluster, impl["slurm_job_id"]).startswith(f"afterany:{analyst['slurm_job_id']}")
        assert kit.record("impl")["status"] == "waiting"
        assert kit.record("analyst")["status"] in ("queued", "starting", "running")
        assert re.search(r"^impl\s+waiting \(analyst\)", kit.run("check_status").stdout, re.M)
    finally:
        gate.write_text("go")
    waited = kit.run("wait_agents", "analyst", "impl", timeout=120)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    recs = {n: kit.record(n) for n in ("analyst", "impl")}
    assert recs["impl"]["forked_from"] == "analyst" and recs["impl"]["cwd"] == recs["analyst"]["cwd"]
    assert recs["impl"]["resumed_from"] == recs["analyst"]["session_id"]
    first = first_request_with_prompt(kit.api, "implement the plan")
    history = json.dumps(first["body"]["messages"])
    assert "the plan is to add a cache" in history, "impl's first request carries the analyst's messages"
    assert first["time"] >= parse_time(recs["analyst"]["finished"]) - 0.01, "impl started only after the analyst ended"


def test_a_failed_dependency_skips_after_and_after_any_runs(kit, slurm_cluster):
    crash = launch(kit, "a", "[[fake: crash]]", "--slurm-arg=--hold")  # held: it crashes once the test releases it
    b = launch(kit, "b", "never runs", "--after", "a")
    c = launch(kit, "c", "[[fake: ok]] runs anyway", "--after", "a", "--after-any")
    for dep in (b, c):
        assert dep["status"] == "waiting"
        wait_job(slurm_cluster, dep["slurm_job_id"], "PENDING", "Dependency")
        assert dependency(slurm_cluster, dep["slurm_job_id"]).startswith(f"afterany:{crash['slurm_job_id']}")
    assert "waiting (a)" in kit.run("check_status").stdout
    slurm_cluster.run("scontrol", "release", crash["slurm_job_id"])
    waited = kit.run("wait_agents", "a", "b", "c")
    assert waited.returncode == 1
    assert kit.record("a")["status"] == "failed"
    skipped = kit.record("b")
    assert skipped["status"] == "skipped" and "a failed" in skipped["error"] and skipped["pid"] is None
    assert kit.record("c")["status"] == "completed"


# -- waiting ------------------------------------------------------------------------------------


@pytest.mark.parametrize("watch", ["auto", "poll"])
def test_wait_agents_prints_the_changes_and_exits_0_or_1(kit, slurm_cluster, watch):
    kit.env["ORCHESTRATOR_WATCH"] = watch  # poll: as on a network filesystem, where inotify misses other hosts' writes
    ok = [launch(kit, n, "[[fake: ok]]", "--slurm-arg=--hold")["slurm_job_id"] for n in ("w1", "w2")]
    with kit.start("wait_agents", "w1", "w2") as waiter:
        first = [waiter.out.next(timeout=30) for _ in range(2)]  # each agent's state when the waiter started: both held
        assert sorted(re.sub(r"^\S+ ", "", line) for line in first) == ["w1: queued", "w2: queued"], first
        slurm_cluster.run("scontrol", "release", *ok)
        rest = waiter.out.until(lambda seen: seen[-1].startswith("all ended"))
        assert waiter.wait() == 0
    for name in ("w1", "w2"):
        assert any(re.search(rf"{name}: \w+ -> completed", line) for line in rest), rest
    assert rest[-1] == "all ended: 2 completed"

    bad = launch(kit, "w3", "[[fake: crash]]", "--slurm-arg=--hold")["slurm_job_id"]
    with kit.start("wait_agents", "--json", "w1", "w3") as waiter:
        # a line per agent as the waiter first sees it: w1 has ended, w3 is held
        seen = [json.loads(line) for line in waiter.out.until(lambda got: '"w3"' in got[-1])]
        assert seen[-1]["status"] == "queued", seen
        slurm_cluster.run("scontrol", "release", bad)
        events = [json.loads(line) for line in waiter.out.until(lambda seen: '"summary"' in seen[-1])]
        assert waiter.wait() == 1
    assert any(e.get("agent") == "w3" and e.get("status") == "failed" for e in events), events
    assert events[-1]["exit_code"] == 1 and events[-1]["agents"] == {"w1": "completed", "w3": "failed"}


# -- refusals and clearing ------------------------------------------------------------------------


def test_a_refused_sbatch_exits_69_with_slurms_message_and_the_run_fails(kit):
    message = "invalid partition specified: nosuch"
    refused = "--slurm-arg=--partition=nosuch"
    out = kit.run("launch_agent", "r1", *on_slurm(kit), refused, "x")
    assert out.returncode == 69
    assert out.stdout == "" and out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
    rec = kit.record("r1")
    assert rec["status"] == "failed" and message in rec["error"] and rec.get("slurm_job_id") is None
    assert status_json(kit, "r1")["r1"]["status"] == "failed"
    assert kit.run("wait_agents", "r1").returncode == 1
    # the name is free again: a good launch of it runs
    again = kit.run("launch_agent", "r1", *on_slurm(kit), "--wait", "[[fake: ok]]")
    assert again.returncode == 0, again.stdout + again.stderr

    resumed = kit.run("resume_agent", "r1", "--executor", "slurm", refused, "y")
    assert resumed.returncode == 69 and resumed.stderr.count("\n") == 1 and message in resumed.stderr, resumed.stderr
    assert kit.record("r1")["status"] == "failed"

    par = kit.run("launch_parallel", *on_slurm(kit), "--names", "p1,p2", refused, "x", "y")
    assert par.returncode == 69 and par.stderr.count("\n") == 1 and message in par.stderr, par.stderr
    assert kit.record("p1")["status"] == "failed"
    for name in ("r1", "p1", "p2"):
        rec = kit.record(name)
        assert rec is None or rec["status"] == "failed", rec


def test_an_unreadable_record_of_a_pending_job_is_still_stopped(kit, slurm_cluster):
    held = launch(kit, "ur", "[[fake: ok]]", "--slurm-arg=--hold")
    wait_job(slurm_cluster, held["slurm_job_id"], "PENDING", "JobHeldUser")
    (kit.root / "status" / "ur.json").write_text("{garbage")
    out = kit.run("kill_agent", "ur")
    assert out.returncode == 0, out.stderr
    assert "stopped its supervisor" in out.stderr, out.stderr
    assert wait_job_ended(slurm_cluster, held["slurm_job_id"]) == "CANCELLED", "no job is left (the record cannot say it)"


def test_kill_all_and_clear_all_on_slurm_runs(kit, slurm_cluster):
    running = launch(kit, "running", "[[fake: hang]]")
    held = launch(kit, "held", "[[fake: hang]]", "--slurm-arg=--hold")
    dependant = launch(kit, "dependant", "[[fake: ok]]", "--after", "running")
    rec = kit.wait_running("running")
    wait_job(slurm_cluster, dependant["slurm_job_id"], "PENDING", "Dependency")

    refused = kit.run("clear_outputs", "--all")
    assert refused.returncode == 3 and "active" in refused.stderr
    assert {p.stem for p in (kit.root / "status").glob("*.json")} == {"running", "held", "dependant"}

    out = kit.run("kill_agent", "--all", "--json")
    assert out.returncode == 0, out.stderr
    assert {r["agent"]: (r["action"], r["status"]) for r in json.loads(out.stdout)} == {
        name: ("stopped", "killed") for name in ("running", "held", "dependant")
    }
    assert process_gone(rec["pid"], rec["pid_started"])
    assert wait_job_ended(slurm_cluster, held["slurm_job_id"]) == "CANCELLED", "the pending held job is cancelled"
    for launched in (running, dependant):
        wait_job_ended(slurm_cluster, launched["slurm_job_id"])
    assert kit.run("kill_agent", "--all").stdout.strip() == "no active agents"

    cleared = kit.run("clear_outputs", "--all")
    assert cleared.returncode == 0, cleared.stderr
    assert not list((kit.root / "status").glob("*.json"))
    archived = {p.stem for p in (kit.root / "outputs" / "archive").glob("*/status/*.json")}
    assert archived == {"running", "held", "dependant"}


# -- talking to a job (issue 20) ----------------------------------------------------------------


def test_a_message_reaches_a_running_job_and_one_to_its_ended_agent_continues_it_on_slurm(real_slurm_kit, slurm_cluster):
    """The inbox and the answer are files on the shared state root: a job's supervisor reads them as a local one does."""
    kit = real_slurm_kit
    launched = launch(kit, "s1", "remember OKAPI [[reply: noted]]", "--keep-open", "120")
    wait_until(lambda: (r := kit.record("s1")) and r.get("keep_open_until"), timeout=120, what="the job's turn ending")
    out = kit.run("message_agent", "s1", "which animal? [[reply: OKAPI]]", "--wait", timeout=120)
    assert out.returncode == 0 and out.stdout == "OKAPI\n", out.stdout + out.stderr
    rec = kit.record("s1")
    assert rec["run_id"] == launched["run_id"] and rec["slurm_job_id"] == launched["slurm_job_id"], "the same job"
    assert rec["messages"]["answered"] == 1
    assert kit.run("kill_agent", "s1").returncode == 0
    kit.wait_terminal("s1", timeout=60)
    out = kit.run("message_agent", "s1", "and again? [[reply: still OKAPI]]", "--json")
    assert out.returncode == 0, out.stderr
    rec = wait_until(lambda: (r := kit.record("s1")) and r["run_id"] != launched["run_id"] and r.get("keep_open_until") and r,
                     timeout=120, what="the session continued in a new job")
    assert rec["options"]["executor"] == "slurm" and rec["slurm_job_id"] != launched["slurm_job_id"]
    assert "OKAPI" in json.dumps(kit.api.messages_requests()[-1]["messages"])
    assert kit.run("kill_agent", "s1").returncode == 0


def test_a_permission_question_of_a_job_is_answered_on_slurm(real_slurm_kit, slurm_cluster):
    kit = real_slurm_kit
    launch(kit, "s2", "make it [[bash: touch from-job.txt && echo made]]", "--ask-permission")
    waited = kit.run("wait_agents", "s2", timeout=180)
    assert waited.returncode == 5 and "s2 asks: Bash" in waited.stdout, waited.stdout + waited.stderr
    assert kit.run("answer_agent", "s2", "allow").returncode == 0
    rec = kit.wait_terminal("s2", timeout=120)
    assert rec["status"] == "completed" and rec["result"] == "Tool said: made"
    assert (kit.work / "from-job.txt").exists() and rec["questions"]["allowed"] == 1
