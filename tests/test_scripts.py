"""The scripts as a user runs them, with a fake `claude` where the real CLI is not needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from conftest import AGENTS, run_cli, wait_until

from claude_orchestrator.core.programs import CONSOLE_COMMANDS

#: Every command: its script in agents/ and its console command.
SCRIPTS = sorted(CONSOLE_COMMANDS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_has_examples(script):
    code, out, err = run_cli(script, "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: {script}.py ")
    assert "examples:" in out and "exit status" in out


def _console_script(name: str) -> Path:
    """The console command ``name`` that `make install` put beside this python (the venv's bin/)."""
    path = Path(sys.executable).parent / name
    assert os.access(path, os.X_OK), f"{path} is missing: run `make install`"
    return path


def test_each_way_of_running_a_command_names_itself_and_its_siblings_that_way(base_env):
    """A usage line names the command as it was run; a hint names another command the same way
    (core/programs.py): the console command ``orch-status``, or ``python3 agents/check_status.py``."""
    ways = {
        "console": ([str(_console_script("orch-status"))], "orch-status", "orch-launch agent1"),
        "script": ([sys.executable, str(AGENTS / "check_status.py")], "check_status.py", "python3 agents/launch_agent.py agent1"),
    }
    for way, (argv, name, hint) in ways.items():
        bad = subprocess.run([*argv, "--nosuch"], env=base_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert (bad.returncode, bad.stdout) == (2, ""), (way, bad.stderr)
        assert bad.stderr.startswith(f"usage: {name} ") and f"{name}: error: unrecognized arguments: --nosuch" in bad.stderr, (way, bad.stderr)
        empty = subprocess.run(argv, env=base_env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert (empty.returncode, empty.stderr) == (0, ""), (way, empty.stderr)
        assert empty.stdout == f'no agents yet; start one with: {hint} "TASK"\n', (way, empty.stdout)


def test_launch_returns_running_and_completes(fake_kit):
    out = fake_kit.run("launch_agent", "a1", "hello [[fake: slow:1]]", "--json")
    assert out.returncode == 0, out.stderr
    launched = json.loads(out.stdout)  # only JSON on stdout
    assert launched["agent"] == "a1" and launched["status"] == "starting"
    rec = fake_kit.wait_terminal("a1")
    assert rec["status"] == "completed" and rec["exit_code"] == 0
    assert rec["session_id"] == launched["session_id"]
    assert (fake_kit.root / "outputs" / "a1_latest.txt").read_text() == "FAKE: hello [[fake: slow:1]]\n"
    assert (fake_kit.root / "sessions" / "a1_session.txt").read_text().strip() == launched["session_id"]
    lines = (fake_kit.root / "outputs" / "a1" / f"{launched['run_id']}.jsonl").read_text().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["system", "user", "assistant", "result"], "the task is echoed where the CLI took it"


def test_cli_gets_argv_cwd_and_a_clean_env(fake_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = dict(fake_kit.env, CLAUDECODE="1", CLAUDE_CODE_ENTRYPOINT="cli")
    fake_kit.env = env
    out = fake_kit.run(
        "launch_agent", "a1", "--cwd", str(work), "--model", "sonnet", "--allowed-tools", "Bash,Read",
        "--permission-mode", "acceptEdits", "--claude-arg=--max-turns", "--claude-arg", "3", "--wait", "--", "-x task",
    )
    assert out.returncode == 0, out.stderr
    (dump,) = (tmp_path / "argv").glob("*.json")
    seen = json.loads(dump.read_text())
    argv = seen["argv"]
    assert "-x task" not in argv and "--" not in argv, "the task goes to the CLI on stdin, never as an argument"
    assert (fake_kit.root / "outputs" / "a1_latest.txt").read_text() == "FAKE: -x task\n"
    assert argv[argv.index("--model") + 1] == "sonnet"
    assert argv[argv.index("--allowedTools") + 1] == "Bash,Read"
    assert argv[argv.index("--max-turns") + 1] == "3"
    assert seen["cwd"] == str(work.resolve())
    assert "CLAUDECODE" not in seen["env"] and "CLAUDE_CODE_ENTRYPOINT" not in seen["env"]


@pytest.mark.parametrize("caller_path", [None, "/opt/caller-lib"])
def test_the_cli_sees_the_callers_pythonpath_not_the_supervisors(fake_kit, tmp_path, caller_path):
    """The supervisor runs as python -S with its own PYTHONPATH; the CLI (and its tools) get the caller's back."""
    env = dict(fake_kit.env)
    env.pop("PYTHONPATH", None)
    if caller_path:
        env["PYTHONPATH"] = caller_path
    fake_kit.env = env
    out = fake_kit.run("launch_agent", "a1", "--wait", "hello")
    assert out.returncode == 0, out.stderr
    (dump,) = (tmp_path / "argv").glob("*.json")
    seen = json.loads(dump.read_text())["env"]
    assert seen.get("PYTHONPATH") == caller_path
    assert "ORCHESTRATOR_CALLER_PYTHONPATH" not in seen
    log = Path(fake_kit.record("a1")["log_file"]).read_text()
    assert "supervisor crashed" not in log


@pytest.mark.parametrize("mode", ["is_error", "no_result", "crash"])
def test_failures_are_classified_failed(fake_kit, mode):
    out = fake_kit.run("launch_agent", "a1", f"[[fake: {mode}]]", "--wait", "--json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["status"] == "failed"  # --json --wait: the short form; the record has the rest
    rec = fake_kit.record("a1")
    assert rec["status"] == "failed" and rec["error"]
    assert rec["exit_code"] == {"is_error": 0, "no_result": 3, "crash": 2}[mode]
    assert (fake_kit.root / "outputs" / "a1_latest.txt").read_text()


def test_launch_does_not_hold_the_callers_pipe(fake_kit):
    """`launch_agent.py ... | cat` returns while the agent is still running."""
    cmd = [sys.executable, str(AGENTS / "launch_agent.py"), "a1", "[[fake: hang]]"]
    p1 = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fake_kit.env, stdin=subprocess.DEVNULL)
    out, err = p1.communicate(timeout=20)  # returns only when every writer closed the pipes
    assert p1.returncode == 0, err
    assert b"a1: starting" in out
    rec = wait_until(lambda: (r := fake_kit.record("a1")) and r["status"] == "running" and r)
    assert rec["status"] == "running"
    assert fake_kit.run("clear_outputs", "a1", "--force").returncode == 0


def test_duplicate_launch_of_a_running_agent_exits_3(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "[[fake: hang]]").returncode == 0
    again = fake_kit.run("launch_agent", "a1", "other")
    assert again.returncode == 3 and "already" in again.stderr
    par = fake_kit.run("launch_parallel", "--names", "b1,a1", "x", "y")
    assert par.returncode == 3
    assert fake_kit.record("b1") is None, "a refused fan-out launches nothing"
    assert fake_kit.record("a1")["task"] == "[[fake: hang]]"
    fake_kit.run("clear_outputs", "--all", "--force")


@pytest.mark.parametrize("name", ["../x", "a/b", "", "-rf", "archive"])
def test_bad_names_exit_2_and_touch_nothing(fake_kit, name):
    code, _, err = run_cli("launch_agent", "--", name, "task", env=fake_kit.env)
    assert code == 2, err
    assert "invalid agent name" in err or "reserved" in err
    assert sorted(p.name for p in fake_kit.root.iterdir()) == []


def test_missing_cli_exits_127_and_leaves_no_record(fake_kit):
    fake_kit.env["CLAUDE_BIN"] = "/nonexistent/claude"
    out = fake_kit.run("launch_agent", "a1", "task")
    assert out.returncode == 127 and "CLAUDE_BIN" in out.stderr
    assert fake_kit.record("a1") is None
    env = {k: v for k, v in fake_kit.env.items() if k != "CLAUDE_BIN"}
    env["PATH"] = "/nonexistent"
    # with neither CLAUDE_BIN nor claude on PATH, the project-local CLI is the last resort
    from claude_orchestrator.claude.invocation import LOCAL_CLI

    if not os.access(LOCAL_CLI, os.X_OK):
        fake_kit.env = env
        assert fake_kit.run("launch_agent", "a1", "task").returncode == 127


def test_empty_task_and_bad_cwd_exit_2(fake_kit):
    for script, *args in (
        ("launch_agent", "a1"),
        ("launch_agent", "a1", "--cwd", "/nonexistent", "t"),
        ("launch_parallel", "--names", "a,b", "one"),
        ("launch_parallel", "--names", "a,a", "one", "two"),
    ):
        code, out, err = run_cli(script, *args, env=fake_kit.env)
        assert (code, out) == (2, ""), (args, out, err)
        assert err.strip() and "Traceback" not in err, (args, err)
    assert fake_kit.record("a1") is None
    assert fake_kit.record("a") is None


def test_task_file_and_stdin(fake_kit, tmp_path):
    f = tmp_path / "task.md"
    f.write_text("from a file\nline two")
    assert fake_kit.run("launch_agent", "a1", "--task-file", str(f), "--wait").returncode == 0
    assert fake_kit.record("a1")["task"] == "from a file\nline two"
    out = fake_kit.run("launch_agent", "a2", "--task-file", "-", "--wait", input="from stdin")
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("a2")["task"] == "from stdin"


def test_parallel_names_agents_and_waits(fake_kit):
    out = fake_kit.run("launch_parallel", "one", "two", "three", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    recs = json.loads(out.stdout)
    assert [r["agent"] for r in recs] == ["agent1", "agent2", "agent3"]
    assert all(r["status"] == "completed" for r in recs)
    table = fake_kit.run("check_status")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["AGENT", "STATUS", "ELAPSED", "TURNS", "TOKENS", "COST", "TASK"]
    assert len(table.stdout.splitlines()) == 4


def test_check_status_unknown_agent_exits_4(fake_kit):
    assert fake_kit.run("check_status", "ghost").returncode == 4
    empty = fake_kit.run("check_status")
    assert empty.returncode == 0 and "no agents yet" in empty.stdout


def test_resume_without_session_exits_4(fake_kit):
    out = fake_kit.run("resume_agent", "a1", "continue")
    assert out.returncode == 4 and "launch_agent.py a1" in out.stderr


def test_resume_uses_the_stored_session(fake_kit, tmp_path):
    assert fake_kit.run("launch_agent", "a1", "first", "--wait").returncode == 0
    sid = fake_kit.record("a1")["session_id"]
    assert fake_kit.run("resume_agent", "a1", "second", "--wait").returncode == 0
    rec = fake_kit.record("a1")
    assert rec["resumed_from"] == sid and rec["session_id"] == sid
    dumps = sorted((tmp_path / "argv").glob("*.json"), key=lambda p: p.stat().st_mtime)
    argv = json.loads(dumps[-1].read_text())["argv"]
    assert argv[argv.index("-r") + 1] == sid and "--fork-session" not in argv


def test_reused_pid_is_not_trusted(fake_kit):
    """A record pointing at a live, unrelated process with another start time is lost."""
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {
            "agent": "a1", "run_id": "r1", "task": "t", "status": "running",
            "created": "2026-01-01T00:00:00Z", "started": "2026-01-01T00:00:00Z",
            "supervisor_pid": bystander.pid, "supervisor_started": psutil.Process(bystander.pid).create_time() - 100,
            "pid": bystander.pid, "pid_started": psutil.Process(bystander.pid).create_time() - 100,
        }
        (fake_kit.root / "status").mkdir()
        (fake_kit.root / "status" / "a1.json").write_text(json.dumps(record))
        out = fake_kit.run("check_status")
        assert "lost" in out.stdout
        out = fake_kit.run("clear_outputs", "a1", "--force")
        assert out.returncode == 0, out.stderr
        assert bystander.poll() is None, "an unrelated process must never be signalled"
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


def test_clear_archives_and_refuses_running(fake_kit):
    assert fake_kit.run("launch_agent", "done1", "x", "--wait").returncode == 0
    assert fake_kit.run("launch_agent", "busy", "[[fake: hang]]").returncode == 0
    wait_until(lambda: (r := fake_kit.record("busy")) and r["status"] == "running")
    refused = fake_kit.run("clear_outputs", "--all")
    assert refused.returncode == 3 and "busy" in refused.stderr
    assert fake_kit.record("done1") is not None, "a refused clear clears nothing"

    out = fake_kit.run("clear_outputs", "done1", "--json")
    assert out.returncode == 0, out.stderr
    outcome = json.loads(out.stdout)
    archive = fake_kit.root / "outputs" / "archive"
    (stamp,) = archive.iterdir()
    assert outcome["archive"] == str(stamp)
    assert (stamp / "status" / "done1.json").exists()
    assert (stamp / "sessions" / "done1_session.txt").exists()
    assert (stamp / "outputs" / "done1_latest.txt").read_text() == "FAKE: x\n"
    assert list((stamp / "outputs" / "done1").glob("*.jsonl"))
    assert fake_kit.record("done1") is None

    forced = fake_kit.run("clear_outputs", "busy", "--force", "--purge")
    assert forced.returncode == 0, forced.stderr
    assert "busy: stopped" in forced.stdout
    assert fake_kit.record("busy") is None
    assert not (fake_kit.root / "outputs" / "busy").exists()
    assert fake_kit.run("clear_outputs", "ghost").returncode == 4
    assert run_cli("clear_outputs", env=fake_kit.env)[0] == 2
