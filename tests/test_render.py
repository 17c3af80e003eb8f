"""In-process tests of what the scripts print (:mod:`claude_orchestrator.commands.render`): pure functions, no processes."""

from __future__ import annotations

import json

import pytest

from claude_orchestrator.commands import render
from claude_orchestrator.core.errors import BadRecord
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.records.shape import parse_time
from claude_orchestrator.records.spec import RunSpec
from claude_orchestrator.records.status_record import StatusRecord

T0 = "2026-11-20T10:00:00.000Z"
NOW = parse_time(T0) + 125.0  # two minutes and five seconds after T0


def rec(agent: str = "a1", status: str = "completed", **fields) -> StatusRecord:
    """A record as a reader loads it (through ``from_dict``, so any stored shape is honoured)."""
    return StatusRecord.from_dict({"agent": agent, "run_id": f"r-{agent}", "task": "the task", "status": status, **fields})


def done(agent: str = "a1", **fields) -> StatusRecord:
    """A run that completed after 42 s, 3 turns, $0.0123."""
    base = {"created": T0, "started": T0, "finished": "2026-11-20T10:00:42.000Z", "status_changed": "2026-11-20T10:00:42.000Z",
            "duration_s": 42.0, "num_turns": 3, "cost_usd": 0.0123, "session_id": "s-1", "output_file": f"/o/{agent}_latest.txt"}
    return rec(agent, **(base | fields))


# -- figures -------------------------------------------------------------------


@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "-"), (0, "0.0s"), (4.24, "4.2s"), (10, "10s"), (42.4, "42s"), (59.6, "1m00s"), (187, "3m07s"),
    (3599, "59m59s"), (3600, "1h00m"), (7500, "2h05m"),
])
def test_durations(seconds, shown):
    assert render.fmt_duration(seconds) == shown


@pytest.mark.parametrize(("cost", "shown"), [(None, "-"), (0, "$0.0000"), (0.01234, "$0.0123"), (1.5, "$1.5000")])
def test_costs(cost, shown):
    assert render.fmt_cost(cost) == shown


@pytest.mark.parametrize(("n", "shown"), [(0, "0 turns"), (1, "1 turn"), (2, "2 turns")])
def test_turns(n, shown):
    assert render.turns(n) == shown


def test_preview_puts_text_on_one_line_and_cuts_it_with_an_ellipsis():
    assert render.preview("  two\n\tlines  ") == "two lines"
    assert render.preview(None) == ""
    assert render.preview("abcdef", 6) == "abcdef"
    assert render.preview("abcdefg", 6) == "abcde…"


def test_state_counts_and_their_text():
    counts = render.state_counts(["failed", "completed", "failed"])
    assert counts == {"failed": 2, "completed": 1}
    assert render.counts_text(counts) == "1 completed, 2 failed"
    assert render.counts_text({}) == ""


def test_json_list_is_one_compact_object_a_line():
    assert render.json_list([]) == "[]"
    assert render.json_list([{"a": 1}, {"b": "é"}]) == '[\n{"a":1},\n{"b":"\\u00e9"}\n]'
    assert json.loads(render.json_list([{"a": 1}, {"b": "é"}])) == [{"a": 1}, {"b": "é"}]


# -- brief and full ------------------------------------------------------------


def test_brief_of_an_ended_run():
    r = done(error="x" * 300, result="  the\nresult  ")
    assert render.brief(r) == {
        "agent": "a1", "status": "completed", "run_id": "r-a1", "error": "x" * 199 + "…", "result": "the result",
        "num_turns": 3, "cost_usd": 0.0123, "duration_s": 42.0, "session_id": "s-1", "output_file": "/o/a1_latest.txt",
        "executor": "local",
    }


def test_brief_of_a_slurm_run_names_its_executor_and_job():
    r = done(options=RunSpec(executor="slurm").to_dict(), slurm_job_id="4711")
    shown = render.brief(r)
    assert (shown["executor"], shown["slurm_job_id"]) == ("slurm", "4711")
    assert render.launch_summary(StatePaths("/state"), r)["slurm_job_id"] == "4711"
    assert render.launched_brief(r)["slurm_job_id"] == "4711"
    assert render.launched(StatePaths("/state"), r).splitlines()[-1] == "  slurm job:  4711"


def test_brief_of_a_queued_run_has_its_place_and_the_time_so_far():
    r = rec("q", "queued", created=T0)
    assert render.brief(r, {"q": 2}, now=NOW) == {
        "agent": "q", "status": "queued", "run_id": "r-q", "queue_position": 2, "num_turns": 0, "cost_usd": None,
        "duration_s": 125.0, "session_id": None, "output_file": None, "executor": "local",
    }


def test_full_is_the_whole_record_with_the_queue_position():
    r = rec("q", "queued", created=T0)
    assert render.full(r, {}) == r.to_dict()
    assert render.full(r, {"q": 1}) == r.to_dict() | {"queue_position": 1}


def test_an_unreadable_record_as_json():
    bad = BadRecord("b1", "/state/status/b1.json", "not JSON")
    assert render.unreadable_item(bad) == {
        "agent": "b1", "status": "unreadable", "status_file": "/state/status/b1.json",
        "error": "not JSON; move it aside, or run clear_outputs.py b1 --purge to remove it",
    }


# -- the table -----------------------------------------------------------------


def test_table_with_a_queued_a_waiting_a_running_and_an_unreadable_agent():
    running = rec("run", "running", created=T0, started=T0, num_turns=2, tokens={"input": 1200, "output": 34},
                  last_tool={"name": "Bash", "input": "pytest -q"}, task="Run the\ntests", attempt=2)
    queued = rec("que", "queued", created=T0, task="x" * 60)
    waiting = rec("wai", "waiting", created=T0, options={"after": ["run", "que"]})
    bad = BadRecord("bad", "/s/status/bad.json", "not JSON")
    out = render.table([running, queued, waiting], {"que": 1}, [bad], order={"bad": 0, "que": 1, "run": 2, "wai": 3}, now=NOW)
    assert out.splitlines() == [
        "AGENT  STATUS             ELAPSED  TURNS  TOKENS  COST  LAST TOOL        TASK",
        "bad    unreadable         -        -      -       -     -                (see /s/status/bad.json)",
        "que    queued #1          2m05s    0      -       -     -                " + "x" * 47 + "…",
        "run    running (try 2)    2m05s    2      1,234   -     Bash: pytest -q  Run the tests",
        "wai    waiting (run,que)  2m05s    0      -       -     -                the task",
    ]


def test_table_without_tool_calls_has_no_last_tool_column_and_keeps_the_given_order():
    out = render.table([done("b"), done("a")])
    assert out.splitlines() == [
        "AGENT  STATUS     ELAPSED  TURNS  TOKENS  COST     TASK",
        "b      completed  42s      3      -       $0.0123  the task",
        "a      completed  42s      3      -       $0.0123  the task",
    ]


def test_columns_do_not_pad_the_last_one():
    assert render.columns([("A", "B", "C"), ("long", "", "")]) == "A     B  C\nlong"


# -- the summary ---------------------------------------------------------------


def test_summary_totals_speed_up_and_budget():
    a = done("a", peak_rss_mb=120.4, exit_code=0, options={"claude": {"max_budget_usd": 0.5}})
    b = done("b", status="failed", started="2026-11-20T10:00:10.000Z", finished="2026-11-20T10:01:00.000Z",
             duration_s=50.0, num_turns=1, cost_usd=0.1, exit_code=1, options={"claude": {"max_budget_usd": 0.5}})
    c = rec("c", "running", created=T0, started="2026-11-20T10:01:00.000Z", num_turns=0)
    out = render.summary([a, b, c], now=NOW)
    assert out.splitlines() == [
        "3 agent(s): 1 completed, 1 failed, 1 running",
        "wall time 2m05s while any ran; sum of run times 2m37s; parallel speed-up 1.3x (sum of run times / wall time while any ran)",
        "budget $1.0000 over 2 agent(s): spent $0.1123 (11%)",
        "",
        "AGENT  STATUS     DURATION  TURNS  PEAK MiB  EXIT  COST",
        "a      completed  42s       3      120       0     $0.0123",
        "b      failed     50s       1      -         1     $0.1000",
        "c      running    1m05s     0      -         -     -",
        "TOTAL             2m37s     4      120 max         $0.1123",
    ]


def test_summary_figures():
    a = done("a", options={"claude": {"max_budget_usd": 2}})
    f = render.summary_figures([a, done("b", cost_usd=None)], now=NOW)
    assert f == {"counts": {"completed": 2}, "busy_s": 42.0, "span_s": 42.0, "total_s": 84.0, "budgets": [2], "spent": 0.0123,
                 "cost": 0.0123, "turns": 6, "peak_mb": 0.0, "queued_s": 0.0, "waiting_s": 0.0}


def test_summary_of_runs_not_yet_started_has_no_speed_up():
    out = render.summary([rec("q", "queued")], now=NOW)
    assert out.splitlines()[:2] == ["1 agent(s): 1 queued", "wall time 0.0s while any ran; sum of run times 0.0s"]
    assert out.splitlines()[-2].split()[:3] == ["q", "queued", "-"], "queued time is not run time"


# -- change lines --------------------------------------------------------------


def test_change_line_of_a_move_and_of_an_end():
    r = rec("a", "running", status_changed="2026-11-20T10:00:05.000Z")
    assert render.change_line(r, "starting", r.changed_at()) == "10:00:05 a: starting -> running"
    assert render.change_line(r, None, None) == "--:--:-- a: running"
    f = done("a", status="failed", error="exit status 1\nmore", num_turns=1)
    assert render.change_line(f, "running", f.changed_at()) == "10:00:42 a: running -> failed in 42s, 1 turn, $0.0123: exit status 1 more"


def test_change_event_of_a_move_and_of_an_end():
    r = rec("a", "queued")
    assert render.change_event(r, None, T0) == {"event": "change", "agent": "a", "run_id": "r-a", "status": "queued",
                                                "previous": None, "at": T0}
    f = done("a", result="r" * 100)
    assert render.change_event(f, "running", T0) == {
        "event": "change", "agent": "a", "run_id": "r-a", "status": "completed", "previous": "running", "at": T0,
        "result": "r" * 63 + "…", "num_turns": 3, "cost_usd": 0.0123, "duration_s": 42.0,
    }


def test_the_change_clock_never_goes_backwards():
    clock = render.ChangeClock()
    late = rec("a", "running", status_changed="2026-11-20T10:00:09.000Z")
    early = rec("b", "running", status_changed="2026-11-20T10:00:08.000Z")
    assert clock.at(late) == "2026-11-20T10:00:09.000Z"
    assert clock.at(early) == "2026-11-20T10:00:09.000Z"
    assert clock.at(rec("c", "starting")) == "2026-11-20T10:00:09.000Z"  # no time at all: the last one shown
    assert render.ChangeClock().at(rec("c", "starting")) is None


def test_unreadable_change_line_and_event():
    bad = BadRecord("b1", "/s/status/b1.json", "not JSON")
    assert render.unreadable_line(bad, T0) == f"10:00:00 b1: unreadable: {bad}"
    assert render.unreadable_event(bad, T0) == {
        "event": "change", "agent": "b1", "run_id": None, "status": "unreadable", "previous": None, "at": T0,
        "error": "not JSON; move it aside, or run clear_outputs.py b1 --purge to remove it", "status_file": "/s/status/b1.json",
    }


def test_wait_summary():
    assert render.wait_summary(1, {"failed": 1}, {"a": "failed"}) == {
        "event": "summary", "exit_code": 1, "counts": {"failed": 1}, "agents": {"a": "failed"}}


# -- launches, stops and clears ------------------------------------------------


def test_launched_lines_and_json():
    paths = StatePaths("/state")
    r = rec("a1", "starting", session_id="s-1", output_file="/state/outputs/a1_latest.txt",
            transcript_file="/state/outputs/a1/r.jsonl", log_file="/state/outputs/a1/r.log", cwd="/w")
    assert render.launched(paths, r).splitlines() == [
        "a1: starting  run r-a1  session s-1",
        "  status:     /state/status/a1.json",
        "  output:     /state/outputs/a1_latest.txt",
        "  transcript: /state/outputs/a1/r.jsonl",
        "  log:        /state/outputs/a1/r.log",
    ]
    assert render.launch_summary(paths, r) == {
        "agent": "a1", "run_id": "r-a1", "status": "starting", "session_id": "s-1", "cwd": "/w",
        "status_file": "/state/status/a1.json", "output_file": "/state/outputs/a1_latest.txt",
        "session_file": "/state/sessions/a1_session.txt", "transcript_file": "/state/outputs/a1/r.jsonl",
        "log_file": "/state/outputs/a1/r.log", "executor": "local",
    }
    assert render.launched_brief(r) == {"agent": "a1", "status": "starting", "run_id": "r-a1", "session_id": "s-1",
                                        "output_file": "/state/outputs/a1_latest.txt"}
    assert render.layout_line(paths) == (
        "files under /state/: status/NAME.json, outputs/NAME_latest.txt (result), "
        "sessions/NAME_session.txt, outputs/NAME/RUN_ID.jsonl (transcript) and .log"
    )


def test_ended_line_shows_the_result_else_the_error():
    assert render.ended_line(done(result="all " * 30)) == "a1: completed in 42s, 3 turns, $0.0123: " + ("all " * 18)[:69] + "…"
    assert render.ended_line(done(status="failed", error="boom")) == "a1: failed in 42s, 3 turns, $0.0123: boom"
    assert render.ended_line(done()) == "a1: completed in 42s, 3 turns, $0.0123"


def test_plan_table():
    plan = [{"agent": "engineer", "role": "Engineer", "profile": "engineer", "task": "Build it"},
            {"agent": "agent2", "role": None, "profile": None, "task": "Test it"}]
    assert render.plan_table(plan).splitlines() == [
        "AGENT     ROLE      PROFILE   TASK",
        "engineer  Engineer  engineer  Build it",
        "agent2    -         -         Test it",
        "",
        "2 agent(s) would be launched; nothing was (--dry-run)",
    ]


def test_kill_messages():
    assert render.kill_message("stopped", done()) == "stopped; status completed"
    assert render.kill_message("stopped", None) == "stopped; status cleared"
    assert render.kill_message("stopped", rec("a", "running")) == (
        "stopped its process tree; its supervisor records it when it can write (status running until then)")
    assert render.kill_message("orphans-stopped", rec("a", "lost")) == "its supervisor was gone (lost); stopped its orphaned processes"
    assert render.kill_message("not-running", done()) == "not running (status completed); nothing to stop"


def test_clear_lines():
    outcome = {"cleared": {"a": ["status/a.json", "sessions/a_session.txt"], "b": []}, "stopped": ["a"], "archive": "/s/archive/t"}
    assert render.clear_lines(outcome, purge=False) == [
        "a: stopped", "a: archived 2 file(s): status/a.json, sessions/a_session.txt", "b: archived 0 file(s)", "archive: /s/archive/t"]
    assert render.clear_lines({"cleared": {}, "stopped": [], "archive": None}, purge=True) == ["nothing to clear"]
    assert render.clear_lines({"cleared": {"a": ["x"]}, "stopped": [], "archive": None}, purge=True) == ["a: deleted 1 file(s): x"]
