"""The fan-out as figures and JSON-ready data: pure functions of status records, no I/O.

What the status table, the execution summary, the web console and
``report_agents.py`` share: previews, a run's waiting question, its run
interval and its phases (waiting for ``--after``, queued, starting, running:
:func:`run_phases`, from the record's ``entered``, ``started`` and
``finished``), the totals of a fan-out (:func:`summary_figures`) and one
agent as the console's JSON (:func:`agent_row`).  Times in the JSON are
seconds since the epoch (floats); durations are seconds.  Where "now"
matters it is a parameter, defaulting to the current time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from ..core.states import State
from ..executors import registry
from ..records.shape import parse_time
from ..records.status_record import StatusRecord

#: Characters of a task shown in the status table.
TASK_PREVIEW = 48
#: Characters of a permission question's input shown with it; the whole input is in the record's ``waiting_for``.
QUESTION_INPUT_CHARS = 80
#: The phases of a run before its CLI starts, as the record's ``entered`` names them.
PRE_RUN = (State.WAITING.value, State.QUEUED.value, State.STARTING.value)
#: The phase from the CLI's start to the run's end.
RUNNING = State.RUNNING.value
#: Characters of the task, result and error the console's rows carry (the agent page has them whole).
ROW_TEXT_CHARS = 300
ROW_ERROR_CHARS = 500


def preview(text: str | None, width: int = TASK_PREVIEW) -> str:
    """``text`` on one line (runs of whitespace as one space), cut to ``width`` characters ending in "…"."""
    one_line = " ".join((text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def state_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many of each status, e.g. ``{"completed": 2, "failed": 1}`` (in first-seen order)."""
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts



def question(r: StatusRecord) -> dict[str, Any] | None:
    """The permission question ``r``'s run waits on now (the record's ``waiting_for``), or None.

    None too for an ended run (nothing waits any more) and for a ``waiting_for``
    that is not an object with a string ``id`` (a record is untrusted input).
    """
    q = r.waiting_for
    if r.state.is_terminal or not isinstance(q, dict) or not isinstance(q.get("id"), str) or not q["id"]:
        return None
    return q


def input_preview(tool_input: Any, width: int = QUESTION_INPUT_CHARS) -> str:
    """A tool call's input on one line: its ``command``, ``file_path``, ``url`` or ``pattern`` if it has one
    (``rm -rf build``), else its compact JSON; cut to ``width`` (:func:`preview`)."""
    if isinstance(tool_input, dict):
        for key in ("command", "file_path", "url", "pattern", "path"):
            if isinstance(tool_input.get(key), str):
                return preview(tool_input[key], width)
    return preview(tool_input if isinstance(tool_input, str) else json.dumps(tool_input, ensure_ascii=False), width)



def _budget(r: StatusRecord) -> float | None:
    return r.spec.claude.max_budget_usd


def run_interval(r: StatusRecord, now: float | None = None) -> tuple[float, float] | None:
    """When the run's CLI ran: ``(started, finished)`` in seconds since the epoch, to ``now`` while it is active.

    None for a run whose CLI never started (waiting, queued, skipped, or stopped
    before it ran): time spent waiting or queued is not run time.  From the
    record's ``started`` and ``finished``; an ended run without ``finished`` ends
    ``duration_s`` after its start.
    """
    start = parse_time(r.started)
    if start is None:
        return None
    end = parse_time(r.finished)
    if end is None:
        end = (time.time() if now is None else now) if r.state.is_active else start + (r.duration_s or 0.0)
    return start, max(start, end)


def busy_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """The length of the union of ``intervals``: the time at least one of them covers."""
    busy, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            busy, reach = busy + (end - start), end
        elif end > reach:
            busy, reach = busy + (end - reach), end
    return busy


def summary_figures(recs: list[StatusRecord], now: float | None = None) -> dict[str, Any]:
    """The summary's arithmetic: counts, run times, the time any ran, budgets and spend.

    Run times come from :func:`run_interval` (the CLI's start to its end, or
    to ``now``); a run that never started counts none, however long it waited
    or queued.

    Returns:
        ``counts`` (by status), ``busy_s`` (the wall time during which at least
        one of the runs was running: the union of their run intervals, so idle
        time between batches is left out; 0 with no start), ``span_s`` (first
        start to last end, idle time included), ``total_s`` (the sum of the run
        times, so ``total_s / busy_s``, the parallel speed-up, is at least 1),
        ``budgets`` (each budgeted run's ``--max-budget-usd``), ``spent`` (the
        cost of the budgeted runs), ``cost`` (of all), ``turns``, ``peak_mb``
        (the largest peak RSS), ``queued_s`` and ``waiting_s`` (the time the
        runs spent queued and waiting for ``--after``, summed: :func:`run_phases`).
    """
    now = time.time() if now is None else now
    intervals = [iv for r in recs if (iv := run_interval(r, now)) is not None]
    return {
        "counts": state_counts(str(r.status) for r in recs),
        "busy_s": busy_seconds(intervals),
        "span_s": (max(e for _, e in intervals) - min(s for s, _ in intervals)) if intervals else 0.0,
        "total_s": sum(e - s for s, e in intervals),
        "budgets": [b for r in recs if (b := _budget(r)) is not None],
        "spent": sum(r.cost_usd or 0.0 for r in recs if _budget(r) is not None),
        "cost": sum(r.cost_usd or 0.0 for r in recs),
        "turns": sum(r.num_turns for r in recs),
        "peak_mb": max((r.peak_rss_mb or 0.0 for r in recs), default=0.0),
        "queued_s": sum(phase_seconds(r, now).get("queued", 0.0) for r in recs),
        "waiting_s": sum(phase_seconds(r, now).get("waiting", 0.0) for r in recs),
    }


# -- phases ----------------------------------------------------------------------


def run_end(r: StatusRecord) -> float | None:
    """When an ended run ended (seconds since the epoch): ``finished``, else ``duration_s`` after its start;
    None while the run is active (or for an ended record with no time at all)."""
    if r.state.is_active:
        return None
    end = parse_time(r.finished)
    if end is None:
        start = parse_time(r.started) or parse_time(r.created)
        end = None if start is None else start + (r.duration_s or 0.0)
    return end


def run_phases(r: StatusRecord) -> list[dict[str, Any]]:
    """The run's life as consecutive segments: ``[{"phase", "start", "end"}, ...]`` in time order.

    ``phase`` is ``waiting`` (for ``--after``), ``queued`` (a ``--max-parallel``
    slot, or pending in a cluster's queue), ``starting`` or ``running`` (its
    CLI's start to the run's end); ``start``/``end`` are seconds since the
    epoch, ``end`` None for the phase the run is in now.  The pre-run phases
    come from the record's ``entered`` (a record written before it existed has
    one pre-run phase from ``created``: ``waiting`` with ``--after``, else
    ``starting``).  A run that never started ends in its last pre-run phase.
    Stamps that go backwards (clocks of different hosts) are clamped, so the
    segments never overlap.  Empty for a record with no time at all.
    """
    created = parse_time(r.created)
    marks: list[tuple[float, str]] = []
    entered = r.entered if isinstance(r.entered, dict) else {}  # a record is untrusted input
    for phase in PRE_RUN:
        t = parse_time(entered.get(phase)) if isinstance(entered.get(phase), str) else None
        if t is not None:
            marks.append((t, phase))
    if not marks and created is not None:
        marks.append((created, State.WAITING.value if r.spec.after else State.STARTING.value))
    started = parse_time(r.started)
    if started is not None:
        marks.append((started, RUNNING))
    marks.sort()
    end = run_end(r)
    segments: list[dict[str, Any]] = []
    floor = None
    for i, (t, phase) in enumerate(marks):
        start = t if floor is None else max(t, floor)
        stop = marks[i + 1][0] if i + 1 < len(marks) else end
        if stop is not None:
            stop = max(start, stop)
        segments.append({"phase": phase, "start": start, "end": stop})
        floor = stop
    return segments


def phase_seconds(r: StatusRecord, now: float | None = None) -> dict[str, float]:
    """Seconds the run spent in each phase of :func:`run_phases`, the current one to ``now``: ``{"queued": 4.2, ...}``."""
    now = time.time() if now is None else now
    spent: dict[str, float] = {}
    for seg in run_phases(r):
        stop = seg["end"] if seg["end"] is not None else max(now, seg["start"])
        spent[seg["phase"]] = spent.get(seg["phase"], 0.0) + (stop - seg["start"])
    return spent


# -- the console's JSON ------------------------------------------------------------


def status_shown(r: StatusRecord, positions: dict[str, int]) -> str:
    """The STATUS cell: ``queued #2``, ``waiting (a,b)``, ``running (try 2)``, ``running (executor k8s?)``,
    ``running (asks)`` (a permission question waits), ``running (idle)`` (its turn has ended and it waits
    for a message until ``keep_open_until``, ``--keep-open``)."""
    text = str(r.status)
    if r.state.is_active and r.spec.executor not in registry.EXECUTORS:  # never judged: shown as recorded
        text += f" (executor {r.spec.executor[:20]}?)"
    if text == "queued" and r.agent in positions:
        text += f" #{positions[r.agent]}"
    if text == "waiting" and r.spec.after:
        text += f" ({','.join(r.spec.after)})"
    if r.attempt > 1:
        text += f" (try {r.attempt})"
    if question(r) is not None:
        text += " (asks)"
    elif r.state.is_active and r.keep_open_until:
        text += " (idle)"  # its turn has ended; it waits for a message (--keep-open)
    return text


def _text(value: Any, width: int) -> str | None:
    return value[:width] if isinstance(value, str) else None


def run_item(r: StatusRecord) -> dict[str, Any]:
    """One run for the timeline: ``{"run_id", "status", "segments"}`` (:func:`run_phases`)."""
    return {"run_id": r.run_id, "status": str(r.status), "segments": run_phases(r)}


def agent_row(
    r: StatusRecord, positions: dict[str, int] | None = None, earlier: Iterable[StatusRecord] = (), now: float | None = None
) -> dict[str, Any]:
    """One agent as the web console and ``report_agents.py --json`` give it (the keys are in docs/web.md).

    Args:
        r: the agent's current record.
        positions: queue places by agent (``queued #2``).
        earlier: the agent's earlier runs' last records (``outputs/NAME/RUN_ID.record.json``), any order.
        now: the time an active run's figures run to (default: now).
    """
    now = time.time() if now is None else now
    spent = phase_seconds(r, now)
    q = question(r)
    wt = r.worktree if isinstance(r.worktree, dict) else {}
    tokens = r.tokens if isinstance(r.tokens, dict) else None
    messages = r.messages if isinstance(r.messages, dict) else None
    runs = sorted(earlier, key=lambda e: (parse_time(e.created) or 0.0, e.run_id))
    return {
        "name": r.agent,
        "run_id": r.run_id,
        "status": str(r.status),
        "shown": status_shown(r, positions or {}),
        "active": r.state.is_active,
        "idle": r.state.is_active and bool(r.keep_open_until) and q is None,
        "keep_open_until": parse_time(r.keep_open_until) if r.state.is_active else None,
        "task": _text(r.task, ROW_TEXT_CHARS) or "",
        "created": parse_time(r.created),
        "started": parse_time(r.started),
        "finished": parse_time(r.finished),
        "elapsed_s": r.elapsed_s(now),
        "run_s": spent.get(RUNNING),
        "queued_s": spent.get(State.QUEUED.value, 0.0),
        "waiting_s": spent.get(State.WAITING.value, 0.0),
        "cost_usd": r.cost_usd,
        "tokens": {"input": int(tokens.get("input") or 0), "output": int(tokens.get("output") or 0)} if tokens else None,
        "turns": r.num_turns,
        "peak_rss_mb": r.peak_rss_mb,
        "exit_code": r.exit_code,
        "error": _text(r.error, ROW_ERROR_CHARS),
        "result_preview": _text(r.result, ROW_TEXT_CHARS),
        "executor": r.spec.executor,
        "executor_ref": r.executor_ref,
        "after": list(r.spec.after),
        "question": None if q is None else {
            "id": q["id"], "tool_name": _text(q.get("tool_name"), 100) or "?",
            "input": input_preview(q.get("input"), 200),
            "asked_at": parse_time(q.get("asked_at")) if isinstance(q.get("asked_at"), str) else None,
            "timeout_at": parse_time(q.get("timeout_at")) if isinstance(q.get("timeout_at"), str) else None,
        },
        "messages": None if messages is None else {
            "received": _count(messages.get("received")), "delivered": _count(messages.get("delivered"))},
        "model": r.model,
        "session_id": r.session_id,
        "cwd": r.cwd,
        "worktree": {"path": wt["path"], "branch": wt["branch"]}
        if isinstance(wt.get("path"), str) and isinstance(wt.get("branch"), str) else None,
        "runs": [run_item(e) for e in runs if e.run_id != r.run_id] + [run_item(r)],
    }


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def totals(recs: list[StatusRecord], now: float | None = None) -> dict[str, Any]:
    """The fan-out's totals as the console shows them (:func:`summary_figures`, in the JSON's names)."""
    now = time.time() if now is None else now
    f = summary_figures(recs, now)
    intervals = [iv for r in recs if (iv := run_interval(r, now)) is not None]
    tokens = [r.tokens for r in recs if isinstance(r.tokens, dict)]
    return {
        "agents": len(recs),
        "counts": f["counts"],
        "cost_usd": f["cost"],
        "tokens_in": sum(int(t.get("input") or 0) for t in tokens),
        "tokens_out": sum(int(t.get("output") or 0) for t in tokens),
        "turns": f["turns"],
        "run_s": f["total_s"],
        "busy_s": f["busy_s"],
        "span_s": f["span_s"],
        "speedup": f["total_s"] / f["busy_s"] if f["busy_s"] > 0 else None,
        "queued_s": f["queued_s"],
        "waiting_s": f["waiting_s"],
        "first_start": min((s for s, _ in intervals), default=None),
        "last_end": max((e for _, e in intervals), default=None),
    }
