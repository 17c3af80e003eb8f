"""What the scripts print, as pure functions: records in, text or JSON-ready data out.

No I/O here (nothing is read, written or printed), so every line a script
shows can be checked in-process: tables, the execution summary, change lines
and events, the compact JSON a master reads, durations, costs and counts.
Where "now" matters (an active run's elapsed time) it is a parameter,
defaulting to the current time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..core.errors import BadRecord, bad_record_advice
from ..core.paths import StatePaths
from ..core.programs import command
from ..executors import registry
from ..records.shape import executor_ref_key, parse_time
from ..records.status_record import StatusRecord
from ..usecases.board import (  # noqa: F401 - also render's: what the scripts print is built from them
    QUESTION_INPUT_CHARS,
    TASK_PREVIEW,
    busy_seconds,
    input_preview,
    preview,
    question,
    run_interval,
    state_counts,
    status_shown,
    summary_figures,
)

#: What the scripts call an agent whose ``status/NAME.json`` cannot be read (not a run state).
UNREADABLE = "unreadable"
#: Characters of the result preview in compact output; the whole text is in ``output_file``.
BRIEF_RESULT_CHARS = 64
#: Characters of an error kept in compact output; the whole one is in the record.
BRIEF_ERROR_CHARS = 200


# -- figures -------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    """A duration for people: ``4.2s`` under 10 s, ``42s``, ``3m07s``, ``2h05m``; ``-`` for None."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_cost(cost: float | None) -> str:
    """A cost in USD to four decimals (``$0.0123``); ``-`` for None (the CLI has not reported one)."""
    return "-" if cost is None else f"${cost:.4f}"


def turns(n: int) -> str:
    """``1 turn``, ``3 turns``."""
    return f"{n} turn" + ("" if n == 1 else "s")


def counts_text(counts: dict[str, int]) -> str:
    """State counts as ``1 completed, 2 failed`` (sorted by status)."""
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


# -- JSON ----------------------------------------------------------------------


def compact(obj: Any) -> str:
    """JSON without the optional spaces (ASCII-escaped: safe whatever stdout's encoding)."""
    return json.dumps(obj, separators=(",", ":"))


def json_list(items: list[dict[str, Any]]) -> str:
    """A JSON list with one compact object per line: cheap to read, easy to grep."""
    if not items:
        return "[]"
    return "[\n" + ",\n".join(compact(i) for i in items) + "\n]"


def brief(r: StatusRecord, positions: dict[str, int] | None = None, now: float | None = None) -> dict[str, Any]:
    """The fields a master acts on, for ``check_status.py --json`` (about 0.35 KB per agent).

    Keys: agent, status, run_id, [queue_position], [error], [result] (a preview),
    num_turns, cost_usd, duration_s (so far, while active, to ``now``), session_id, output_file,
    executor (``local`` or ``slurm``), [``<executor>_job_id``: the executor's reference, e.g. ``slurm_job_id``],
    [worktree: ``{"path", "branch"}`` of a run in a git worktree, :func:`worktree_brief`],
    [waiting_for: the permission question it waits on, :func:`question_brief`],
    [keep_open_until: a run idle after its turn waits for a message until then (``--keep-open``)],
    [executor_unknown: why a run of an executor this toolkit does not know is shown as it was recorded].
    The same object is what ``launch_agent.py``/``resume_agent.py --json --wait`` print (one line),
    and ``launch_parallel.py --json --wait`` one per agent; the whole record is ``check_status.py --full``'s.
    """
    d: dict[str, Any] = {"agent": r.agent, "status": str(r.status), "run_id": r.run_id}
    if positions and r.agent in positions:
        d["queue_position"] = positions[r.agent]
    if r.error:
        d["error"] = preview(r.error, BRIEF_ERROR_CHARS)
    if r.result:
        d["result"] = preview(r.result, BRIEF_RESULT_CHARS)
    elapsed = r.duration_s if r.duration_s is not None else r.elapsed_s(now)
    d.update(
        num_turns=r.num_turns, cost_usd=r.cost_usd, duration_s=None if elapsed is None else round(elapsed, 1),
        session_id=r.session_id, output_file=r.output_file, executor=r.spec.executor,
    )
    d.update(executor_ref(r))
    d.update(worktree_brief(r))
    if (q := question_brief(r)) is not None:
        d["waiting_for"] = q
    elif r.state.is_active and r.keep_open_until:
        d["keep_open_until"] = r.keep_open_until
    if r.spec.executor not in registry.EXECUTORS:
        d["executor_unknown"] = registry.UnknownExecutor(r.spec.executor).why
    return d


def executor_ref(r: StatusRecord) -> dict[str, str]:
    """``{"<executor>_job_id": ref}`` (e.g. ``slurm_job_id``) if the run's executor gave it a reference, else ``{}``."""
    key = executor_ref_key(r.spec.executor)
    return {key: r.executor_ref} if key and r.executor_ref else {}


def worktree_brief(r: StatusRecord) -> dict[str, Any]:
    """``{"worktree": {"path": ..., "branch": ...}}`` for a run in a git worktree (``--isolation worktree``,
    the record's ``worktree``), else ``{}``: where the agent's work is, and the branch to merge."""
    wt = r.worktree or {}
    if not isinstance(wt.get("path"), str) or not isinstance(wt.get("branch"), str):  # a record is untrusted input
        return {}
    return {"worktree": {"path": wt["path"], "branch": wt["branch"]}}


def worktree_lines(r: StatusRecord) -> list[str]:
    """``["  worktree:   PATH (branch BRANCH)"]`` for a run in a git worktree, else ``[]``."""
    wt = worktree_brief(r).get("worktree")
    return [f"  worktree:   {wt['path']} (branch {wt['branch']})"] if wt else []


def full(r: StatusRecord, positions: dict[str, int]) -> dict[str, Any]:
    """The whole record (``check_status.py --full``), with its ``queue_position`` if it is queued."""
    d = r.to_dict()
    if r.agent in positions:
        d["queue_position"] = positions[r.agent]
    return d


def unreadable_item(bad: BadRecord) -> dict[str, Any]:
    """What ``--json`` shows for a record that cannot be read: agent, status, error (with advice), status_file."""
    return {"agent": bad.name, "status": UNREADABLE, "error": f"{bad.reason}; {bad_record_advice(bad.name)}", "status_file": bad.path}


# -- launches ------------------------------------------------------------------


def launch_summary(paths: StatePaths, rec: StatusRecord) -> dict[str, Any]:
    """``launch_agent.py --json``: the new run, where its files are, and where it runs (executor, [``<executor>_job_id``],
    [worktree ``{"path", "branch"}``, :func:`worktree_brief`])."""
    return {
        "agent": rec.agent,
        "run_id": rec.run_id,
        "status": str(rec.status),
        "session_id": rec.session_id,
        "cwd": rec.cwd,
        "status_file": str(paths.status(rec.agent)),
        "output_file": rec.output_file,
        "session_file": str(paths.session(rec.agent)),
        "transcript_file": rec.transcript_file,
        "log_file": rec.log_file,
        "executor": rec.spec.executor,
        **executor_ref(rec),
        **worktree_brief(rec),
    }


def launched_line(rec: StatusRecord) -> str:
    """``NAME: STATUS  run RUN_ID  session SESSION_ID``."""
    return f"{rec.agent}: {rec.status}  run {rec.run_id}  session {rec.session_id}"


def launched(paths: StatePaths, rec: StatusRecord) -> str:
    """The launched line and the run's files, one a line (no trailing newline); a git worktree's path and branch
    (``  worktree:   PATH (branch B)``); the executor's job ID last (``  slurm job:  N``)."""
    return "\n".join([
        launched_line(rec),
        f"  status:     {paths.status(rec.agent)}",
        f"  output:     {rec.output_file}",
        f"  transcript: {rec.transcript_file}",
        f"  log:        {rec.log_file}",
        *worktree_lines(rec),
        *([f"  {rec.spec.executor} job:  {rec.executor_ref}"] if rec.executor_ref else []),
    ])


def launched_brief(rec: StatusRecord) -> dict[str, Any]:
    """One agent of ``launch_parallel.py --json``: agent, status, run_id, session_id, output_file, [``<executor>_job_id``],
    [worktree ``{"path", "branch"}``]."""
    return {"agent": rec.agent, "status": str(rec.status), "run_id": rec.run_id, "session_id": rec.session_id,
            "output_file": rec.output_file, **executor_ref(rec), **worktree_brief(rec)}


def layout_line(paths: StatePaths) -> str:
    """The state root's file layout, said once for many agents."""
    return (
        f"files under {paths.root}/: status/NAME.json, outputs/NAME_latest.txt (result), "
        "sessions/NAME_session.txt, outputs/NAME/RUN_ID.jsonl (transcript) and .log"
    )


def ended_line(r: StatusRecord) -> str:
    """``--wait``'s line for an ended run: status, duration, turns, cost, and the result or error."""
    tail = f": {preview(r.result, 70)}" if r.result else (f": {r.error}" if r.error else "")
    return f"{r.agent}: {r.status} in {fmt_duration(r.duration_s)}, {turns(r.num_turns)}, {fmt_cost(r.cost_usd)}{tail}"


def plan_table(plan: list[dict[str, Any]]) -> str:
    """``launch_parallel.py --dry-run``: the agents that would be launched, and a closing line."""
    rows = [("AGENT", "ROLE", "PROFILE", "TASK")]
    rows += [(p["agent"], p["role"] or "-", p["profile"] or "-", preview(p["task"], 60)) for p in plan]
    return columns(rows) + f"\n\n{len(plan)} agent(s) would be launched; nothing was (--dry-run)"


# -- tables --------------------------------------------------------------------


def columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns two spaces apart; the last column is not padded, lines are right-stripped."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]).rstrip() for row in rows)


#: The STATUS cell (:func:`..usecases.board.status_shown`).
status_text = status_shown


def last_tool(r: StatusRecord) -> str:
    """What an active agent did last (its latest tool call, ``NAME: INPUT`` cut to 40), else ``""``."""
    if not r.state.is_active or not r.last_tool:
        return ""
    return preview(f"{r.last_tool.get('name')}: {r.last_tool.get('input', '')}", 40)


def table(
    recs: list[StatusRecord],
    positions: dict[str, int] | None = None,
    bad: Sequence[BadRecord] = (),
    order: dict[str, int] | None = None,
    now: float | None = None,
) -> str:
    """The status table; an unreadable record is a row of its own (its reason goes to stderr).

    Args:
        recs: the records, one row each.
        positions: queue places by agent (``queued #2``).
        bad: records that could not be read.
        order: rank by agent name; rows are sorted by it when given.
        now: the time active runs' ELAPSED runs to (default: now).
    """
    positions = positions or {}
    show_last = any(last_tool(r) for r in recs)
    head = ("AGENT", "STATUS", "ELAPSED", "TURNS", "TOKENS", "COST") + (("LAST TOOL",) if show_last else ()) + ("TASK",)
    rows: list[tuple[str, tuple[str, ...]]] = []
    for r in recs:
        tokens = f"{r.tokens['input'] + r.tokens['output']:,}" if r.tokens else "-"
        row = (r.agent, status_text(r, positions), fmt_duration(r.elapsed_s(now)), str(r.num_turns), tokens, fmt_cost(r.cost_usd))
        rows.append((r.agent, row + ((last_tool(r) or "-",) if show_last else ()) + (preview(r.task),)))
    for b in bad:
        rows.append((b.name, (b.name, UNREADABLE, "-", "-", "-", "-") + (("-",) if show_last else ()) + (f"(see {b.path})",)))
    if order:
        rows.sort(key=lambda row: order.get(row[0], 0))
    return columns([head] + [row for _, row in rows])


# -- permission questions and messages ----------------------------------------


def answer_command(agent: str) -> str:
    """How to answer ``agent``'s question: ``python3 agents/answer_agent.py NAME allow|deny`` (or ``orch-answer ...``)."""
    try:
        program = command("answer_agent")
    except KeyError:  # not (yet) among the toolkit's commands
        program = "python3 agents/answer_agent.py"
    return f"{program} {agent} allow|deny"


def question_text(r: StatusRecord, q: dict[str, Any]) -> str:
    """``NAME asks: TOOL `INPUT` (question ID; answer: python3 agents/answer_agent.py NAME allow|deny)``."""
    tool = preview(str(q.get("tool_name") or "?"), 40)
    shown = input_preview(q.get("input"))
    return f"{r.agent} asks: {tool}{f' `{shown}`' if shown else ''} (question {preview(q['id'], 20)}; answer: {answer_command(r.agent)})"


def question_brief(r: StatusRecord) -> dict[str, Any] | None:
    """The question ``r`` waits on as ``check_status.py --json`` shows it: id, tool_name, input (a preview,
    :func:`input_preview`), asked_at, timeout_at, answer (the command); None if none waits."""
    q = question(r)
    if q is None:
        return None
    return {"id": q["id"], "tool_name": q.get("tool_name"), "input": input_preview(q.get("input")),
            "asked_at": q.get("asked_at"), "timeout_at": q.get("timeout_at"), "answer": answer_command(r.agent)}


def question_lines(recs: Iterable[StatusRecord]) -> list[str]:
    """One line per run that waits on a permission question (:func:`question_text`), for under the status table."""
    return [question_text(r, q) for r in recs if (q := question(r)) is not None]


def delivered(r: StatusRecord) -> tuple[int, int]:
    """``(delivered, received)`` messages of ``r``'s run (the record's ``messages``; 0 for what is missing or not a count)."""
    m = r.messages if isinstance(r.messages, dict) else {}

    def count(key: str) -> int:
        v = m.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

    return count("delivered"), count("received")


def question_outcome(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """How a question that is no longer pending ended, from the record's ``questions`` counts before and after:
    ``allowed``, ``denied``, ``timed out`` (and so denied), else ``no longer pending`` (e.g. its run ended)."""
    before, after = before if isinstance(before, dict) else {}, after if isinstance(after, dict) else {}
    for key, word in (("allowed", "allowed"), ("denied", "denied"), ("timed_out", "timed out")):
        old, new = before.get(key, 0), after.get(key, 0)
        if isinstance(old, int) and isinstance(new, int) and new > old:
            return word
    return "no longer pending"


#: What ``wait_agents.py --follow --only`` can keep: kinds of notices.
NOTICE_KINDS = ("progress", "ends", "questions", "answers", "messages")


class Notices:
    """What changed in runs' records besides their state: questions asked and settled, messages delivered.

    Keeps per agent ``(run_id, pending question id, delivered, questions counts)``
    as last seen; :meth:`take` compares a record with it and returns what is new.
    A record seen first through :meth:`prime` (the starting point) counts its
    deliveries as known, but not a question pending then: a waiting question is
    news to whoever starts looking.
    """

    def __init__(self) -> None:
        self.seen: dict[str, tuple[str, str | None, int, dict[str, Any] | None]] = {}
        self.idle: dict[str, tuple[str, str | None]] = {}  # agent -> (run_id, keep_open_until) last seen

    def prime(self, recs: Iterable[StatusRecord]) -> None:
        """Take ``recs`` as known (their deliveries so far are not reported; a pending question still is)."""
        for r in recs:
            self.seen[r.agent] = (r.run_id, None, delivered(r)[0], r.questions)
            self.idle[r.agent] = (r.run_id, r.keep_open_until)

    def take(self, r: StatusRecord) -> list[tuple[str, dict[str, Any]]]:
        """The notices of ``r`` since it was last seen, as ``(kind, data)``; ``kind`` is one of
        ``questions`` (data: the question), ``answers`` (``{"id", "outcome"}``), ``messages``
        (``{"delivered", "received"}``) or ``idle`` (``{"until"}``: a turn has ended and the run waits
        for a message, ``--keep-open``).  A new run starts from nothing (its deliveries all count)."""
        run_id, pending, count, counts = self.seen.get(r.agent, (None, None, 0, None))
        if run_id != r.run_id:
            pending, count, counts = None, 0, None
        q = question(r)
        now_id = q["id"] if q is not None else None
        out: list[tuple[str, dict[str, Any]]] = []
        if pending is not None and pending != now_id:
            out.append(("answers", {"id": pending, "outcome": question_outcome(counts, r.questions)}))
        if now_id is not None and now_id != pending:
            out.append(("questions", q))
        done, received = delivered(r)
        if done > count:
            out.append(("messages", {"delivered": done, "received": max(received, done)}))
        self.seen[r.agent] = (r.run_id, now_id, max(done, count), r.questions)
        idle = (r.run_id, r.keep_open_until if r.state.is_active else None)
        if idle[1] and idle != self.idle.get(r.agent):
            out.append(("idle", {"until": idle[1]}))
        self.idle[r.agent] = idle
        return out


def _stamp(at: str | None) -> str:
    return (at or "")[11:19] or "--:--:--"


def notice_line(r: StatusRecord, kind: str, data: dict[str, Any], at: str | None) -> str:
    """A notice of :meth:`Notices.take` for people: ``HH:MM:SS NAME asks: ...``,
    ``HH:MM:SS NAME: question ID allowed``, ``HH:MM:SS NAME: message delivered (2 of 2)``."""
    if kind == "questions":
        return f"{_stamp(at)} {question_text(r, data)}"
    if kind == "answers":
        return f"{_stamp(at)} {r.agent}: question {preview(data['id'], 20)} {data['outcome']}"
    if kind == "idle":
        return (f"{_stamp(at)} {r.agent}: idle, its turn has ended (it waits for a message until {_stamp(data['until'])}; "
                f"{command('message_agent')} {r.agent} \"TEXT\" sends one)")
    return f"{_stamp(at)} {r.agent}: message delivered ({data['delivered']} of {data['received']})"


def notice_event(r: StatusRecord, kind: str, data: dict[str, Any], at: str | None) -> dict[str, Any]:
    """A notice as a ``--json`` line: ``{"event": "question", "agent", "run_id", "id", "tool_name", "input"
    (a preview), "asked_at", "timeout_at", "answer" (the command), "at"}``, ``{"event": "answered", "agent",
    "run_id", "id", "outcome", "at"}`` or ``{"event": "message", "agent", "run_id", "delivered", "received", "at"}``."""
    head = {"agent": r.agent, "run_id": r.run_id}
    if kind == "questions":
        return {"event": "question", **head, **(question_brief(r) or {"id": data["id"]}), "at": at}
    if kind == "answers":
        return {"event": "answered", **head, "id": data["id"], "outcome": data["outcome"], "at": at}
    if kind == "idle":
        return {"event": "idle", **head, "until": data["until"], "at": at}
    return {"event": "message", **head, "delivered": data["delivered"], "received": data["received"], "at": at}


def notice_at(r: StatusRecord, kind: str, fallback: str | None) -> str | None:
    """When a notice happened, as far as the record says: a question's ``asked_at``, the last delivery's
    ``last_delivered_at``; else ``fallback`` (e.g. now)."""
    if kind == "questions" and isinstance(r.waiting_for, dict) and isinstance(r.waiting_for.get("asked_at"), str):
        return r.waiting_for["asked_at"]
    if kind == "messages" and isinstance(r.messages, dict) and isinstance(r.messages.get("last_delivered_at"), str):
        return r.messages["last_delivered_at"]
    return fallback


#: Idle seconds between runs below which the summary does not mention the span from first start to last end.
SPAN_SHOWN_FROM_S = 1.0


def summary(recs: list[StatusRecord], now: float | None = None) -> str:
    """The execution summary (``check_status.py --summary``): totals, the parallel speed-up, one line per agent.

    The speed-up is the sum of the shown runs' run times over the wall time
    during which at least one of them ran (:func:`summary_figures`' ``busy_s``),
    so runs of unrelated batches hours apart never read below 1.0x; when idle
    gaps were left out, the line says how long the whole span was.  DURATION is
    each run's run time (``-``: it never started; queued time is not run time).
    """
    now = time.time() if now is None else now  # one instant for the figures and the rows
    f = summary_figures(recs, now)
    busy, span, total, budgets = f["busy_s"], f["span_s"], f["total_s"], f["budgets"]
    wall = f"wall time {fmt_duration(busy)} while any ran"
    if span - busy >= SPAN_SHOWN_FROM_S:
        wall += f" (idle gaps left out of the {fmt_duration(span)} from first start to last end)"
    lines = [
        f"{len(recs)} agent(s): {counts_text(f['counts'])}",
        f"{wall}; sum of run times {fmt_duration(total)}"
        + (f"; parallel speed-up {total / busy:.1f}x (sum of run times / wall time while any ran)" if busy > 0 else ""),
    ]
    apart = [f"{what} {fmt_duration(f[key])}" for what, key in (("queued", "queued_s"), ("waiting for --after", "waiting_s")) if f[key] >= 0.05]
    if apart:
        lines.append("not run time: " + ", ".join(apart) + " (summed over the runs)")
    if budgets:
        lines.append(f"budget {fmt_cost(sum(budgets))} over {len(budgets)} agent(s): spent {fmt_cost(f['spent'])} ({f['spent'] / sum(budgets):.0%})")
    lines.append("")
    rows = [("AGENT", "STATUS", "DURATION", "TURNS", "PEAK MiB", "EXIT", "COST")]
    for r in recs:
        ran = run_interval(r, now)
        rows.append((
            r.agent, str(r.status), fmt_duration(ran[1] - ran[0] if ran else None), str(r.num_turns),
            "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
            "-" if r.exit_code is None else str(r.exit_code), fmt_cost(r.cost_usd),
        ))
    rows.append(("TOTAL", "", fmt_duration(total), str(f["turns"]), f"{f['peak_mb']:.0f} max", "", fmt_cost(f["cost"])))
    return "\n".join(lines) + "\n" + columns(rows)


# -- changes -------------------------------------------------------------------


class ChangeClock:
    """Times for change lines that never go backwards.

    A change's time is when its record says the state changed; two changes
    written in one instant may be read in the other order, so a time earlier
    than one already shown is shown as that one.
    """

    def __init__(self) -> None:
        #: The latest time shown: (seconds since the epoch, its ISO-8601 stamp), or None.
        self.last: tuple[float, str] | None = None

    def at(self, r: StatusRecord) -> str | None:
        """The stamp to show for ``r``'s latest change (ISO-8601 UTC), never earlier than the last one shown."""
        stamp = r.changed_at()
        t = parse_time(stamp)
        if t is None:
            return self.last[1] if self.last else stamp
        if self.last is not None and t < self.last[0]:
            return self.last[1]
        self.last = (t, stamp)
        return stamp


def change_line(r: StatusRecord, previous: str | None, at: str | None) -> str:
    """``HH:MM:SS NAME: PREVIOUS -> STATUS``; an ended run adds duration, turns, cost and its error."""
    stamp = (at or "")[11:19] or "--:--:--"
    arrow = f"{previous} -> {r.status}" if previous else str(r.status)
    detail = ""
    if r.state.is_terminal:
        detail = f" in {fmt_duration(r.duration_s)}, {turns(r.num_turns)}, {fmt_cost(r.cost_usd)}"
        if r.error:
            detail += f": {preview(r.error, BRIEF_ERROR_CHARS)}"
    return f"{stamp} {r.agent}: {arrow}{detail}"


def change_event(r: StatusRecord, previous: str | None, at: str | None) -> dict[str, Any]:
    """One ``--json`` change line: an ended run's adds its error, a result preview, turns, cost, duration."""
    event: dict[str, Any] = {"event": "change", "agent": r.agent, "run_id": r.run_id, "status": str(r.status),
                             "previous": previous, "at": at}
    if r.state.is_terminal:
        if r.error:
            event["error"] = preview(r.error, BRIEF_ERROR_CHARS)
        if r.result:
            event["result"] = preview(r.result, BRIEF_RESULT_CHARS)
        event.update(num_turns=r.num_turns, cost_usd=r.cost_usd, duration_s=r.duration_s)
    return event


def unreadable_line(b: BadRecord, at: str) -> str:
    """``HH:MM:SS NAME: unreadable: REASON`` (wait_agents.py)."""
    return f"{at[11:19]} {b.name}: {UNREADABLE}: {b}"


def unreadable_event(b: BadRecord, at: str) -> dict[str, Any]:
    """A ``--json`` change line for a record that cannot be read (its error and status_file)."""
    event = {"event": "change", "agent": b.name, "run_id": None, "status": UNREADABLE, "previous": None, "at": at}
    return event | unreadable_item(b)


def wait_summary(code: int, counts: dict[str, int], agents: dict[str, str]) -> dict[str, Any]:
    """``wait_agents.py --json``'s last line: the exit status, state counts and each agent's status."""
    return {"event": "summary", "exit_code": int(code), "counts": counts, "agents": agents}


# -- stopping and clearing -----------------------------------------------------


def kill_message(what: str, rec: StatusRecord | None) -> str:
    """kill_agent.py's text for what :func:`..usecases.control.stop` did (``stopped``, ``orphans-stopped``, ``hook-stopped``, ``not-running``)."""
    status = str(rec.status) if rec else "cleared"
    if what == "stopped":
        if rec is None or not rec.state.is_active:
            return f"stopped; status {status}"
        return f"stopped its process tree; its supervisor records it when it can write (status {status} until then)"
    if what == "orphans-stopped":
        return "its supervisor was gone (lost); stopped its orphaned processes"
    if what == "hook-stopped":
        return f"the run had ended ({status}); stopped its --on-complete hook"
    return f"not running (status {status}); nothing to stop"


def clear_lines(outcome: dict[str, Any], purge: bool) -> list[str]:
    """clear_outputs.py's lines for :func:`..usecases.cleanup.clear`'s outcome (stopped, cleared, archive)."""
    lines = [] if outcome["cleared"] else ["nothing to clear"]
    lines += [f"{name}: stopped" for name in outcome["stopped"]]
    verb = "deleted" if purge else "archived"
    for name, files in outcome["cleared"].items():
        lines.append(f"{name}: {verb} {len(files)} file(s)" + (f": {', '.join(files)}" if files else ""))
    if outcome["archive"]:
        lines.append(f"archive: {outcome['archive']}")
    return lines
