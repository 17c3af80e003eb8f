"""Supervision with real processes: timeouts, stop, memory, lost runs, the queue, duplicates.

A fake `claude` (tests/fake_claude.py) misbehaves on request; the real CLI is
used where it can be made to (tests at the end).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
from conftest import process_gone, run_cli, wait_cli_quiet, wait_until

from claude_orchestrator.core import locks
from claude_orchestrator.records.shape import parse_time


def test_a_hanging_cli_times_out(fake_kit):
    out = fake_kit.run("launch_agent", "a1", "[[fake: hang]]", "--timeout", "1", "--kill-grace", "1", "--wait", "--json")
    assert out.returncode == 1
    rec = fake_kit.record("a1")  # --json --wait prints the short form
    assert rec["status"] == "timeout" and "timeout" in rec["error"]
    assert rec["duration_s"] >= 1
    assert process_gone(rec["pid"], rec["pid_started"])
    assert "[timeout]" in (fake_kit.root / "outputs" / "a1_latest.txt").read_text()


def test_timeout_default_comes_from_the_environment(fake_kit):
    fake_kit.env["ORCHESTRATOR_TIMEOUT"] = "1"
    out = fake_kit.run("launch_agent", "a1", "[[fake: hang]]", "--kill-grace", "0.5", "--wait", "--json")
    assert json.loads(out.stdout)["status"] == "timeout"
    fake_kit.env["ORCHESTRATOR_TIMEOUT"] = "soon"
    code, _, err = run_cli("launch_agent", "a2", "x", env=fake_kit.env)
    assert code == 2 and "ORCHESTRATOR_TIMEOUT" in err
    assert fake_kit.record("a2") is None


def _log_time(line: str) -> float:
    """The time stamped at the start of a supervisor log line."""
    return parse_time(line.split(" ", 1)[0])


def test_sigterm_ignored_is_killed_after_the_grace(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "[[fake: ignore_term]]", "--kill-grace", "1").returncode == 0
    rec = fake_kit.wait_running("a1")
    out = fake_kit.run("kill_agent", "a1")
    assert out.returncode == 0, out.stderr
    assert "stopped" in out.stdout
    assert process_gone(rec["pid"], rec["pid_started"]), "the CLI that ignores SIGTERM is dead once the kill returns"
    final = fake_kit.record("a1")
    assert final["status"] == "killed" and final["exit_code"] == -signal.SIGKILL
    log = open(rec["log_file"]).read().splitlines()
    term = [line for line in log if "SIGTERM to the tree; SIGKILL in 1 s" in line]
    kill = [line for line in log if "grace period over: SIGKILL to the tree" in line]
    assert len(term) == 1 and len(kill) == 1, log
    assert log.index(term[0]) < log.index(kill[0])
    # the log's stamps are cut to milliseconds: allow for that, never for a late SIGKILL's lateness
    assert _log_time(kill[0]) - _log_time(term[0]) >= 1 - 0.002, "SIGKILL only once the grace is over"


def test_a_stop_leaves_nothing_of_the_tree_even_after_setsid(fake_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    assert fake_kit.run("launch_agent", "a1", "--cwd", str(work), "[[fake: setsid_grandchild]]").returncode == 0
    rec = fake_kit.wait_running("a1")
    gc_pid = int(wait_until(lambda: (work / "grandchild.pid").exists() and (work / "grandchild.pid").read_text(), what="grandchild"))
    gc = psutil.Process(gc_pid)
    assert os.getsid(gc_pid) != os.getpgid(rec["pid"]), "the grandchild left the CLI's process group and session"
    out = fake_kit.run("kill_agent", "a1", "--grace", "1")
    assert out.returncode == 0, out.stderr
    wait_until(lambda: not gc.is_running() or gc.status() == psutil.STATUS_ZOMBIE, timeout=5, what="grandchild gone")
    assert process_gone(rec["pid"], rec["pid_started"])
    assert fake_kit.record("a1")["status"] == "killed"


def test_memory_past_the_limit_in_a_child_stops_the_run(fake_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = fake_kit.run(
        "launch_agent", "a1", "--cwd", str(work), "--memory-limit", "120", "--kill-grace", "1", "--wait", "--json",
        "[[fake: memhog:200]]",
    )
    assert out.returncode == 1
    rec = fake_kit.record("a1")  # --json --wait prints the short form
    assert rec["status"] == "memory_exceeded"
    assert rec["peak_rss_mb"] >= 120
    assert [w["level"] for w in rec["memory_warnings"]] == ["warning", "critical"]
    hog = int((work / "memhog.pid").read_text())
    assert not psutil.pid_exists(hog) or psutil.Process(hog).status() == psutil.STATUS_ZOMBIE
    log = open(rec["log_file"]).read()
    assert "memory warning" in log and "memory critical" in log and "memory limit" in log


def test_peak_rss_is_recorded_for_every_run(fake_kit):
    out = fake_kit.run("launch_agent", "a1", "[[fake: slow:1]]", "--wait", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    rec = fake_kit.record("a1")  # --json --wait prints the short form
    assert rec["status"] == "completed" and rec["peak_rss_mb"] > 1 and rec["memory_warnings"] == []


def test_a_cli_lingering_after_its_result_is_stopped_and_judged_by_it(fake_kit):
    out = fake_kit.run("launch_agent", "a1", "[[fake: result_hang]] done", "--kill-grace", "1", "--timeout", "30", "--wait", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    rec = fake_kit.record("a1")  # --json --wait prints the short form
    assert rec["status"] == "completed" and rec["stopped_after_result"] is True
    assert rec["exit_code"] == -signal.SIGTERM  # stopped after its result, not by the --timeout (status would be timeout)


def test_killed_supervisor_is_lost_and_its_orphan_can_be_stopped(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "[[fake: hang]]").returncode == 0
    rec = fake_kit.wait_running("a1")
    wait_cli_quiet(rec)  # it then only sleeps, so it outlives its reader
    os.kill(rec["supervisor_pid"], signal.SIGKILL)
    wait_until(lambda: process_gone(rec["supervisor_pid"], rec["supervisor_started"]), what="supervisor gone")
    assert json.loads(fake_kit.run("check_status", "--json").stdout)[0]["status"] == "lost"
    assert not process_gone(rec["pid"], rec["pid_started"]), "the orphaned CLI still runs until someone stops it"
    out = fake_kit.run("kill_agent", "a1")
    assert out.returncode == 0 and "orphaned" in out.stdout
    assert process_gone(rec["pid"], rec["pid_started"])
    assert fake_kit.record("a1")["status"] == "lost"


def test_kill_agent_on_ended_or_unknown_agents(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "x", "--wait").returncode == 0
    out = fake_kit.run("kill_agent", "a1")
    assert out.returncode == 0 and "nothing to stop" in out.stdout
    assert fake_kit.record("a1")["status"] == "completed"
    assert fake_kit.run("kill_agent", "ghost").returncode == 4
    assert run_cli("kill_agent", env=fake_kit.env)[0] == 2
    assert fake_kit.run("kill_agent", "--all").stdout.strip() == "no active agents"


def test_a_kill_before_the_supervisor_claims_the_run_starts_nothing(fake_kit, tmp_path):
    """kill_agent in the moment after a launch, before the supervisor has recorded itself.

    The record is marked killed under its lock; the supervisor that claims the
    run afterwards finds it killed and starts no CLI.
    """
    from claude_orchestrator.core.paths import StatePaths
    from claude_orchestrator.records.shape import utc_now
    from claude_orchestrator.records.spec import RunSpec
    from claude_orchestrator.records.status_record import RecordStore, StatusRecord

    paths = StatePaths(fake_kit.root)
    paths.ensure()
    rec = StatusRecord(agent="early", run_id="r1", task="[[fake: hang]]", created=utc_now(), cwd=str(tmp_path),
                       spec=RunSpec(claude_bin=fake_kit.env["CLAUDE_BIN"]))
    RecordStore(paths).write(rec)
    paths.run_dir("early").mkdir(parents=True)
    life = locks.try_lock(paths.alive_lock("early"))  # held as by a supervisor that has not claimed yet
    try:
        out = fake_kit.run("kill_agent", "early", "--grace", "1")
    finally:
        os.close(life)
    assert out.returncode == 0, out.stderr
    killed = fake_kit.record("early")
    assert killed["status"] == "killed" and "before it started" in killed["error"]
    sup = subprocess.run([sys.executable, "-m", "claude_orchestrator.supervisor", "--root", str(paths.root), "early", "r1"],
                         env=fake_kit.env, capture_output=True, timeout=30)
    assert sup.returncode == 0
    assert fake_kit.record("early")["status"] == "killed"
    assert not list((tmp_path / "argv").glob("*.json")), "the CLI was started for a killed run"


def test_a_queued_agent_shows_its_place_and_can_be_killed(fake_kit):
    assert fake_kit.run("launch_agent", "first", "[[fake: hang]]", "--max-parallel", "1").returncode == 0
    out = fake_kit.run("launch_agent", "second", "[[fake: hang]]", "--max-parallel", "1", "--json")
    assert json.loads(out.stdout)["status"] == "queued"
    out = fake_kit.run("launch_agent", "third", "x", "--max-parallel", "1", "--json")
    assert json.loads(out.stdout)["status"] == "queued"
    table = fake_kit.run("check_status").stdout
    assert "queued #1" in table and "queued #2" in table
    positions = {r["agent"]: r.get("queue_position") for r in json.loads(fake_kit.run("check_status", "--json").stdout)}
    assert positions == {"first": None, "second": 1, "third": 2}
    assert fake_kit.run("kill_agent", "second").returncode == 0
    assert fake_kit.record("second")["status"] == "killed"
    assert fake_kit.record("first")["status"] == "running"
    assert fake_kit.run("kill_agent", "first").returncode == 0
    assert fake_kit.wait_terminal("third")["status"] == "completed", "the queue moves on when a slot frees"


def _count_fake_clis(fake_claude) -> int:
    n = 0
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if len(cmd) > 1 and cmd[1] == str(fake_claude):
            n += 1
    return n


def _slot_holders(kit, names: list[str]) -> list[str]:
    """The agents of ``names`` that hold a slot now: past the queue, not yet ended."""
    return [n for n in names if (r := kit.record(n)) and r["status"] in ("starting", "running")]


def _holders_if(kit, names: list[str], n: int) -> list[str] | None:
    """The slot holders among ``names`` if there are ``n`` of them, else None."""
    holders = _slot_holders(kit, names)
    return holders if len(holders) == n else None


def test_eight_launches_with_three_slots(fake_kit, fake_claude, tmp_path):
    """Every run waits for its own gate file, so which runs hold the slots depends only on which gates are open.

    Eight: batches of 3, 3 and 2 hand freed slots to the queue's head twice, the last batch a short one."""
    names = [f"q{i:02d}" for i in range(8)]
    gates = {n: tmp_path / f"gate-{n}" for n in names}
    peak = 0
    done = threading.Event()

    def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _count_fake_clis(fake_claude))
            time.sleep(0.05)  # a fourth CLI would live until its gate opens: far longer than this; scanning /proc costs CPU

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        for i, name in enumerate(names):  # one after another: the launch order is the FIFO order
            out = fake_kit.run("launch_agent", name, f"[[fake: until:{gates[name]}]]", "--max-parallel", "3", "--json")
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout)["status"] == ("starting" if i < 3 else "queued")
        wait_until(lambda: all(fake_kit.record(n)["status"] == "running" for n in names[:3]), what="the first three running")
        assert [fake_kit.record(n)["status"] for n in names[3:]] == ["queued"] * (len(names) - 3)
        assert _count_fake_clis(fake_claude) == 3, "three CLIs at once, each waiting for its gate"
        # Open the gates of the three slot holders; when they have ended, the next three in launch order hold the slots.
        for start in range(0, len(names), 3):
            batch = names[start:start + 3]
            for name in batch:
                gates[name].write_text("go")
            for name in batch:
                assert fake_kit.wait_terminal(name)["status"] == "completed"
            following = names[start + 3:start + 6]
            k = len(following)
            holders = wait_until(lambda k=k: _holders_if(fake_kit, names, k), what=f"{k} runs to take the freed slots") if k else []
            assert holders == following, "freed slots go to the head of the queue, in launch (FIFO) order"
            assert all(fake_kit.record(n)["status"] == "queued" for n in names[start + 6:])
        recs = [fake_kit.wait_terminal(n) for n in names]
    finally:
        done.set()
        sampler.join(timeout=10)
        for gate in gates.values():  # on a failure, let every run end
            gate.touch()
    assert all(r["status"] == "completed" for r in recs)
    assert peak <= 3, f"saw {peak} CLIs alive at once"
    granted = [r["slot_granted_at"] for r in recs]
    assert granted == sorted(granted), "slots must be granted in launch (FIFO) order"


def test_twenty_simultaneous_launches_of_one_name_run_once(fake_kit, tmp_path):
    gate = tmp_path / "gate"  # the run cannot end before every launch has returned: a late launch finds it active
    launches = [fake_kit.start("launch_agent", "same", f"[[fake: until:{gate}]]") for _ in range(20)]
    try:
        ended = [launch.finish(timeout=60) for launch in launches]
    finally:
        gate.write_text("go")
    assert sorted(code for code, _, _ in ended) == [0] + [3] * 19, ended
    rec = fake_kit.wait_terminal("same")
    assert rec["status"] == "completed"
    assert len(list((tmp_path / "argv").glob("*.json"))) == 1, "exactly one CLI ran"
    assert len(list((fake_kit.root / "outputs" / "same").glob("*.jsonl"))) == 1


# -- the real CLI against the fake API ------------------------------------


def test_real_cli_401_hangs_and_ends_as_timeout(real_kit):
    out = real_kit.run("launch_agent", "auth", "[[status: 401]] hello", "--timeout", "3", "--kill-grace", "2", "--wait", "--json")
    rec = real_kit.record("auth")  # --json --wait prints the short form
    assert out.returncode == 1
    # the configured deadline, not the CLI's own retries, ends the run
    assert rec["status"] == "timeout" and rec["duration_s"] >= 3
    assert "timeout: 3 s passed" in open(rec["log_file"]).read()
    assert process_gone(rec["pid"], rec["pid_started"])


def test_real_cli_529_then_success_is_retried(real_kit):
    real_kit.env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # the CLI's own retries would hide the error
    out = real_kit.run("launch_agent", "busy", "[[flaky: 529 1]] try again", "--retries", "2", "--retry-backoff", "0.2", "--wait", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    rec = real_kit.record("busy")  # --json --wait prints the short form
    assert rec["status"] == "completed" and rec["attempt"] == 2
    assert rec["result"] == "OK: [[flaky: 529 1]] try again"
    events = [json.loads(line) for line in open(rec["transcript_file"])]
    assert [e for e in events if e["type"] == "result"][0]["api_error_status"] == 529, "both attempts are in the transcript"
    assert "retrying" in open(rec["log_file"]).read()


def test_non_retryable_failures_are_not_retried(real_kit):
    real_kit.env["CLAUDE_CODE_MAX_RETRIES"] = "0"
    out = real_kit.run("launch_agent", "bad", "[[status: 400]] no", "--retries", "2", "--retry-backoff", "0.1", "--wait", "--json")
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "failed", out.stdout + out.stderr
    rec = real_kit.record("bad")  # --json --wait prints the short form
    assert rec["status"] == "failed" and rec["attempt"] == 1


def test_the_timeout_counts_work_not_waits_on_the_master():
    """Attempt.working_s: time since the CLI started, less the time idle after a turn or with a question pending
    (the pump tells it through _pause), with a clock of the test's own."""
    from claude_orchestrator.supervisor.attempt import Attempt

    attempt = object.__new__(Attempt)  # only the clock's state: no CLI
    attempt.started, attempt.paused_s, attempt._paused_at = 100.0, 0.0, None
    attempt._pause(False, 103.0)
    assert attempt.working_s(103.0) == 3.0
    attempt._pause(True, 103.0)  # a turn ended with --keep-open, or a question was asked
    assert attempt.working_s(150.0) == 3.0, "waiting on the master is not work"
    attempt._pause(True, 160.0)  # still waiting: nothing changes
    attempt._pause(False, 170.0)  # a message came, or the answer
    assert attempt.working_s(172.0) == 5.0 and attempt.paused_s == 67.0
