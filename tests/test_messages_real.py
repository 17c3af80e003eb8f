"""Talking to running agents with the real CLI (issue 20), on every pinned version, against the fake API.

A message written while a tool runs and one written between turns reach the
same session and are acted on; a message to an ended agent continues its
conversation (the next request carries the earlier messages).  Assertions are
on the fake API's requests and the transcript's events, parsed as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import cli_path, wait_until

from claude_orchestrator.devtools.fake_api import user_prompt


@pytest.fixture
def real_cli(cli_version):
    """Each test of this module runs on each pinned CLI version (overrides conftest's)."""
    return cli_path(cli_version)


def events(rec: dict) -> list[dict]:
    return [json.loads(line) for line in Path(rec["transcript_file"]).read_text().splitlines() if line.strip()]


def texts_sent(api) -> list[str]:
    """Every text the model was sent, over all requests (user messages and tool results), as one JSON dump each."""
    return [json.dumps(body["messages"]) for body in api.messages_requests()]


def test_messages_during_a_tool_call_and_between_turns_reach_the_same_session(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    gate = work / "gate"
    task = "slow work [[bash: until test -e gate; do sleep 0.05; done; echo tool-done]]"
    out = real_kit.run("launch_agent", "w1", task, "--cwd", str(work), "--allowed-tools", "Bash", "--keep-open", "120")
    assert out.returncode == 0, out.stderr
    rec = wait_until(lambda: (r := real_kit.record("w1")) and (r.get("last_tool") or {}).get("name") == "Bash" and r,
                     timeout=60, what="the tool call running")
    # 1: while the tool runs (the gate is closed, so it cannot have ended)
    assert real_kit.run("message_agent", "w1", "also note ALPHA-7 [[reply: noted ALPHA-7]]").returncode == 0
    wait_until(lambda: (real_kit.record("w1").get("messages") or {}).get("received") == 1, what="message 1 received")
    gate.write_text("open")
    first_turns = wait_until(lambda: (r := real_kit.record("w1")) and r.get("keep_open_until") and r, timeout=60,
                             what="the turns ending with stdin kept open")
    assert first_turns["messages"]["answered"] == 1
    # 2: between turns
    out = real_kit.run("message_agent", "w1", "and BETA-9? [[reply: seen BETA-9]]", "--wait", timeout=90)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "seen BETA-9\n"
    rec = real_kit.record("w1")
    assert rec["status"] == "running" and rec["messages"]["answered"] == 2 and rec["messages"]["delivered"] == 2
    evs = events(rec)
    sessions = {e.get("session_id") for e in evs if e.get("session_id")}
    assert sessions == {rec["session_id"]}, "one session throughout"
    echoed = [e["message"]["content"] for e in evs if e.get("type") == "user" and e.get("isReplay")]
    assert echoed == [task, "also note ALPHA-7 [[reply: noted ALPHA-7]]", "and BETA-9? [[reply: seen BETA-9]]"]
    results = [e for e in evs if "result" in e and e.get("type") == "result"]
    assert len(results) >= 2 and results[-1]["result"] == "seen BETA-9"
    sent = texts_sent(real_kit.api)
    assert any("ALPHA-7" in s and "tool-done" in s for s in sent), "the tool's result and message 1 reached the model"
    last = real_kit.api.messages_requests()[-1]
    assert user_prompt(last).startswith("and BETA-9?") and "ALPHA-7" in json.dumps(last["messages"]), \
        "the turn after carries the whole conversation"
    assert real_kit.run("kill_agent", "w1").returncode == 0


def test_a_message_to_an_ended_agent_continues_its_conversation(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    out = real_kit.run("launch_agent", "w2", "remember the word ZEBRA [[reply: ok]]", "--cwd", str(work), "--wait")
    assert out.returncode == 0, out.stderr
    first = real_kit.record("w2")
    assert first["status"] == "completed" and "messages" not in first
    out = real_kit.run("message_agent", "w2", "which word? [[reply: ZEBRA]]", "--wait", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ZEBRA\n", "--wait prints the answer"
    rec = real_kit.record("w2")
    assert rec["run_id"] != first["run_id"] and rec["status"] == "completed" and rec["result"] == "ZEBRA"
    assert rec["session_id"] == first["session_id"], "the same session, continued"
    last = real_kit.api.messages_requests()[-1]
    assert "remember the word ZEBRA" in json.dumps(last["messages"]), "the earlier messages go with the new one"


def test_messages_that_queue_up_are_taken_in_one_turn_and_the_run_ends(real_kit, tmp_path):
    """Sent while the run waits for a dependency, the messages reach the CLI right after its task, which takes
    them together in one turn (one echo, joined by newlines): each counts, and the run completes."""
    work = tmp_path / "work"
    work.mkdir()
    gate = work / "gate"
    out = real_kit.run("launch_agent", "dep", "hold on [[bash: until test -e gate; do sleep 0.05; done; echo ok]]",
                       "--cwd", str(work), "--allowed-tools", "Bash")
    assert out.returncode == 0, out.stderr
    assert real_kit.run("launch_agent", "w3", "start [[reply: started]]", "--cwd", str(work), "--after", "dep").returncode == 0
    for text in ("first note [[reply: both noted]]", "second note"):
        assert real_kit.run("message_agent", "w3", text).returncode == 0
    gate.write_text("open")
    rec = real_kit.wait_terminal("w3", timeout=120)
    assert rec["status"] == "completed", rec.get("error")
    assert rec["messages"]["delivered"] == 2 and rec["messages"]["answered"] == 2 and rec["messages"]["undelivered"] == 0
    sent = json.dumps(real_kit.api.messages_requests()[-1]["messages"])
    assert "first note" in sent and "second note" in sent
