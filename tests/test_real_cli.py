"""End to end: the real Claude Code CLI against the fake API, on every pinned version.

These run in CI and never skip: the CLIs are part of what the project installs
(today's, 2.1.332, and 2.1.197), and each test here runs on each of them, so
that a change in either is caught.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from conftest import AGENTS, cli_path

from claude_orchestrator.devtools.fake_api import user_prompt


@pytest.fixture
def real_cli(cli_version):
    """Each test of this module runs on each pinned CLI version (overrides conftest's)."""
    return cli_path(cli_version)


def _prompts(api) -> list[tuple[str, dict]]:
    return [(user_prompt(body), body) for body in api.messages_requests()]


def _first_request_with_prompt(api, prompt: str) -> dict:
    for text, body in _prompts(api):
        if text == prompt:
            return body
    raise AssertionError(f"no request with prompt {prompt!r}; saw {[t for t, _ in _prompts(api)]}")


def _result_event(transcript: str) -> dict:
    events = [json.loads(line) for line in open(transcript, encoding="utf-8")]
    assert events[-1]["type"] == "result"
    return events[-1]


def test_three_parallel_agents_write_files_and_complete(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    tasks = [f"make {n} [[bash: printf {n} > {n}.txt]]" for n in ("one", "two", "three")]
    out = real_kit.run("launch_parallel", "--cwd", str(work), "--allowed-tools", "Bash", "--json", *tasks)
    assert out.returncode == 0, out.stderr
    launched = json.loads(out.stdout)
    assert [r["status"] for r in launched] == ["starting"] * 3

    for i, name in enumerate(("one", "two", "three"), start=1):
        agent = f"agent{i}"
        rec = real_kit.wait_terminal(agent, timeout=90)
        assert rec["status"] == "completed", rec
        assert (work / f"{name}.txt").read_text() == name
        result = _result_event(rec["transcript_file"])
        latest = (real_kit.root / "outputs" / f"{agent}_latest.txt").read_text()
        session = (real_kit.root / "sessions" / f"{agent}_session.txt").read_text().strip()
        assert latest == result["result"] + "\n" == rec["result"] + "\n"
        assert session == rec["session_id"] == result["session_id"] == launched[i - 1]["session_id"]
        assert rec["num_turns"] == result["num_turns"] == 2
        assert rec["cost_usd"] == result["total_cost_usd"] and rec["usage"] == result["usage"]
        assert rec["exit_code"] == 0 and rec["is_error"] is False
        assert rec["peak_rss_mb"] and rec["peak_rss_mb"] > 10
        assert rec["duration_s"] > 0 and rec["finished"] >= rec["started"]
        assert "Tool said" in latest

    table = real_kit.run("check_status")
    assert table.stdout.count("completed") == 3


def test_resume_carries_the_earlier_messages(real_kit, tmp_path):
    assert real_kit.run("launch_agent", "a1", "remember this [[reply: the code is 4417]]", "--wait").returncode == 0
    sid = real_kit.record("a1")["session_id"]
    out = real_kit.run("resume_agent", "a1", "what was the code?", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["session_id"] == sid
    rec = real_kit.record("a1")  # --json --wait prints the short form; the record has the rest
    assert rec["session_id"] == sid and rec["resumed_from"] == sid
    body = _first_request_with_prompt(real_kit.api, "what was the code?")
    history = json.dumps(body["messages"])
    assert "remember this" in history and "the code is 4417" in history


def test_session_from_forks_and_leaves_the_source_alone(real_kit):
    assert real_kit.run("launch_agent", "analyst", "analyse [[reply: plan: use a queue]]", "--wait").returncode == 0
    source_session = real_kit.record("analyst")["session_id"]
    out = real_kit.run("resume_agent", "impl", "--session-from", "analyst", "implement the plan", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "completed"
    impl = real_kit.record("impl")  # --json --wait prints the short form; the record has the rest
    assert impl["forked_from"] == "analyst" and impl["resumed_from"] == source_session
    assert impl["session_id"] != source_session
    assert (real_kit.root / "sessions" / "impl_session.txt").read_text().strip() == impl["session_id"]
    assert (real_kit.root / "sessions" / "analyst_session.txt").read_text().strip() == source_session
    assert "plan: use a queue" in json.dumps(_first_request_with_prompt(real_kit.api, "implement the plan")["messages"])

    assert real_kit.run("resume_agent", "analyst", "anything new?", "--wait").returncode == 0
    untouched = json.dumps(_first_request_with_prompt(real_kit.api, "anything new?")["messages"])
    assert "implement the plan" not in untouched, "the fork must not write into the source session"


def test_task_text_reaches_the_model_byte_exact_and_runs_nothing(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    task = "-leading dash $(touch pwned1) `touch pwned2` \"double\" 'single' ; touch pwned3 & | > x\nsecond line \\ $HOME"
    out = real_kit.run("launch_agent", "--cwd", str(work), "--wait", "a1", "--", task)
    assert out.returncode == 0, out.stderr
    body = _first_request_with_prompt(real_kit.api, task)
    assert body["messages"]
    assert real_kit.record("a1")["task"] == task
    assert (real_kit.root / "outputs" / "a1_latest.txt").read_text() == "OK: " + task + "\n"
    for place in (work, real_kit.root, AGENTS.parent):
        assert not list(place.glob("pwned*")), f"something ran in {place}"


def test_launch_piped_to_cat_returns_while_the_agent_runs(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    gate = work / "gate"  # the run's tool call waits for it: the run cannot end before the test opens it
    task = "take your time [[bash: until test -e gate; do sleep 0.1; done; echo done]]"
    cmd = f"{sys.executable} {AGENTS / 'launch_agent.py'} slow --cwd {shlex.quote(str(work))} --allowed-tools Bash {shlex.quote(task)} | cat"
    try:
        done = subprocess.run(["bash", "-c", cmd], env=real_kit.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "slow: starting" in done.stdout
        assert real_kit.record("slow")["status"] in ("starting", "running"), "the launch must not wait for the run"
    finally:
        gate.write_text("go")
    rec = real_kit.wait_terminal("slow", timeout=60)
    assert rec["status"] == "completed" and rec["result"] == "Tool said: done"


def test_api_error_is_a_failed_run(real_kit):
    out = real_kit.run("launch_agent", "bad", "[[status: 400]] refused", "--wait", "--json", timeout=120)
    assert out.returncode == 1
    assert json.loads(out.stdout)["status"] == "failed"
    rec = real_kit.record("bad")  # --json --wait prints the short form; the record has the rest
    assert rec["status"] == "failed" and rec["is_error"] is True and rec["error"]


def test_clear_archives_a_real_run(real_kit):
    assert real_kit.run("launch_agent", "a1", "hello", "--wait").returncode == 0
    rec = real_kit.record("a1")
    out = real_kit.run("clear_outputs", "a1", "--json")
    assert out.returncode == 0, out.stderr
    archive = json.loads(out.stdout)["archive"]
    from pathlib import Path

    stamp = Path(archive)
    assert json.loads((stamp / "status" / "a1.json").read_text())["run_id"] == rec["run_id"]
    assert (stamp / "outputs" / "a1" / f"{rec['run_id']}.jsonl").exists()
    assert (stamp / "outputs" / "a1_latest.txt").read_text() == "OK: hello\n"
    assert real_kit.run("resume_agent", "a1", "again").returncode == 4


def _system_text(body: dict) -> str:
    return json.dumps(body.get("system"))


def test_each_run_has_the_system_prompt_given_at_its_own_launch(real_kit, tmp_path):
    """From 2.1.330 on the CLI snapshots a conversation's system prompt; resumes and forks must still get their own."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.reviewer]\nappend_system_prompt = "PROFILE-PROMPT-REVIEWER"\n')
    real_kit.env["ORCHESTRATOR_PROFILES"] = str(profiles)
    assert real_kit.run("launch_agent", "a1", "--append-system-prompt", "FIRST-PROMPT-A", "--wait", "first").returncode == 0
    out = real_kit.run("resume_agent", "a1", "--append-system-prompt", "SECOND-PROMPT-A", "--wait", "second")
    assert out.returncode == 0, out.stderr
    out = real_kit.run("resume_agent", "a1", "--profile", "reviewer", "--wait", "third")
    assert out.returncode == 0, out.stderr
    out = real_kit.run("launch_agent", "b1", "--with-context-from", "a1", "--profile", "reviewer", "--wait", "fourth")
    assert out.returncode == 0, out.stderr

    for prompt, wanted, unwanted in (
        ("first", "FIRST-PROMPT-A", "SECOND-PROMPT-A"),
        ("second", "SECOND-PROMPT-A", "FIRST-PROMPT-A"),
        ("third", "PROFILE-PROMPT-REVIEWER", "SECOND-PROMPT-A"),
        ("fourth", "PROFILE-PROMPT-REVIEWER", "FIRST-PROMPT-A"),
    ):
        system = _system_text(_first_request_with_prompt(real_kit.api, prompt))
        assert wanted in system and unwanted not in system, (prompt, system[:300])
    history = json.dumps(_first_request_with_prompt(real_kit.api, "fourth")["messages"])
    assert "first" in history and "second" in history, "the fork must carry a1's conversation"


def test_permission_mode_manual_and_default_work_on_every_cli(real_kit):
    for name, mode in (("m1", "manual"), ("m2", "default")):
        out = real_kit.run("launch_agent", name, "--permission-mode", mode, "--wait", "--json", f"mode {mode}")
        assert out.returncode == 0, out.stderr + out.stdout
        assert json.loads(out.stdout)["status"] == "completed"
    refused = real_kit.run("launch_agent", "m3", "--permission-mode", "nonsense", "--wait", "--json", "bad mode")
    assert refused.returncode in (1, 2), refused.stdout
    assert "permission mode 'nonsense'" in refused.stderr + refused.stdout
    assert "acceptEdits" in refused.stderr + refused.stdout, "the error lists the CLI's own modes"


def test_worker_does_not_inherit_the_master_session(real_kit, tmp_path):
    """A master's Bash tool marks its commands as its session's; a worker is a session of its own."""
    work = tmp_path / "work"
    work.mkdir()
    master = {
        "CLAUDE_CODE_SESSION_ID": "11111111-2222-3333-4444-555555555555",
        "CLAUDE_CODE_CHILD_SESSION": "1",
        "CLAUDE_CODE_MESSAGING_SOCKET": str(tmp_path / "master.sock"),
        "CLAUDE_CODE_MESSAGING_TOKEN": "master-token",
        "CLAUDE_PID": "1",
        "AI_AGENT": "claude-code_2-1-330_agent",
        "MY_OWN_SETTING": "kept",
    }
    real_kit.env.update(master)
    out = real_kit.run("launch_agent", "w1", "--cwd", str(work), "--allowed-tools", "Bash", "--wait",
                       "show env [[bash: env > env.txt]]")
    assert out.returncode == 0, out.stderr
    seen = dict(line.split("=", 1) for line in (work / "env.txt").read_text().splitlines() if "=" in line)
    assert seen.get("MY_OWN_SETTING") == "kept"
    assert seen.get("CLAUDE_CONFIG_DIR") == real_kit.env["CLAUDE_CONFIG_DIR"], "the user's settings are kept"
    assert seen.get("CLAUDE_CODE_SESSION_ID") == real_kit.record("w1")["session_id"], "the worker's own session, not the master's"
    assert seen.get("CLAUDE_CODE_MESSAGING_TOKEN") != "master-token"
    assert seen.get("CLAUDE_CODE_MESSAGING_SOCKET") != master["CLAUDE_CODE_MESSAGING_SOCKET"]
