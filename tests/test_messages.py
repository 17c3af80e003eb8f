"""Talking to running agents (issue 20, item 1): message_agent.py, the inbox, the CLI's stdin, keep-open.

With the fake CLI (tests/fake_claude.py): with ``--input-format stream-json`` it
echoes each message it takes (``--replay-user-messages``) and answers it
``"FAKE: " + text`` in a turn of its own, until its stdin ends.  The real CLI's
side (a message during a tool call, between turns, to an ended agent) is in
test_messages_real.py.  Every wait here is on a record or file condition, never a sleep.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from conftest import wait_until


def transcript_events(kit, rec: dict) -> list[dict]:
    return [json.loads(line) for line in Path(rec["transcript_file"]).read_text().splitlines() if line.strip()]


def taken(kit, rec: dict) -> list[str]:
    """The messages the CLI of ``rec``'s run took, in order (its echoes, the task first; one echo of messages
    taken together, joined by newlines, counts as each of them)."""
    echoes = [e["message"]["content"] for e in transcript_events(kit, rec) if e.get("type") == "user" and e.get("isReplay")]
    return [part for echo in echoes for part in echo.split("\n")]


def inbox_lines(kit, rec: dict) -> list[dict]:
    path = kit.root / "outputs" / rec["agent"] / f"{rec['run_id']}.channel" / "inbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def answered(kit, name: str, n: int) -> dict:
    return wait_until(lambda: (r := kit.record(name)) and (r.get("messages") or {}).get("answered", 0) >= n and r,
                      what=f"{name}'s message {n} answered")


def test_a_run_without_messages_ends_after_its_turn_as_before(fake_kit):
    out = fake_kit.run("launch_agent", "solo", "just this", "--wait")
    assert out.returncode == 0, out.stderr
    rec = fake_kit.record("solo")
    assert rec["status"] == "completed" and rec["result"] == "FAKE: just this"
    assert "messages" not in rec and "keep_open_until" not in rec and "waiting_for" not in rec
    assert taken(fake_kit, rec) == ["just this"], "the task is the first (and only) message on stdin"


def test_a_message_to_a_running_agent_is_a_new_turn_of_the_same_process(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
    rec = wait_until(lambda: (r := fake_kit.record("a1")) and r.get("keep_open_until") and r, what="a turn that waits")
    out = fake_kit.run("message_agent", "a1", "second", "--wait")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "FAKE: second\n", "--wait prints the answer of the turn that took the message"
    assert (fake_kit.root / "outputs" / "a1_latest.txt").read_text() == "FAKE: second\n"
    rec = fake_kit.record("a1")
    assert rec["status"] == "running" and rec["run_id"] == rec["run_id"]
    assert {k: rec["messages"][k] for k in ("received", "delivered", "answered", "skipped")} == \
        {"received": 1, "delivered": 1, "answered": 1, "skipped": 0}
    assert rec["messages"]["last_delivered_at"] >= rec["messages"]["last_received_at"]
    assert rec["num_turns"] == 2 and rec["cost_usd"] == 0.002, "turns add up; the cost is the process's so far"
    assert taken(fake_kit, rec) == ["first", "second"]
    shown = fake_kit.run("tail_agent", "a1")
    assert "» message:\n    second" in shown.stdout, shown.stdout
    # the run ends once the keep-open wait passes; a kill ends it now, with nothing undelivered
    assert fake_kit.run("kill_agent", "a1").returncode == 0
    assert fake_kit.record("a1")["messages"]["undelivered"] == 0


def test_json_says_where_the_message_went(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
    fake_kit.wait_running("a1")
    out = fake_kit.run("message_agent", "a1", "more", "--json")
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)
    assert sent["how"] == "queued" and sent["number"] == 1 and sent["message_id"].startswith("m-")
    assert sent["run_id"] == fake_kit.record("a1")["run_id"]
    answered(fake_kit, "a1", 1)
    fake_kit.run("kill_agent", "a1")


def test_two_senders_at_once_are_both_delivered_once_each_in_the_order_received(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
    wait_until(lambda: (r := fake_kit.record("a1")) and r.get("keep_open_until"), what="a turn that waits")
    gate = threading.Barrier(4)
    outs: list = []

    def send(i: int) -> None:
        gate.wait()
        outs.append(fake_kit.run("message_agent", "a1", f"from sender {i}"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    rec = answered(fake_kit, "a1", 4)
    received = [m["text"] for m in inbox_lines(fake_kit, rec)]
    assert sorted(received) == [f"from sender {i}" for i in range(4)]
    assert taken(fake_kit, rec) == ["first", *received], "each once, in the order the inbox received them"
    fake_kit.run("kill_agent", "a1")


def test_a_message_to_a_queued_run_comes_right_after_its_task(fake_kit, tmp_path):
    gate = tmp_path / "gate"
    assert fake_kit.run("launch_agent", "blocker", f"[[fake: until:{gate}]] hold the slot", "--max-parallel", "1").returncode == 0
    fake_kit.wait_running("blocker")
    assert fake_kit.run("launch_agent", "q1", "the task", "--max-parallel", "1").returncode == 0
    assert fake_kit.record("q1")["status"] == "queued"
    out = fake_kit.run("message_agent", "q1", "and this")
    assert out.returncode == 0 and "after its task" in out.stdout, out.stdout
    gate.write_text("go")
    rec = fake_kit.wait_terminal("q1")
    assert taken(fake_kit, rec) == ["the task", "and this"]
    assert rec["status"] == "completed" and rec["result"] == "FAKE: and this"
    assert rec["messages"]["delivered"] == 1 and rec["messages"]["undelivered"] == 0


def test_a_message_to_an_ended_agent_continues_its_session_with_the_same_options(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "first", "--wait", "--keep-open", "0.5", "--timeout", "77").returncode == 0
    before = fake_kit.record("a1")
    refused = fake_kit.run("message_agent", "a1", "later", "--no-resume")
    assert refused.returncode == 6 and "not running" in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert fake_kit.record("a1")["run_id"] == before["run_id"], "--no-resume changes nothing"
    out = fake_kit.run("message_agent", "a1", "later", "--wait")
    assert out.returncode == 0 and out.stdout == "FAKE: later\n", out.stdout + out.stderr
    rec = fake_kit.wait_terminal("a1")  # its keep-open wait of 0.5 s, then the end
    assert rec["run_id"] != before["run_id"] and rec["status"] == "completed" and rec["result"] == "FAKE: later"
    assert rec["resumed_from"] == before["session_id"], "it continues the session"
    assert rec["options"]["keep_open_s"] == 0.5 and rec["options"]["limits"]["timeout_s"] == 77
    assert rec["options"]["executor"] == before["options"]["executor"]
    assert taken(fake_kit, rec) == ["later"], "a stale inbox never leaks into a later run"


def test_a_message_that_arrives_as_the_cli_ends_continues_the_session(fake_kit):
    """The CLI exits just as the message arrives, without taking it: the supervisor continues the session with it."""
    assert fake_kit.run("launch_agent", "a1", "[[fake: exit_on_message]] first", "--keep-open", "60").returncode == 0
    first = wait_until(lambda: (r := fake_kit.record("a1")) and r.get("keep_open_until") and r, what="a turn that waits")
    assert fake_kit.run("message_agent", "a1", "are you there?").returncode == 0
    latest = fake_kit.root / "outputs" / "a1_latest.txt"
    rec = wait_until(lambda: (r := fake_kit.record("a1")) and r["run_id"] != first["run_id"]
                     and latest.read_text() == "FAKE: are you there?\n" and r, what="the session continued in a new run")
    assert rec["resumed_from"] == first["session_id"] and rec["options"]["keep_open_s"] == 60
    assert taken(fake_kit, rec) == ["are you there?"]
    log = (fake_kit.root / "outputs" / "a1" / f"{first['run_id']}.log").read_text()
    assert "1 messages never delivered continue the session: resumed" in log, log[-2000:]
    fake_kit.run("kill_agent", "a1")


def test_a_run_killed_while_queued_keeps_its_messages_counted_and_is_not_continued(fake_kit, tmp_path):
    gate = tmp_path / "gate"
    assert fake_kit.run("launch_agent", "blocker", f"[[fake: until:{gate}]] hold", "--max-parallel", "1").returncode == 0
    fake_kit.wait_running("blocker")
    assert fake_kit.run("launch_agent", "q1", "task", "--max-parallel", "1").returncode == 0
    assert fake_kit.run("message_agent", "q1", "never read").returncode == 0
    assert fake_kit.run("kill_agent", "q1").returncode == 0
    rec = fake_kit.wait_terminal("q1")
    assert rec["status"] == "killed" and rec["messages"]["undelivered"] == 1 and rec["messages"]["delivered"] == 0
    assert [m["text"] for m in inbox_lines(fake_kit, rec)] == ["never read"], "kept in the run's inbox"
    gate.write_text("go")


def test_bad_messages_are_one_line_errors_and_change_nothing(fake_kit, tmp_path):
    assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
    fake_kit.wait_running("a1")
    nul, latin = tmp_path / "nul.txt", tmp_path / "latin.txt"
    nul.write_bytes(b"a\x00b")
    latin.write_bytes(b"caf\xe9")
    cases = [
        (("nobody", "hi"), 4, "no agent named"),
        (("../x", "hi"), 2, "invalid agent name"),
        (("a1", "   "), 2, "empty"),
        (("a1", "--task-file", str(nul)), 2, "NUL"),
        (("a1", "--task-file", str(latin)), 2, "UTF-8"),
    ]
    for args, code, words in cases:
        out = fake_kit.run("message_agent", *args)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert words in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, (args, out.stderr)
    usage = fake_kit.run("message_agent")
    assert usage.returncode == 2 and "NAME is required" in usage.stderr and "Traceback" not in usage.stderr
    assert "messages" not in fake_kit.record("a1") and not inbox_lines(fake_kit, fake_kit.record("a1"))
    fake_kit.run("kill_agent", "a1")


def test_a_big_message_and_a_garbled_inbox_line(fake_kit, tmp_path):
    assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
    rec = fake_kit.wait_running("a1")
    inbox = fake_kit.root / "outputs" / "a1" / f"{rec['run_id']}.channel" / "inbox.jsonl"
    wait_until(lambda: inbox.parent.is_dir(), what="the channel folder")
    with open(inbox, "ab") as f:  # not a message: skipped and counted, never fatal
        f.write(b'{"text": 7}\nnot json at all\n\xff\xfe\n')
    big = tmp_path / "big.txt"
    text = ("0123456789abcdef" * 65536 * 10)  # 10 MiB
    big.write_text(text)
    out = fake_kit.run("message_agent", "a1", "--task-file", str(big), "--wait", timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    rec = answered(fake_kit, "a1", 1)
    assert rec["messages"]["skipped"] == 3 and rec["messages"]["received"] == 1
    assert (fake_kit.root / "outputs" / "a1_latest.txt").read_text() == "FAKE: " + text + "\n", "byte-exact"
    fake_kit.run("kill_agent", "a1")


def test_a_cli_killed_with_a_message_pending_has_the_session_continue_with_it(fake_kit):
    """The CLI never takes the message (it hangs, then dies by SIGKILL): the run fails, the message is not lost."""
    import os
    import signal

    assert fake_kit.run("launch_agent", "a1", "[[fake: hang]] stuck").returncode == 0
    first = fake_kit.wait_running("a1")
    assert fake_kit.run("message_agent", "a1", "still there?").returncode == 0
    wait_until(lambda: (fake_kit.record("a1").get("messages") or {}).get("received") == 1, what="the message received")
    os.kill(first["pid"], signal.SIGKILL)
    latest = fake_kit.root / "outputs" / "a1_latest.txt"
    rec = wait_until(lambda: (r := fake_kit.record("a1")) and r["run_id"] != first["run_id"] and r["status"] == "completed" and r,
                     what="the session continued in a new run")
    assert latest.read_text() == "FAKE: still there?\n" and rec["resumed_from"] == first["session_id"]
    log = (fake_kit.root / "outputs" / "a1" / f"{first['run_id']}.log").read_text()
    assert "1 messages never delivered continue the session: resumed" in log, log[-2000:]


def test_a_run_idle_after_its_turn_ends_a_wait_and_is_reported_by_follow(fake_kit):
    """A --keep-open run whose turn has ended has answered: wait_agents.py returns (exit 0), check_status.py says idle,
    and --follow (the monitor's ends too) reports each idle."""
    with fake_kit.start("wait_agents", "--follow", "--only", "ends,questions", "--json") as follower:
        follower.err.expect("following every agent")
        assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
        waited = fake_kit.run("wait_agents", "a1")
        assert waited.returncode == 0, waited.stdout + waited.stderr
        assert "a1: idle, its turn has ended" in waited.stdout and "all ended or idle: 1 running" in waited.stdout
        assert "running (idle)" in fake_kit.run("check_status").stdout
        idle = json.loads(follower.out.expect('"event": ?"idle"'))
        assert idle["agent"] == "a1" and idle["until"] == fake_kit.record("a1")["keep_open_until"]
        assert fake_kit.run("message_agent", "a1", "more", "--wait").returncode == 0
        again = json.loads(follower.out.expect(f'"until": ?"(?!{idle["until"]})'))
        assert again["event"] == "idle" and again["until"] > idle["until"], "each turn's end is news"
        fake_kit.run("kill_agent", "a1")
        end = json.loads(follower.out.expect('"killed"'))
        assert end["event"] == "change"


def test_time_idle_after_a_turn_is_not_the_runs_work_for_its_timeout(fake_kit):
    """--timeout limits the run's work: a keep-open wait longer than the timeout ends completed, not timeout."""
    out = fake_kit.run("launch_agent", "a1", "first", "--keep-open", "6", "--timeout", "4", "--kill-grace", "1", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    rec = fake_kit.record("a1")
    assert rec["status"] == "completed" and "keep_open_until" not in rec, rec.get("error")


def test_a_wait_right_after_a_message_to_an_idle_run_waits_for_the_turn_it_starts(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "first", "--keep-open", "60").returncode == 0
    wait_until(lambda: (r := fake_kit.record("a1")) and r.get("keep_open_until"), what="a turn that waits")
    assert fake_kit.run("message_agent", "a1", "[[fake: slow:1]] second").returncode == 0
    assert "keep_open_until" not in fake_kit.record("a1"), "no longer idle once a message is on its way"
    waited = fake_kit.run("wait_agents", "a1")
    assert waited.returncode == 0 and "idle" in waited.stdout, waited.stdout
    assert fake_kit.record("a1")["messages"]["answered"] == 1, "the wait ended with the turn the message started"
    fake_kit.run("kill_agent", "a1")


def test_messages_the_cli_takes_together_are_each_delivered_and_answered(fake_kit, tmp_path):
    """Messages that queue up (here: sent while the run waits for a dependency) are taken in one turn, echoed once,
    joined by newlines, as the real CLI does: each counts, and the run ends when that turn has."""
    gate = tmp_path / "gate"
    assert fake_kit.run("launch_agent", "dep", f"[[fake: until:{gate}]] first").returncode == 0
    assert fake_kit.run("launch_agent", "w", "the task", "--after", "dep").returncode == 0
    for text in ("one", "two", "three"):
        assert fake_kit.run("message_agent", "w", text).returncode == 0
    gate.write_text("go")
    rec = fake_kit.wait_terminal("w")
    assert rec["status"] == "completed" and rec["result"] == "FAKE: one\ntwo\nthree", rec.get("error")
    assert {k: rec["messages"][k] for k in ("received", "delivered", "answered", "undelivered")} == \
        {"received": 3, "delivered": 3, "answered": 3, "undelivered": 0}
    echoes = [e for e in transcript_events(fake_kit, rec) if e.get("type") == "user" and e.get("isReplay")]
    assert len(echoes) == 2, "the task, then the three messages in one echo"


def test_a_message_a_lost_run_never_delivered_goes_with_the_next_one(fake_kit):
    """The supervisor died (SIGKILL) with a message its CLI never took: the next message finds the run lost and
    continues the session with both, in the order sent."""
    import os
    import signal

    assert fake_kit.run("launch_agent", "a1", "[[fake: hang]] stuck").returncode == 0
    first = fake_kit.wait_running("a1")
    assert fake_kit.run("message_agent", "a1", "still there?").returncode == 0
    wait_until(lambda: (fake_kit.record("a1").get("messages") or {}).get("received") == 1, what="the message received")
    os.kill(first["supervisor_pid"], signal.SIGKILL)
    out = fake_kit.run("message_agent", "a1", "and now?")
    assert out.returncode == 0 and "had ended (lost)" in out.stdout, out.stdout + out.stderr
    rec = wait_until(lambda: (r := fake_kit.record("a1")) and r["run_id"] != first["run_id"] and r["status"] == "completed" and r,
                     what="the session continued")
    assert taken(fake_kit, rec) == ["still there?", "and now?"]
    assert rec["orphans_stopped"], "the lost run's CLI was stopped first"
