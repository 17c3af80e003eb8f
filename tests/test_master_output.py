"""What the master reads: follow mode, change times that never go backwards, and output budgets.

The master pays for every byte it reads (issue 10): for 10 ended agents with
1,200-character answers the views it uses have budgets, measured here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from conftest import Background, run_cli, wait_until

from claude_orchestrator.records.shape import parse_time


def _follow(kit, *args: str) -> Background:
    """Start wait_agents.py --follow; return once it has read its starting point (its stderr line)."""
    follower = kit.start("wait_agents", "--follow", *args)
    ready = follower.err.next()
    assert "following every agent under" in ready, ready
    return follower


def test_follow_reports_agents_launched_after_it_started_once_each(fake_kit, tmp_path):
    assert fake_kit.run("launch_agent", "old", "x", "--wait").returncode == 0  # known at start: not reported
    with _follow(fake_kit, "--json") as follower:
        gate = tmp_path / "gate"
        assert fake_kit.run("launch_agent", "a1", f"[[fake: until:{gate}]]").returncode == 0
        assert fake_kit.run("launch_parallel", "--names", "b1,b2", "first", "second").returncode == 0
        first = follower.out.until(lambda ls: any('"agent":"a1"' in line and '"running"' in line for line in ls), limit=200)
        gate.write_text("go")
        ended = lambda ls: sum(1 for line in ls if json.loads(line)["status"] == "completed") >= 3  # noqa: E731
        lines = first + follower.out.until(lambda ls: ended(first + ls), limit=200)
        follower.proc.send_signal(signal.SIGTERM)
        assert follower.wait() == 0
    events = [json.loads(line) for line in lines]
    assert all(e["event"] == "change" for e in events)
    assert {e["agent"] for e in events} == {"a1", "b1", "b2"}, "the agent known at start is not reported"
    keys = [(e["agent"], e["run_id"], e["status"]) for e in events]
    assert len(keys) == len(set(keys)), f"a change was reported twice: {keys}"
    assert all(e["at"] for e in events), "every change carries its time"
    times = [parse_time(e["at"]) for e in events]
    assert times == sorted(times), "times never go backwards"
    done = {e["agent"]: e for e in events if e["status"] == "completed"}
    assert done["a1"]["result"].startswith("FAKE: ") and done["a1"]["num_turns"] == 1
    assert done["a1"]["run_id"] == fake_kit.record("a1")["run_id"]


def test_follow_text_lines_and_sigint_exits_130(fake_kit):
    with _follow(fake_kit) as follower:
        assert fake_kit.run("launch_agent", "t1", "hello").returncode == 0
        lines = follower.out.until(lambda ls: "completed" in ls[-1], limit=200)
        follower.proc.send_signal(signal.SIGINT)
        assert follower.wait() == 130
    assert lines[-1].split(" ", 1)[1].startswith("t1: ") and " in " in lines[-1] and "1 turn" in lines[-1]
    assert all(line[2] == ":" and line[5] == ":" for line in lines), lines


def test_follow_refuses_names_and_timeout(fake_kit):
    for refused in (["a1"], ["--timeout", "5"], ["--any"]):
        code, out, err = run_cli("wait_agents", "--follow", *refused, env=fake_kit.env)
        assert (code, out) == (2, ""), (refused, err)
        assert err.startswith("usage: wait_agents.py") and "--follow" in err.splitlines()[-1], (refused, err)


def test_a_queued_change_carries_its_time(fake_kit, tmp_path):
    gate = tmp_path / "gate"
    out = fake_kit.run("launch_parallel", "--max-parallel", "1", "--names", "q1,q2", f"[[fake: until:{gate}]]", "second")
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("q2")["status"] == "queued"
    with fake_kit.start("wait_agents", "--json", "q1", "q2") as waited:
        first = waited.out.next()  # q2 queued (q1 running is routine: --json leaves it out)
        gate.write_text("go")
        rest = waited.out.until(lambda ls: '"summary"' in ls[-1], limit=200)
        assert waited.wait() == 0
    events = [json.loads(line) for line in [first, *rest]]
    assert events[0]["agent"] == "q2" and events[0]["status"] == "queued" and events[0]["at"], events
    changes = [e for e in events if e["event"] == "change"]
    assert [(e["agent"], e["status"]) for e in changes[1:]] in ([("q1", "completed"), ("q2", "completed")],), changes
    stamps = [parse_time(e["at"]) for e in changes]
    assert None not in stamps and stamps == sorted(stamps)


ANSWER_TASK = "Summarise the module. " + "x" * 1180  # the fake CLI answers "FAKE: <task>": 1,208 characters


#: The state root's length in the budget test: a typical checkout path, fixed so that sizes do not depend on tmp paths.
ROOT_CHARS = 60


def test_output_budgets_for_ten_agents(fake_kit):
    base = Path(tempfile.mkdtemp(prefix="ob", dir="/tmp"))
    root = base / ("r" * (ROOT_CHARS - len(str(base)) - 1))
    root.mkdir()
    assert len(str(root)) == ROOT_CHARS
    fake_kit.env["ORCHESTRATOR_HOME"], fake_kit.root = str(root), root
    try:
        sizes = _measure_budgets(fake_kit)
        print("SIZES", sizes)
    finally:
        shutil.rmtree(base)


def _measure_budgets(fake_kit):
    names = [f"agent{i}" for i in range(1, 11)]
    launched = fake_kit.run("launch_parallel", "--names", ",".join(names), *[ANSWER_TASK] * 10)
    assert launched.returncode == 0, launched.stderr
    lines = launched.stdout.splitlines()
    assert len(lines) == 11 and lines[-1].startswith("files under ") and "outputs/NAME_latest.txt" in lines[-1]
    assert len(launched.stdout.encode()) <= 1600, len(launched.stdout.encode())
    live = fake_kit.run("wait_agents", "--json", *names)  # launched a moment ago (4 at once, 6 queued): waits through their runs
    assert live.returncode == 0, live.stderr
    assert len(live.stdout.encode()) <= 4096, len(live.stdout.encode())
    summary = json.loads(live.stdout.splitlines()[-1])
    assert summary["agents"] == dict.fromkeys(names, "completed") and summary["counts"] == {"completed": 10}
    changes = [json.loads(line) for line in live.stdout.splitlines()[:-1]]
    assert sorted(e["agent"] for e in changes if e["status"] == "completed") == sorted(names)
    assert {e["status"] for e in changes} <= {"queued", "completed"}, "starting and running are left out of --json"

    again = fake_kit.run("wait_agents", "--json", *names)  # all ended: one line each, then the summary
    assert len(again.stdout.encode()) <= 4096, len(again.stdout.encode())
    table = fake_kit.run("check_status")
    assert table.returncode == 0 and len(table.stdout.encode()) <= 2048, len(table.stdout.encode())
    brief = fake_kit.run("check_status", "--json")
    assert brief.returncode == 0 and len(brief.stdout.encode()) <= 4096, len(brief.stdout.encode())
    recs = json.loads(brief.stdout)
    assert sorted(r["agent"] for r in recs) == sorted(names)
    one = recs[0]
    assert {"agent", "status", "run_id", "result", "num_turns", "cost_usd", "duration_s", "session_id", "output_file"} <= set(one)
    assert ANSWER_TASK[:40] in one["result"] and Path(one["output_file"]).read_text().startswith("FAKE: Summarise")
    full = json.loads(fake_kit.run("check_status", "--full").stdout)
    assert full[0]["transcript_file"] and len(full[0]["result"]) >= 500, "--full gives the whole records"
    parallel_json = json.loads(fake_kit.run("launch_parallel", "--json", "--names", "j1,j2", "a", "b").stdout)
    assert [r["agent"] for r in parallel_json] == ["j1", "j2"] and all(r["session_id"] and r["output_file"] for r in parallel_json)
    assert fake_kit.run("wait_agents", "j1", "j2").returncode == 0
    return [len(o.stdout.encode()) for o in (launched, live, again, table, brief)]


def test_follow_reports_a_supervisor_that_died_without_a_word_as_lost(fake_kit):
    assert fake_kit.run("launch_agent", "h1", "[[fake: hang]]").returncode == 0
    rec = wait_until(lambda: (r := fake_kit.record("h1")) and r["status"] == "running" and r, what="h1 running")
    try:
        with _follow(fake_kit, "--json") as follower:
            os.kill(rec["supervisor_pid"], signal.SIGKILL)  # no record write: only the periodic pass can notice
            lost = follower.out.until(lambda ls: '"status":"lost"' in ls[-1], limit=200)
            follower.proc.send_signal(signal.SIGTERM)
            assert follower.wait() == 0
    finally:
        fake_kit.run("kill_agent", "h1", "--grace", "1")  # the orphaned CLI
    event = json.loads(lost[-1])
    assert event["agent"] == "h1" and event["previous"] == "running" and "supervisor" in event["error"]
