"""Permission questions and message deliveries as waiters see them (issue 20): wait_agents.py wakes with exit 5
when an awaited agent asks, --follow reports questions, their answers and deliveries (--only keeps some kinds),
--exit-with-parent ends with its session, and check_status.py shows a waiting question at a glance.

The records are made by hand (the supervisor writes them in real runs): a run shown as ``running`` whose
"supervisor" is this test, holding the run's life lock, so that no reader marks it lost.  Every step waits for
what the script printed about the step before, never for a time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AGENTS, Lines, run_cli, wait_until
from filelock import lock_descriptor

from claude_orchestrator.commands import render
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import ExitCode, State
from claude_orchestrator.records.lifecycle import move
from claude_orchestrator.records.status_record import RecordStore, StatusRecord

QID = "q0123456789ab"
QUESTION = {"id": QID, "tool_name": "Bash", "input": {"command": "rm -rf build", "description": "clean"},
            "asked_at": "2026-12-07T10:00:00Z", "timeout_at": "2026-12-07T10:10:00Z"}


class Runs:
    """Hand-made records of running agents under one state root, each "supervised" by this test (its life lock held)."""

    def __init__(self, root: Path) -> None:
        self.paths = StatePaths(root)
        self.paths.ensure()
        self.store = RecordStore(self.paths)
        self.recs: dict[str, StatusRecord] = {}
        self.fds: list[int] = []

    def running(self, name: str, **fields) -> StatusRecord:
        return self.queued(name, State.RUNNING, **fields)

    def queued(self, name: str, state: State = State.QUEUED, **fields) -> StatusRecord:
        rec = StatusRecord(agent=name, run_id=f"r-{name}", task="t", status=State.QUEUED)
        if state is State.RUNNING:
            move(rec, State.STARTING)
            move(rec, State.RUNNING)
        for key, value in fields.items():
            setattr(rec, key, value)
        fd = os.open(self.paths.alive_lock(name), os.O_RDWR | os.O_CREAT)
        assert lock_descriptor(fd, blocking=False)
        self.fds.append(fd)
        self.recs[name] = rec
        self.store.write(rec)
        return rec

    def update(self, name: str, **fields) -> None:
        rec = self.recs[name]
        for key, value in fields.items():
            setattr(rec, key, value)
        self.store.write(rec)

    def end(self, name: str) -> None:
        rec = self.recs[name]
        rec.waiting_for = None
        move(rec, State.COMPLETED)
        self.store.write(rec)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def runs(fake_kit):
    made = Runs(fake_kit.root)
    yield made
    made.close()


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_wait_wakes_with_5_when_an_awaited_agent_asks(fake_kit, runs, as_json):
    runs.queued("a1")  # queued: a line even in --json, which leaves the routine starting and running out
    runs.running("a2")
    with fake_kit.start("wait_agents", "a2", "a1", *(["--json"] if as_json else [])) as waiter:
        waiter.expect(r"a1")  # the waiter has read both records (its watcher was on before that read)
        runs.update("a2", waiting_for=QUESTION)
        code, lines, _ = waiter.finish()
    assert code == ExitCode.QUESTION
    if as_json:
        question, summary = (json.loads(line) for line in lines[-2:])
        assert question == {"event": "question", "agent": "a2", "run_id": "r-a2", "id": QID, "tool_name": "Bash",
                            "input": "rm -rf build", "asked_at": QUESTION["asked_at"], "timeout_at": QUESTION["timeout_at"],
                            "answer": "python3 agents/answer_agent.py a2 allow|deny", "at": QUESTION["asked_at"]}
        assert summary == {"event": "summary", "exit_code": 5, "counts": {"running": 1, "queued": 1},
                           "agents": {"a2": "running", "a1": "queued"}}
    else:
        assert lines[-2] == (f"10:00:00 a2 asks: Bash `rm -rf build` (question {QID}; "
                             "answer: python3 agents/answer_agent.py a2 allow|deny)")
        assert lines[-1] == "a2 waiting on a question: 1 queued, 1 running"


def test_a_question_pending_when_the_wait_starts_wakes_it_at_once_with_any_and_several(fake_kit, runs):
    runs.running("a1")
    runs.running("a2", waiting_for=QUESTION)
    runs.running("a3", waiting_for=dict(QUESTION, id="q00000000000f", tool_name="Write", input={"file_path": "/etc/x"}))
    code, out, err = run_cli("wait_agents", "--any", "a1", "a2", "a3", env=fake_kit.env)
    assert code == 5, err
    lines = out.splitlines()
    assert [line.split(" ", 2)[1] for line in lines[3:5]] == ["a2", "a3"]
    assert "a3 asks: Write `/etc/x` (question q00000000000f;" in lines[4]
    assert lines[-1] == "a2, a3 waiting on a question: 3 running"
    # every active agent (no NAME) is awaited, so the question counts too
    assert run_cli("wait_agents", env=fake_kit.env)[0] == 5


def test_an_answered_question_wakes_no_second_wait(fake_kit, runs):
    """Between answer_agent.py writing a-<id>.json and the run taking it, a new wait must not wake for it again."""
    rec = runs.running("a1", waiting_for=QUESTION)
    channel = runs.paths.channel("a1", rec.run_id)
    channel.mkdir(parents=True)
    (channel / f"a-{QID}.json").write_text(json.dumps({"id": QID, "behavior": "allow"}))
    with fake_kit.start("wait_agents", "a1") as waiter:
        waiter.expect(r" a1: running$")
        runs.end("a1")
        code, lines, _ = waiter.finish()
    assert code == 0 and lines[-1] == "all ended: 1 completed"
    assert not any("asks" in line for line in lines), lines


def test_follow_reports_questions_answers_and_deliveries(fake_kit, runs):
    runs.running("a1")
    with fake_kit.start("wait_agents", "--follow") as follower:
        follower.err.expect("following every agent")  # its starting point is read: what follows is news
        runs.update("a1", waiting_for=QUESTION, questions={"asked": 1, "allowed": 0, "denied": 0, "timed_out": 0})
        follower.expect(r"a1 asks: Bash `rm -rf build`")
        runs.update("a1", waiting_for=None, questions={"asked": 1, "allowed": 1, "denied": 0, "timed_out": 0})
        follower.expect(rf"a1: question {QID} allowed$")
        runs.update("a1", messages={"received": 2, "delivered": 1, "last_delivered_at": "2026-12-07T10:01:02Z"})
        follower.expect(r"^10:01:02 a1: message delivered \(1 of 2\)$")
        runs.update("a1", messages={"received": 2, "delivered": 2, "last_delivered_at": "2026-12-07T10:01:03Z"})
        follower.expect(r"a1: message delivered \(2 of 2\)$")
        runs.end("a1")
        follower.expect(r"a1: running -> completed")
    assert len(follower.out.seen) == 5, follower.out.seen


def test_follow_only_ends_and_questions_in_json(fake_kit, runs):
    """What the plugin's monitor runs: no progress, no answers, no deliveries; a question pending at the start counts."""
    runs.running("a0", waiting_for=dict(QUESTION, id="q00000000000a"))
    with fake_kit.start("wait_agents", "--follow", "--only", "ends,questions", "--json") as follower:
        follower.err.expect("following every agent")
        first = json.loads(follower.out.next())
        assert (first["event"], first["agent"], first["id"]) == ("question", "a0", "q00000000000a")
        runs.running("a1")  # progress: not shown
        runs.update("a1", waiting_for=QUESTION)
        asked = json.loads(follower.out.next())
        runs.update("a1", waiting_for=None, questions={"asked": 1, "allowed": 0, "denied": 1, "timed_out": 0},
                    messages={"received": 1, "delivered": 1})
        runs.end("a1")
        ended = json.loads(follower.out.next())
    assert (asked["event"], asked["agent"], asked["id"], asked["input"]) == ("question", "a1", QID, "rm -rf build")
    assert (ended["event"], ended["agent"], ended["status"]) == ("change", "a1", "completed")
    assert len(follower.out.seen) == 3, follower.out.seen


def _follower(env: dict[str, str], stdout) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(AGENTS / "wait_agents.py"), "--follow", "--exit-with-parent"], env=env,
                            stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE, text=True)


def test_exit_with_parent_ends_when_nothing_reads_its_output(fake_kit):
    follower = _follower(fake_kit.env, subprocess.PIPE)
    err = Lines(follower.stderr)
    try:
        err.expect("following every agent")
        follower.stdout.close()  # the reader goes (a session whose end left the monitor running)
        assert follower.wait(timeout=30) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)


def test_exit_with_parent_ends_when_its_parent_dies(fake_kit, tmp_path):
    """Its parent (a shell, say) is killed; its output goes to a file, so only the parent's PID can tell."""
    out = tmp_path / "follow.out"
    script = ("import subprocess, sys; p = subprocess.Popen(sys.argv[2:], stdout=open(sys.argv[1], 'w'), "
              "stderr=subprocess.PIPE); print(p.pid, flush=True); p.stderr.readline(); print('ready', flush=True); "
              "sys.stdin.read()")
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(out), sys.executable, str(AGENTS / "wait_agents.py"), "--follow", "--exit-with-parent"],
        env=fake_kit.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = Lines(parent.stdout)
    pid = int(lines.next())
    try:
        assert lines.next() == "ready"
        parent.kill()
        parent.wait(timeout=10)
        wait_until(lambda: not _alive(pid), timeout=30, what="the follower to end with its parent")
    finally:
        if _alive(pid):
            os.kill(pid, 9)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, ended but not reaped by init yet, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_bad_usage_is_one_line(fake_kit):
    for args in (["--follow", "--only", "ends,bogus"], ["--only", "ends"], ["a1", "--exit-with-parent"]):
        code, out, err = run_cli("wait_agents", *args, env=fake_kit.env)
        errors = [line for line in err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1 and err.startswith("usage:") and "Traceback" not in err, (args, err)


def test_check_status_shows_a_waiting_question(fake_kit, runs):
    runs.running("a1", waiting_for=QUESTION)
    runs.running("a2")
    code, out, _ = run_cli("check_status", env=fake_kit.env)
    assert code == 0
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["a1", "running", "(asks)"] and lines[2].split()[:2] == ["a2", "running"]
    assert lines[3:] == [f"a1 asks: Bash `rm -rf build` (question {QID}; answer: python3 agents/answer_agent.py a1 allow|deny)"]
    code, out, _ = run_cli("check_status", "--json", env=fake_kit.env)
    items = {item["agent"]: item for item in json.loads(out)}
    assert items["a1"]["waiting_for"]["id"] == QID and "waiting_for" not in items["a2"]


def test_notices_compare_records():
    n = render.Notices()
    rec = StatusRecord(agent="a", run_id="r1", task="t", status=State.RUNNING, messages={"received": 3, "delivered": 3})
    n.prime([rec])
    assert n.take(rec) == []  # deliveries before the start are known
    rec.messages = {"received": 4, "delivered": 4}
    assert n.take(rec) == [("messages", {"delivered": 4, "received": 4})]
    rec.waiting_for, rec.questions = QUESTION, {"asked": 1}
    assert n.take(rec) == [("questions", QUESTION)]
    assert n.take(rec) == []
    rec.waiting_for, rec.questions = None, {"asked": 1, "timed_out": 1}
    assert n.take(rec) == [("answers", {"id": QID, "outcome": "timed out"})]
    new_run = StatusRecord(agent="a", run_id="r2", task="t", status=State.RUNNING, messages={"received": 1, "delivered": 1})
    assert n.take(new_run) == [("messages", {"delivered": 1, "received": 1})]  # a new run starts from nothing
    ended = StatusRecord(agent="a", run_id="r2", task="t", status=State.COMPLETED, waiting_for=QUESTION)
    assert render.question(ended) is None  # an ended run waits on nothing
    assert render.input_preview({"x": 1}) == '{"x": 1}' and render.input_preview(None) == "null"
