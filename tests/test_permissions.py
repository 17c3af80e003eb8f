"""Permission questions: the permission server (an MCP server), answer_agent.py, and the real CLI asking.

The server is driven as the CLI drives it, over stdio, by the ``mcp`` SDK's
own client; answers are written the way answer_agent.py writes them.
answer_agent.py runs against a hand-made record and channel folder.  One test
runs the real CLI (today's; the toolkit's path runs every pinned one) with ``--mcp-config`` and
``--permission-prompt-tool`` against the fake API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import psutil
import pytest
from conftest import CURRENT_CLI_VERSION, Lines, run_cli, wait_until

from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import State
from claude_orchestrator.records import channel
from claude_orchestrator.records.spec import RunSpec
from claude_orchestrator.records.status_record import RecordStore, StatusRecord
from claude_orchestrator.supervisor import permission_server

BASH = {"command": "echo hi", "description": "say hi"}


# --- the permission server, through the SDK's client ---------------------------


def question_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{channel.QUESTION_PREFIX}*.json"))


def answer_when_asked(folder: Path, write, timeout: float = 30) -> threading.Thread:
    """A thread that waits for the first question file in ``folder`` and calls ``write(question)``."""

    def run() -> None:
        found = wait_until(lambda: question_files(folder), timeout=timeout, interval=0.01, what="a question file")
        write(json.loads(found[0].read_text()))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def ask(folder: Path, timeout_s: float, calls: list[dict], during=None) -> list[dict]:
    """Start the server for ``folder`` as the CLI would (:func:`mcp_config`), call ``ask_permission`` with each of
    ``calls`` in turn, and return the decoded replies; ``during(folder)`` runs (in a thread) before the calls."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    server = permission_server.mcp_config(folder, timeout_s, sys.executable, run_id="r1")["mcpServers"]["orchestrator"]
    params = StdioServerParameters(command=server["command"], args=server["args"], env=server["env"])

    async def main() -> list[dict]:
        replies = []
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            assert [t.name for t in tools.tools] == [channel.MCP_TOOL]
            if during:
                during(folder)
            for arguments in calls:
                result = await session.call_tool(channel.MCP_TOOL, arguments)
                assert not result.is_error and len(result.content) == 1 and result.content[0].type == "text"
                replies.append(json.loads(result.content[0].text))
        return replies

    return anyio.run(main)


def the_answer(behavior: str, message: str | None = None, **more):
    def write(question: dict) -> None:
        data = {"id": question["id"], "behavior": behavior, "message": message, "always": False, "at": "now", "by": "test"}
        assert channel.create_once(Path(question["_folder"]) / f"a-{question['id']}.json", {**data, **more})

    return write


def answering(write):
    """``during`` for :func:`ask`: answer the first question with ``write``."""
    return lambda folder: answer_when_asked(folder, lambda q: write({**q, "_folder": str(folder)}))


def done_files(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"{channel.DONE_PREFIX}*.json"))]


def test_allow_replies_with_the_input_as_asked_and_settles_the_question(tmp_path):
    folder = tmp_path / "r1.channel"
    call = {"tool_name": "Bash", "input": BASH, "tool_use_id": "toolu_1"}
    replies = ask(folder, 30, [call], during=answering(the_answer("allow")))
    assert replies == [{"behavior": "allow", "updatedInput": BASH}]
    [done] = done_files(folder)
    assert done["outcome"] == "allow" and done["tool_name"] == "Bash" and done["input"] == BASH
    assert done["tool_use_id"] == "toolu_1" and done["run_id"] == "r1" and done["by"] == "test"
    assert done["asked_at"] <= done["settled_at"] <= done["timeout_at"]
    assert channel.QUESTION_ID_RE.fullmatch(done["id"])
    assert not question_files(folder)  # the question file goes once it is settled


def test_deny_carries_the_message(tmp_path):
    folder = tmp_path / "r1.channel"
    call = {"tool_name": "Write", "input": {"file_path": "/x", "content": "y"}, "tool_use_id": "toolu_2"}
    replies = ask(folder, 30, [call], during=answering(the_answer("deny", "not there; use ./out")))
    assert replies == [{"behavior": "deny", "message": "not there; use ./out"}]
    [done] = done_files(folder)
    assert done["outcome"] == "deny" and done["message"] == "not there; use ./out"


def test_no_answer_in_time_is_a_deny_that_says_so(tmp_path):
    folder = tmp_path / "r1.channel"
    [reply] = ask(folder, 0.3, [{"tool_name": "Bash", "input": BASH, "tool_use_id": "t"}])
    assert reply["behavior"] == "deny"
    assert "no answer came within 0.3 s (--question-timeout)" in reply["message"]
    [done] = done_files(folder)
    assert done["outcome"] == "timeout" and done["message"] == reply["message"]
    assert not question_files(folder)


def test_a_tool_in_always_json_is_allowed_without_a_question(tmp_path):
    folder = tmp_path / "r1.channel"
    folder.mkdir()
    channel.write_json(folder / channel.ALWAYS, {"tools": ["Bash"]})
    seen: list[str] = []
    watcher_stop = threading.Event()

    def watch(folder: Path) -> None:  # records any question file that shows up while the call runs
        def run() -> None:
            while not watcher_stop.is_set():
                seen.extend(p.name for p in question_files(folder))
                watcher_stop.wait(0.005)

        threading.Thread(target=run, daemon=True).start()

    try:
        replies = ask(folder, 30, [{"tool_name": "Bash", "input": BASH, "tool_use_id": "t"}], during=watch)
    finally:
        watcher_stop.set()
    assert replies == [{"behavior": "allow", "updatedInput": BASH}]
    [done] = done_files(folder)
    assert done["outcome"] == "allow" and done["always"] is True
    assert not seen


def test_always_given_to_another_question_settles_a_waiting_one_of_the_same_tool(tmp_path):
    folder = tmp_path / "r1.channel"
    during = answering(lambda q: channel.write_json(Path(q["_folder"]) / channel.ALWAYS, {"tools": ["Bash"]}))
    replies = ask(folder, 30, [{"tool_name": "Bash", "input": BASH, "tool_use_id": "t"}], during=during)
    assert replies == [{"behavior": "allow", "updatedInput": BASH}]
    assert done_files(folder)[0]["always"] is True


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"behavior": "maybe"}', b'{"behavior": "deny", "message": 7}', b"\xff\xfe"])
def test_an_unreadable_answer_file_is_a_deny_never_a_crash_or_a_hang(tmp_path, garbage):
    folder = tmp_path / "r1.channel"

    def write(question: dict) -> None:
        (folder / f"a-{question['id']}.json").write_bytes(garbage)

    replies = ask(folder, 60, [{"tool_name": "Bash", "input": BASH, "tool_use_id": "t"}], during=lambda f: answer_when_asked(f, write))
    assert replies[0]["behavior"] == "deny" and "unreadable" in replies[0]["message"]
    [done] = done_files(folder)
    assert done["outcome"] == "deny" and done["garbled"] is True


def test_bad_arguments_are_denied_and_the_server_goes_on(tmp_path):
    folder = tmp_path / "r1.channel"
    calls = [{"input": BASH}, {"tool_name": "Bash", "input": "echo hi"}, {"tool_name": "Bash", "input": BASH, "tool_use_id": "t"}]
    replies = ask(folder, 0.2, calls)
    assert [r["behavior"] for r in replies] == ["deny", "deny", "deny"]
    assert "named no tool" in replies[0]["message"] and "not an object" in replies[1]["message"]
    assert "no answer came within" in replies[2]["message"]


def test_a_question_left_open_when_the_cli_goes_is_settled_and_the_server_exits(tmp_path):
    folder = tmp_path / "r1.channel"
    server = permission_server.mcp_config(folder, 600, sys.executable)["mcpServers"]["orchestrator"]
    proc = subprocess.Popen(
        [server["command"], *server["args"]], env={**os.environ, **server["env"]},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        def send(message: dict) -> None:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()

        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        assert json.loads(proc.stdout.readline())["id"] == 1
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": channel.MCP_TOOL, "arguments": {"tool_name": "Bash", "input": BASH, "tool_use_id": "t"}}})
        wait_until(lambda: question_files(folder), what="the question file")
        proc.stdin.close()  # the CLI went away
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    [done] = done_files(folder)
    assert done["outcome"] == "deny" and done["cancelled"] is True
    assert not question_files(folder)
    assert b"Traceback" not in proc.stderr.read()


def test_mcp_config_names_the_server_and_its_options(tmp_path):
    config = permission_server.mcp_config(tmp_path / "r9.channel", 12.5, "/usr/bin/python3", run_id="r9")
    server = config["mcpServers"][channel.MCP_SERVER]
    assert server["command"] == "/usr/bin/python3"
    assert server["args"] == ["-m", permission_server.MODULE, "--channel", str(tmp_path / "r9.channel"), "--timeout", "12.5", "--run-id", "r9"]
    assert Path(server["env"]["PYTHONPATH"], "claude_orchestrator", "__init__.py").is_file()
    assert channel.PERMISSION_TOOL == f"mcp__{channel.MCP_SERVER}__{channel.MCP_TOOL}"
    assert permission_server.available() is None  # the test extras install mcp


def test_available_says_how_to_install_mcp_when_it_is_missing():
    script = (
        "import sys; sys.modules['mcp'] = None\n"  # importlib then finds no spec for it
        "import importlib.util as u; real = u.find_spec\n"
        "u.find_spec = lambda name, *a: None if name == 'mcp' else real(name, *a)\n"
        "from claude_orchestrator.supervisor.permission_server import available; print(available())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert "needs the mcp package" in out.stdout and "pip install" in out.stdout and "\n" == out.stdout[-1:]
    assert out.stdout.count("\n") == 1


def test_available_sees_site_packages_under_python_dash_s():
    root = str(Path(permission_server.__file__).resolve().parents[2])
    script = "from claude_orchestrator.supervisor.permission_server import available; print(available())"
    out = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": root})
    assert out.stdout.strip() == "None", out.stderr


# --- answer_agent.py ---------------------------------------------------------


@pytest.fixture
def asking(state_root):
    """Agent ``a1``'s run ``r1``, running with --ask-permission, and a function that asks a question in a channel."""
    paths = StatePaths(state_root)
    store = RecordStore(paths)
    store.write(StatusRecord(agent="a1", run_id="r1", task="t", status=State.RUNNING, spec=RunSpec(ask_permission=True)))

    def question(run_id: str = "r1", tool: str = "Bash", qid: str | None = None, asked_at: str = "2026-12-07T10:00:00.000Z") -> str:
        folder = paths.channel("a1", run_id)
        folder.mkdir(parents=True, exist_ok=True)
        qid = qid or channel.new_question_id()
        channel.write_json(folder / f"q-{qid}.json", {
            "id": qid, "tool_name": tool, "input": BASH, "tool_use_id": "t", "asked_at": asked_at,
            "timeout_at": "2026-12-07T10:10:00.000Z", "run_id": run_id,
        })
        return qid

    question.paths, question.store, question.folder = paths, store, paths.channel("a1", "r1")
    return question


def answer_file(asking, qid: str, run_id: str = "r1") -> dict:
    return json.loads((asking.paths.channel("a1", run_id) / f"a-{qid}.json").read_text())


def one_line_error(err: str, *words: str) -> None:
    assert err.count("\n") == 1 and err.startswith("answer_agent.py: error: ") and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def test_allow_writes_the_answer_for_the_pending_question(asking):
    qid = asking()
    code, out, err = run_cli("answer_agent", "a1", "allow")
    assert (code, err) == (0, "")
    assert out == f"a1: allowed Bash (echo hi) [{qid}]\n"
    data = answer_file(asking, qid)
    assert data["id"] == qid and data["behavior"] == "allow" and data["message"] is None and data["always"] is False
    assert "@" in data["by"] and data["at"].endswith("Z")
    assert oct((asking.folder / f"a-{qid}.json").stat().st_mode & 0o777) == "0o600"


def test_deny_with_a_message_and_json_output(asking):
    qid = asking()
    code, out, err = run_cli("answer_agent", "a1", "deny", "--message", "use the test DB", "--json")
    assert (code, err) == (0, "")
    printed = json.loads(out)
    assert printed["agent"] == "a1" and printed["run_id"] == "r1" and printed["id"] == qid
    assert printed["tool_name"] == "Bash" and printed["input"] == BASH
    assert printed["behavior"] == "deny" and printed["message"] == "use the test DB" and printed["always"] is False
    assert answer_file(asking, qid)["message"] == "use the test DB"


def test_always_adds_the_tool_to_always_json(asking):
    qid = asking(tool="Edit")
    channel.write_json(asking.folder / channel.ALWAYS, {"tools": ["Bash"]})
    code, out, err = run_cli("answer_agent", "a1", "allow", "--always")
    assert code == 0, err
    assert "Edit is allowed for the rest of run r1" in out
    assert channel.read_json(asking.folder / channel.ALWAYS) == {"tools": ["Bash", "Edit"]}
    assert answer_file(asking, qid)["always"] is True


def test_a_question_is_answered_once(asking):
    qid = asking()
    assert run_cli("answer_agent", "a1", "allow")[0] == 0
    code, out, err = run_cli("answer_agent", "a1", "deny")
    assert (code, out) == (3, "")
    one_line_error(err, qid, "already answered (allow")
    code, _, err = run_cli("answer_agent", "a1", "deny", "--id", qid)
    assert code == 3
    one_line_error(err, "already answered")
    assert answer_file(asking, qid)["behavior"] == "allow"


def test_a_settled_question_cannot_be_answered(asking):
    qid = asking()
    channel.write_json(asking.folder / f"done-{qid}.json", {"id": qid, "outcome": "timeout", "settled_at": "2026-12-07T10:10:00.000Z"})
    code, _, err = run_cli("answer_agent", "a1", "allow", "--id", qid)
    assert code == 3
    one_line_error(err, "already settled (denied: nobody answered in time at 2026-12-07T10:10:00.000Z)")
    code, _, err = run_cli("answer_agent", "a1", "allow")  # done and question both there: nothing is pending
    assert code == 4
    one_line_error(err, "no question pending")


def test_the_record_s_question_is_preferred_and_several_need_an_id(asking):
    first = asking(tool="Bash", asked_at="2026-12-07T10:00:00.000Z")
    second = asking(tool="Edit", asked_at="2026-12-07T10:00:01.000Z")
    code, _, err = run_cli("answer_agent", "a1", "allow")
    assert code == 2
    one_line_error(err, "2 questions pending", f"{first} (Bash)", f"{second} (Edit)", "--id")
    rec = asking.store.read("a1")
    rec.waiting_for = {"id": second, "tool_name": "Edit", "input": BASH}
    asking.store.write(rec)
    code, out, err = run_cli("answer_agent", "a1", "allow")
    assert code == 0, err
    assert f"[{second}]" in out
    code, out, err = run_cli("answer_agent", "a1", "deny")  # the record still names the answered one; the other is pending
    assert code == 3
    code, out, err = run_cli("answer_agent", "a1", "deny", "--id", first)
    assert code == 0 and f"denied Bash (echo hi) [{first}]" in out


def test_errors_are_one_line_with_their_exit_status(asking):
    cases = [
        (("nobody", "allow"), 4, "no such agent: nobody"),
        (("../x", "allow"), 2, "invalid agent name"),
        (("a1", "allow"), 4, "no question pending"),
        (("a1", "allow", "--id", "q12"), 2, "is not a question id"),
        (("a1", "allow", "--id", "q0123456789ab"), 4, "has no question q0123456789ab in its current run r1"),
        (("a1", "deny", "--always"), 2, "--always goes with allow"),
        (("a1", "allow", "--message", "why"), 2, "--message goes with deny"),
        (("a1", "deny", "--message", "  "), 2, "--message is empty"),
    ]
    for args, status, words in cases:
        code, out, err = run_cli("answer_agent", *args)
        assert (code, out) == (status, ""), (args, code, out, err)
        one_line_error(err, words)


def test_another_run_s_question_is_refused_by_id(asking):
    old = asking(run_id="r0")
    code, _, err = run_cli("answer_agent", "a1", "allow", "--id", old)
    assert code == 4
    one_line_error(err, f"question {old} was asked in run r0", "current run r1", "can no longer be answered")
    code, _, err = run_cli("answer_agent", "a1", "allow")  # nor is it taken for the current run's
    assert code == 4
    assert not (asking.paths.channel("a1", "r0") / f"a-{old}.json").exists()


def test_an_ended_run_has_no_question_to_answer(asking):
    asking()
    rec = asking.store.read("a1")
    rec.status = State.COMPLETED
    asking.store.write(rec)
    code, _, err = run_cli("answer_agent", "a1", "allow")
    assert code == 4
    one_line_error(err, "its run r1 has ended (completed)")


def test_a_run_without_ask_permission_says_why_nothing_is_pending(asking):
    asking.store.write(StatusRecord(agent="a1", run_id="r2", task="t", status=State.RUNNING))
    code, _, err = run_cli("answer_agent", "a1", "allow")
    assert code == 4
    one_line_error(err, "not launched with --ask-permission")


def test_help_shows_examples_and_exit_statuses():
    code, out, _ = run_cli("answer_agent", "--help")
    assert code == 0
    assert "answer_agent.py agent1 allow --always" in out and "exit status:" in out and "--message" in out
    code, _, err = run_cli("answer_agent", "a1", "maybe")
    assert code == 2 and "invalid choice" in err


# --- the real CLI asks --------------------------------------------------------


def server_processes(folder: Path) -> list[psutil.Process]:
    """The permission servers serving ``folder`` (found by their command line)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if permission_server.MODULE in cmd and str(folder) in cmd:
            found.append(p)
    return found


def ask_the_real_cli(kit, work: Path, run_id: str, behavior: str, label: str) -> tuple[dict, dict, dict]:
    """Run the real CLI (not through the toolkit's launch) on a task that calls Bash, with the permission server of
    agent ``asker``'s run ``run_id``; answer its question with answer_agent.py ``behavior``.

    The task goes in on stdin (stream-json) once the server says the CLI has listed its tool
    (:data:`permission_server.READY`), as the supervisor gives it: 2.1.197 does not wait for its MCP
    servers, and fails the run if the model asks before the server is up.

    Returns:
        ``(the question, the CLI's result event, the done file)``.
    """
    paths = StatePaths(kit.root)
    RecordStore(paths).write(StatusRecord(agent="asker", run_id=run_id, task="t", status=State.RUNNING, spec=RunSpec(ask_permission=True)))
    folder = paths.channel("asker", run_id)
    folder.mkdir(parents=True)
    config = folder / channel.MCP_CONFIG
    channel.write_json(config, permission_server.mcp_config(folder, 120, sys.executable, run_id=run_id))
    argv = [
        kit.env["CLAUDE_BIN"], "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose",
        "--mcp-config", str(config), "--strict-mcp-config", "--permission-prompt-tool", channel.PERMISSION_TOOL,
    ]  # no --allowedTools Bash: the CLI asks
    env = {k: v for k, v in kit.env.items() if k not in ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "PYTHONPATH")}
    cli = subprocess.Popen(argv, cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = Lines(cli.stdout), Lines(cli.stderr)
        wait_until(lambda: (folder / permission_server.READY).exists() or cli.poll() is not None, timeout=90, what="the server's listing")
        cli.stdin.write(channel.stream_json_message(f"write it [[bash: echo {run_id} > {run_id}.txt]]").decode())
        cli.stdin.flush()
        wait_until(lambda: question_files(folder) or cli.poll() is not None, timeout=90, what="the CLI's question")
        [question] = question_files(folder)
        asked = json.loads(question.read_text())
        assert not (work / f"{run_id}.txt").exists()  # asked before it runs
        extra = ("--message", "not in this folder") if behavior == "deny" else ()
        answered_at = time.monotonic()
        code, _, stderr = run_cli("answer_agent", "asker", behavior, *extra, env=kit.env)
        assert code == 0, stderr
        if behavior == "allow":
            wait_until(lambda: (work / f"{run_id}.txt").exists() or cli.poll() is not None, timeout=60, interval=0.005, what="the tool to run")
            print(f"[{label}] answer written -> the CLI's tool ran: {1000 * (time.monotonic() - answered_at):.0f} ms")
        events = [json.loads(line) for line in out.until(lambda lines: json.loads(lines[-1]).get("type") == "result")]
        cli.stdin.close()  # the turn has ended: the CLI exits
        assert cli.wait(timeout=60) == 0, err.all()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert not question_files(folder)
    wait_until(lambda: not server_processes(folder), timeout=30, what="the permission server to exit with its CLI")
    return asked, events[-1], json.loads((folder / f"done-{asked['id']}.json").read_text())


def test_the_real_cli_asks_and_an_allow_runs_the_tool_and_a_deny_is_a_permission_denial(real_kit, tmp_path):
    """answer_agent.py -> a-<id>.json -> the permission server -> the CLI, without the toolkit's supervisor, on
    today's CLI (tests/test_ask_permission.py takes every pinned CLI through the toolkit's whole path)."""
    cli_version = CURRENT_CLI_VERSION
    work = tmp_path / "work"
    work.mkdir()
    asked, result, done = ask_the_real_cli(real_kit, work, "r1", "allow", cli_version)
    assert asked["tool_name"] == "Bash" and asked["input"]["command"] == "echo r1 > r1.txt"
    assert asked["run_id"] == "r1" and asked["tool_use_id"].startswith("toolu_")
    assert (work / "r1.txt").read_text() == "r1\n"
    assert result["permission_denials"] == [] and done["outcome"] == "allow"

    asked, result, done = ask_the_real_cli(real_kit, work, "r2", "deny", cli_version)
    assert not (work / "r2.txt").exists()
    [denial] = result["permission_denials"]
    assert denial["tool_name"] == "Bash" and denial["tool_use_id"] == asked["tool_use_id"]
    assert done["outcome"] == "deny" and done["message"] == "not in this folder"
    assert "not in this folder" in result["result"]  # the fake model repeats the tool's error
