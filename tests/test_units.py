"""Unit tests of the pure pieces: names and paths, records, states, stream classification, argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claude_orchestrator.claude.invocation import ClaudeOptions, build_argv, cli_env
from claude_orchestrator.claude.stream import RunProgress, classify
from claude_orchestrator.core.errors import BadInput, OrchestratorError
from claude_orchestrator.core.paths import StatePaths, validate_name
from claude_orchestrator.core.states import State
from claude_orchestrator.records.status_record import RecordStore, StatusRecord

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("name", ["agent1", "a", "A.b-c_d", "9lives", "x" * 64])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-a", ".hidden", "x" * 65, "a b", "a\nb", "archive", "é"])
def test_invalid_names_are_refused(name):
    with pytest.raises(BadInput):
        validate_name(name)


def test_paths_follow_the_layout(tmp_path):
    p = StatePaths(tmp_path)
    assert p.status("a1") == tmp_path / "status" / "a1.json"
    assert p.lock("a1") == tmp_path / "status" / "a1.json.lock"
    assert p.session("a1") == tmp_path / "sessions" / "a1_session.txt"
    assert p.latest_output("a1") == tmp_path / "outputs" / "a1_latest.txt"
    assert p.transcript("a1", "R") == tmp_path / "outputs" / "a1" / "R.jsonl"
    assert p.log("a1", "R") == tmp_path / "outputs" / "a1" / "R.log"
    with pytest.raises(BadInput):
        p.status("../escape")


def test_root_comes_from_orchestrator_home(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))
    assert StatePaths().root == tmp_path.resolve()


def test_record_round_trip_keeps_unknown_keys(tmp_path):
    store = RecordStore(StatePaths(tmp_path))
    rec = StatusRecord(agent="a1", run_id="r1", task="t", created="2026-01-01T00:00:00Z")
    rec.extra["future_field"] = {"x": 1}
    store.write(rec)
    back = store.read("a1")
    assert back == rec
    assert json.loads((tmp_path / "status" / "a1.json").read_text())["future_field"] == {"x": 1}
    assert not list((tmp_path / "status").glob("*.tmp")), "temp files must not be left behind"


def test_seed_shaped_record_loads():
    data = json.loads((DATA / "record_seed.json").read_text())
    rec = StatusRecord.from_dict(data)
    assert rec.agent == "agent1" and rec.state is State.RUNNING and rec.run_id == "legacy"
    assert rec.to_dict()["output_file"].endswith("agent1_latest.txt")


def test_invalid_record_file_gives_a_clear_error(tmp_path):
    p = StatePaths(tmp_path)
    p.ensure()
    p.status("a1").write_text("{not json")
    with pytest.raises(OrchestratorError, match="a1.json is unreadable .not JSON.*clear_outputs.py a1 --purge"):
        RecordStore(p).read("a1")


def test_update_is_a_locked_read_modify_write(tmp_path):
    store = RecordStore(StatePaths(tmp_path))
    store.write(StatusRecord(agent="a", run_id="r", task="t"))

    def bump(rec):
        rec.num_turns += 1
        return rec

    for _ in range(5):
        store.update("a", bump)
    assert store.read("a").num_turns == 5
    assert store.update("a", lambda rec: None).num_turns == 5


RESULT_OK = {"type": "result", "subtype": "success", "is_error": False, "result": "hi", "num_turns": 1}


@pytest.mark.parametrize(
    ("result", "exit_code", "state", "error_part"),
    [
        (RESULT_OK, 0, State.COMPLETED, None),
        ({**RESULT_OK, "is_error": True, "api_error_status": 529, "result": "API Error: overloaded"}, 0, State.FAILED, "529"),
        ({**RESULT_OK, "subtype": "error_max_turns", "is_error": True}, 1, State.FAILED, "error_max_turns"),
        ({**RESULT_OK, "subtype": "error_during_execution", "is_error": True, "errors": ["No conversation found"]}, 1, State.FAILED, "No conversation"),
        (RESULT_OK, 1, State.FAILED, "exit status 1"),
        (None, 0, State.FAILED, "without a result event"),
        (None, -9, State.FAILED, "signal 9"),
    ],
)
def test_classify(result, exit_code, state, error_part):
    got_state, error = classify(result, exit_code)
    assert got_state is state
    if error_part is None:
        assert error is None
    else:
        assert error_part in error


def test_progress_counts_turns_once_per_message():
    prog = RunProgress()
    sid = "0b6cbd5e-5f1c-4c2a-9f7e-2d1f3c4b5a69"
    prog.feed({"type": "system", "subtype": "init", "session_id": sid, "model": "m"})
    block = {"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}
    prog.feed({"type": "assistant", "message": {"id": "m1", "content": [{"type": "text", "text": "x"}]}})
    prog.feed({"type": "assistant", "message": {"id": "m1", "content": [block]}})
    prog.feed({"type": "assistant", "message": {"id": "m2", "content": []}})
    assert (prog.session_id, prog.model, prog.num_turns) == (sid, "m", 2)
    assert prog.last_tool == {"name": "Bash", "input": '{"command": "ls"}'}


def test_argv_has_the_options_and_no_task():
    opts = ClaudeOptions(model="sonnet", allowed_tools="Bash,Read", permission_mode="acceptEdits", claude_args=["--max-turns", "3"])
    argv = build_argv("/bin/claude", opts, session_id="SID")
    head = ["/bin/claude", "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose", "--replay-user-messages"]
    assert argv[:8] == head, "the task and any message go on stdin as stream-json, echoed back when taken"
    assert "--" not in argv and argv[-2:] == ["--max-turns", "3"], "the task goes on stdin"
    assert ["--session-id", "SID"] == argv[8:10]
    assert "--allowedTools" in argv and "--max-turns" in argv and "--permission-prompt-tool" not in argv
    resumed = build_argv("/bin/claude", ClaudeOptions(), session_id="OLD", resume_id="OLD")
    assert ["-r", "OLD"] == resumed[8:10] and "--session-id" not in resumed
    forked = build_argv("/bin/claude", ClaudeOptions(), session_id="NEW", resume_id="OLD", fork=True)
    assert forked[8:13] == ["-r", "OLD", "--fork-session", "--session-id", "NEW"]
    asking = build_argv("/bin/claude", ClaudeOptions(), session_id="SID", permission_prompt=("/s/mcp.json", "mcp__o__ask"))
    assert asking[-4:] == ["--mcp-config", "/s/mcp.json", "--permission-prompt-tool", "mcp__o__ask"]


def test_bad_options_are_refused():
    with pytest.raises(BadInput):
        ClaudeOptions(permission_mode="--yolo").validate()
    with pytest.raises(BadInput):
        ClaudeOptions(permission_mode="plan; rm -rf /").validate()
    ClaudeOptions(permission_mode="someFutureMode").validate()  # a newer CLI's mode is not refused here
    with pytest.raises(BadInput):
        ClaudeOptions(claude_args=["--"]).validate()


def test_cli_env_strips_the_master_sessions_markers_and_keeps_settings():
    master = {"CLAUDECODE": "1", "CLAUDE_CODE_ENTRYPOINT": "cli", "CLAUDE_CODE_SESSION_ID": "S", "CLAUDE_CODE_CHILD_SESSION": "1",
              "CLAUDE_CODE_MESSAGING_SOCKET": "/tmp/s", "CLAUDE_CODE_MESSAGING_TOKEN": "t", "CLAUDE_PID": "9", "AI_AGENT": "x"}
    settings = {"PATH": "/bin", "CLAUDE_CONFIG_DIR": "/c", "ANTHROPIC_BASE_URL": "http://h", "CLAUDE_CODE_USE_BEDROCK": "1"}
    assert cli_env({**master, **settings}) == settings


def test_descendant_pids_match_psutil_and_cover_grandchildren():
    """The cheap /proc children walk finds the same tree as psutil's full scan, grandchildren included."""
    import subprocess
    import sys
    import time

    import psutil

    from claude_orchestrator.core import procs

    code = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        me = psutil.Process()
        deadline = time.monotonic() + 10
        while len(psutil.Process(parent.pid).children()) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        expected = {p.pid for p in me.children(recursive=True)}
        assert len(expected) >= 2
        found = procs.descendant_pids(me.pid)
        if not procs.PROC_CHILDREN:  # a kernel without CONFIG_PROC_CHILDREN: the caller falls back to psutil
            assert found is None
            return
        assert set(found) == expected
        assert procs.child_pids(parent.pid) == [p.pid for p in psutil.Process(parent.pid).children()]
        assert procs.child_pids(2**22 + 12345) == []  # no such process
    finally:
        for p in psutil.Process(parent.pid).children(recursive=True):
            p.kill()
        parent.kill()
        parent.wait(timeout=10)
