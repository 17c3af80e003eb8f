"""The make targets, run as a user runs them: text given to make stays data."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def _make(kit, *args: str) -> subprocess.CompletedProcess:
    env = dict(kit.env, PYTHON=sys.executable)
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_make_launch_status_resume_clear(fake_kit, tmp_path):
    task = "say $(touch pwned) `touch pwned2` \"quoted\" 'single'"
    out = _make(fake_kit, "launch", "NAME=m1", f"TASK={task}", "ARGS=--wait")
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("m1")["task"] == task
    assert not list(ROOT.glob("pwned*")) and not list(fake_kit.root.glob("pwned*"))

    status = _make(fake_kit, "status", "ARGS=--json")
    assert status.returncode == 0
    assert json.loads(status.stdout[status.stdout.index("["):])[0]["status"] == "completed"

    assert _make(fake_kit, "resume", "NAME=m1", "TASK=more", "ARGS=--wait").returncode == 0
    assert fake_kit.record("m1")["task"] == "more"

    cleared = _make(fake_kit, "clear", "NAME=m1")
    assert cleared.returncode == 0, cleared.stderr
    assert fake_kit.record("m1") is None


def test_make_parallel_splits_tasks_without_a_shell(fake_kit):
    out = _make(fake_kit, "parallel", "TASKS=\"first task\" 'second $(touch pwned)'", "ARGS=--wait")
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("agent1")["task"] == "first task"
    assert fake_kit.record("agent2")["task"] == "second $(touch pwned)"
    assert not list(ROOT.glob("pwned*"))
    assert _make(fake_kit, "clear").returncode == 0
    assert fake_kit.record("agent1") is None


def test_make_kill_stops_an_agent(fake_kit):
    assert _make(fake_kit, "launch", "NAME=k1", "TASK=[[fake: hang]]").returncode == 0
    out = _make(fake_kit, "kill", "NAME=k1", "ARGS=--grace 1")
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("k1")["status"] == "killed"


def test_make_message_keeps_text_as_data_and_answer_passes_its_args(fake_kit):
    assert _make(fake_kit, "launch", "NAME=g1", "TASK=first", "ARGS=--wait").returncode == 0
    text = "next $(touch pwned) `touch pwned2` \"quoted\""
    out = _make(fake_kit, "message", "NAME=g1", f"TEXT={text}", "ARGS=--wait")  # ended: it continues the session
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("g1")["task"] == text
    assert not list(ROOT.glob("pwned*")) and not list(fake_kit.root.glob("pwned*"))
    out = _make(fake_kit, "answer", "NAME=g1", "ARGS=deny --message 'not now'")
    assert out.returncode != 0 and "no question pending" in out.stderr
    for target in ("message", "answer"):
        out = _make(fake_kit, target, "NAME=g1")
        assert out.returncode != 0 and "usage" in out.stderr


def test_make_launch_without_task_is_usage_error(fake_kit):
    out = _make(fake_kit, "launch", "NAME=m1")
    assert out.returncode != 0 and "usage" in out.stderr


def test_the_benchmarks_run_and_print_one_table(tmp_path):
    """A smoke run of two cheap items: the benchmark code must not rot (its figures are not asserted)."""
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "4,5", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = out.read_text()
    assert table.startswith("Machine: ") and "Python 3." in table
    rows = [line for line in table.splitlines() if line.startswith("| 4 ") or line.startswith("| 5 ")]
    assert len(rows) == 5, table
    assert "check_status.py" in table and "wait_agents.py" in table
    assert done.stdout.strip().endswith(table.strip().splitlines()[-1])


def test_the_set_up_targets_recipes_are_valid_shell():
    """make -n prints what install, install-cli and test-deps would run; each is valid sh (a comma in a
    $(call ...) argument once split a pip command in two, and only a fresh clone ran that branch)."""
    for target in ("install", "install-cli", "test-deps"):
        printed = subprocess.run(["make", "--no-print-directory", "-n", "-C", str(ROOT), target], capture_output=True,
                                 text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert printed.returncode == 0, printed.stderr
        checked = subprocess.run(["sh", "-n"], input=printed.stdout, capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, f"make -n {target}: {checked.stderr}\n{printed.stdout}"
