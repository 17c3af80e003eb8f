"""--ask-permission through the toolkit (issue 20, item 2), on every pinned CLI, against the fake API.

A tool outside ``--allowed-tools`` becomes a question in the record
(``waiting_for``); ``wait_agents.py`` wakes with exit 5 naming it; ``answer_agent.py``
allows it (the tool runs), denies it (the model gets the message; the result
lists the call in ``permission_denials``), or nobody answers and it is denied
after ``--question-timeout``.  ``--always`` allows the tool for the rest of the
run; ``--on-question`` runs a command per question.  Waits are on records and
files, never sleeps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import cli_path, wait_until


@pytest.fixture
def real_cli(cli_version):
    """Each test of this module runs on each pinned CLI version (overrides conftest's)."""
    return cli_path(cli_version)


def asking(kit, name: str) -> dict:
    return wait_until(lambda: (r := kit.record(name)) and r.get("waiting_for") and r, timeout=90, what=f"{name} to ask")


def result_event(rec: dict) -> dict:
    events = [json.loads(line) for line in Path(rec["transcript_file"]).read_text().splitlines() if line.strip()]
    return [e for e in events if e.get("type") == "result"][-1]


@pytest.fixture
def work(tmp_path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_a_question_wakes_the_waiter_and_an_allow_runs_the_tool(real_kit, work, tmp_path):
    hook_out = tmp_path / "asked.txt"
    hook = f"{sys.executable} -c \"import os; open('{hook_out}', 'a').write(os.environ['ORCHESTRATOR_TOOL'] + ' ' + os.environ['ORCHESTRATOR_QUESTION_ID'] + chr(10))\""
    out = real_kit.run("launch_agent", "q1", "make it [[bash: touch made.txt && echo made]]", "--cwd", str(work),
                       "--ask-permission", "--on-question", hook)
    assert out.returncode == 0, out.stderr
    waited = real_kit.run("wait_agents", "q1", "--json", timeout=120)
    assert waited.returncode == 5, waited.stdout + waited.stderr
    events = [json.loads(line) for line in waited.stdout.splitlines()]
    question = next(e for e in events if e.get("event") == "question")
    rec = real_kit.record("q1")
    assert rec["status"] == "running" and rec["waiting_for"]["id"] == question["id"]
    assert rec["waiting_for"]["tool_name"] == "Bash" and rec["waiting_for"]["input"]["command"] == "touch made.txt && echo made"
    assert not (work / "made.txt").exists(), "nothing runs before the answer"
    wait_until(lambda: hook_out.exists() and hook_out.read_text() == f"Bash {question['id']}\n", what="the --on-question command")
    shown = real_kit.run("check_status", "q1")
    assert "running (asks)" in shown.stdout and "answer_agent.py q1 allow|deny" in shown.stdout, shown.stdout
    assert real_kit.run("answer_agent", "q1", "allow").returncode == 0
    rec = real_kit.wait_terminal("q1", timeout=90)
    assert rec["status"] == "completed" and rec["result"] == "Tool said: made"
    assert (work / "made.txt").exists()
    assert rec["questions"] == {"asked": 1, "allowed": 1, "denied": 0, "timed_out": 0} and "waiting_for" not in rec
    again = real_kit.run("answer_agent", "q1", "allow")
    assert again.returncode == 4 and again.stderr.count("\n") == 1, again.stderr


def test_a_deny_reaches_the_model_with_its_message(real_kit, work):
    assert real_kit.run("launch_agent", "q2", "remove it [[bash: touch gone.txt]]", "--cwd", str(work), "--ask-permission").returncode == 0
    asking(real_kit, "q2")
    out = real_kit.run("answer_agent", "q2", "deny", "--message", "not in this folder")
    assert out.returncode == 0, out.stderr
    rec = real_kit.wait_terminal("q2", timeout=90)
    assert not (work / "gone.txt").exists()
    assert rec["questions"]["denied"] == 1
    denials = result_event(rec).get("permission_denials")
    assert denials and denials[0]["tool_name"] == "Bash", result_event(rec)
    assert "not in this folder" in rec["result"], rec["result"]


def test_an_unanswered_question_is_denied_after_the_question_timeout(real_kit, work):
    out = real_kit.run("launch_agent", "q3", "try [[bash: touch late.txt]]", "--cwd", str(work), "--ask-permission",
                       "--question-timeout", "1")
    assert out.returncode == 0, out.stderr
    rec = real_kit.wait_terminal("q3", timeout=120)
    assert not (work / "late.txt").exists()
    assert rec["questions"]["timed_out"] == 1 and "waiting_for" not in rec
    assert "1 s" in rec["result"] or "question-timeout" in rec["result"], rec["result"]


def test_always_allows_the_tool_for_the_rest_of_the_run_and_a_second_answer_is_told_so(real_kit, work):
    out = real_kit.run("launch_agent", "q4", "first [[bash: touch one.txt && echo one]]", "--cwd", str(work),
                       "--ask-permission", "--keep-open", "120")
    assert out.returncode == 0, out.stderr
    asking(real_kit, "q4")
    assert real_kit.run("answer_agent", "q4", "allow", "--always").returncode == 0
    again = real_kit.run("answer_agent", "q4", "allow")
    assert again.returncode == 4 and "was allowed at" in again.stderr, again.stderr
    assert real_kit.run("wait_agents", "q4", timeout=120).returncode == 0, "idle: the first turn has ended"
    out = real_kit.run("message_agent", "q4", "second [[bash: touch two.txt && echo two]]", "--wait", timeout=120)
    assert out.returncode == 0 and out.stdout == "Tool said: two\n", out.stdout + out.stderr
    assert (work / "one.txt").exists() and (work / "two.txt").exists()
    rec = real_kit.record("q4")
    assert rec["questions"] == {"asked": 2, "allowed": 2, "denied": 0, "timed_out": 0}, "the second was allowed at once"
    assert real_kit.run("kill_agent", "q4").returncode == 0
