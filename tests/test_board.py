"""The fan-out as data (usecases/board.py): a run's phases, the summary's queued and waiting time, the console's rows."""

from __future__ import annotations

import json

from claude_orchestrator.commands import render
from claude_orchestrator.records.shape import parse_time, utc_now
from claude_orchestrator.records.status_record import StatusRecord
from claude_orchestrator.usecases import board

T0 = parse_time("2026-11-20T10:00:00.000Z")


def at(seconds: float) -> str:
    return utc_now(T0 + seconds)


def rec(agent: str = "a1", status: str = "completed", **fields) -> StatusRecord:
    return StatusRecord.from_dict({"agent": agent, "run_id": f"r-{agent}", "task": "the task", "status": status, **fields})


def test_a_run_that_waited_queued_and_ran_has_four_phases_in_order():
    r = rec(created=at(0), entered={"waiting": at(0), "queued": at(30), "starting": at(90)}, started=at(91),
            finished=at(151), options={"after": ["up"]})
    assert board.run_phases(r) == [
        {"phase": "waiting", "start": T0, "end": T0 + 30},
        {"phase": "queued", "start": T0 + 30, "end": T0 + 90},
        {"phase": "starting", "start": T0 + 90, "end": T0 + 91},
        {"phase": "running", "start": T0 + 91, "end": T0 + 151},
    ]
    assert board.phase_seconds(r) == {"waiting": 30.0, "queued": 60.0, "starting": 1.0, "running": 60.0}


def test_an_active_runs_last_phase_is_open_and_counted_to_now():
    r = rec(status="queued", created=at(0), entered={"queued": at(0)})
    assert board.run_phases(r) == [{"phase": "queued", "start": T0, "end": None}]
    assert board.phase_seconds(r, now=T0 + 3600) == {"queued": 3600.0}
    assert board.run_interval(r, T0 + 3600) is None, "queued time is not run time"


def test_1000_held_jobs_that_never_ran_read_as_queued_not_as_run_time():
    """The issue's case: held Slurm jobs, none of which ran, read "sum of run times 2h21m; speed-up 610.8x"."""
    held = [rec(f"j{i}", "killed", created=at(0), entered={"queued": at(0)}, finished=at(8.5), duration_s=8.5,
                options={"executor": "slurm"}) for i in range(1000)]
    f = board.summary_figures(held, now=T0 + 10)
    assert (f["total_s"], f["busy_s"]) == (0.0, 0.0)
    assert f["queued_s"] == 8500.0
    text = render.summary(held, now=T0 + 10)
    assert "sum of run times 0.0s" in text and "speed-up" not in text
    assert "not run time: queued 2h21m (summed over the runs)" in text


def test_a_record_written_before_entered_existed_has_one_pre_run_phase():
    old = rec(created=at(0), started=at(2), finished=at(5))
    assert [s["phase"] for s in board.run_phases(old)] == ["starting", "running"]
    waited = rec(created=at(0), started=at(20), finished=at(25), options={"after": ["x"]})
    assert board.phase_seconds(waited)["waiting"] == 20.0


def test_stamps_from_clocks_that_disagree_never_make_segments_overlap_or_run_backwards():
    r = rec(created=at(10), entered={"queued": at(10), "starting": at(5)}, started=at(7), finished=at(6))
    segs = board.run_phases(r)
    assert all(s["end"] >= s["start"] for s in segs)
    assert all(a["end"] <= b["start"] for a, b in zip(segs, segs[1:], strict=False))


def test_garbage_in_entered_is_ignored():
    r = StatusRecord.from_dict({"agent": "a", "run_id": "r", "task": "t", "status": "running", "created": at(0),
                                "started": at(1), "entered": {"queued": 5, "starting": "not a time", "bogus": at(0)}})
    assert [s["phase"] for s in board.run_phases(r)] == ["starting", "running"]


def test_an_agent_row_carries_its_runs_its_question_and_inert_text():
    hostile = "<img src=x onerror=alert(1)>" * 50
    earlier = rec(created=at(0), started=at(1), finished=at(2), status="failed")
    earlier.run_id = "r-old"
    r = rec(status="running", created=at(10), entered={"starting": at(10)}, started=at(11), task=hostile,
            waiting_for={"id": "q123", "tool_name": "Bash", "input": {"command": "rm -rf build"}, "asked_at": at(12)},
            tokens={"input": 10, "output": 5}, slurm_job_id="77", options={"executor": "slurm"})
    row = board.agent_row(r, {}, [earlier], now=T0 + 20)
    assert row["shown"] == "running (asks)" and row["active"] and not row["idle"]
    assert row["question"] == {"id": "q123", "tool_name": "Bash", "input": "rm -rf build", "asked_at": T0 + 12, "timeout_at": None}
    assert [run["run_id"] for run in row["runs"]] == ["r-old", "r-a1"]
    assert row["runs"][0]["status"] == "failed"
    assert len(row["task"]) == board.ROW_TEXT_CHARS, "the row carries a preview; the agent page has the whole task"
    assert (row["executor"], row["executor_ref"], row["run_s"], row["elapsed_s"]) == ("slurm", "77", 9.0, 9.0)
    json.dumps(row, allow_nan=False)  # JSON-ready


def test_totals_count_the_fan_out():
    a = rec("a", created=at(0), started=at(0), finished=at(10), cost_usd=0.5, tokens={"input": 3, "output": 4}, num_turns=2)
    b = rec("b", created=at(0), started=at(5), finished=at(15), cost_usd=0.25)
    q = rec("c", "queued", created=at(0), entered={"queued": at(0)})
    t = board.totals([a, b, q], now=T0 + 20)
    assert t["counts"] == {"completed": 2, "queued": 1}
    assert (t["run_s"], t["busy_s"], t["speedup"], t["queued_s"]) == (20.0, 15.0, 20.0 / 15.0, 20.0)
    assert (t["cost_usd"], t["tokens_in"], t["tokens_out"], t["turns"]) == (0.75, 3, 4, 2)
    assert (t["first_start"], t["last_end"]) == (T0, T0 + 15)
