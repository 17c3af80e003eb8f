"""What the supervisor writes into its record: the progress while the CLI runs, and the end.

Pure functions of what the supervisor knows (the events so far, its process
tree, the attempt's end); :mod:`.core` hands them to the record writer.
"""

from __future__ import annotations

from typing import Any

from ..claude.stream import RunProgress
from ..core.states import State
from ..records.lifecycle import move_from
from ..records.shape import utc_now
from ..records.status_record import RESULT_PREVIEW_CHARS, StatusRecord
from .attempt import AttemptEnd
from .tree import ProcessTree
from .writer import Change


def total_cost(prior_cost: float, progress: RunProgress) -> float | None:
    """USD so far: earlier attempts' (``prior_cost``) plus this one's result event; None before any."""
    cost = (progress.result or {}).get("total_cost_usd")
    if not prior_cost:
        return cost  # exactly what the CLI reported
    return round(prior_cost + float(cost or 0), 6)


def progress_change(progress: RunProgress, tree: ProcessTree, *, cli: tuple[int, float | None, str] | None,
                    session_id: str | None, prior_cost: float) -> Change:
    """The record change for the progress so far; the first one also says the run is ``running``.

    Args:
        cli: ``(pid, start time, when it started as ISO-8601 UTC)`` of the
            running CLI, or None before it started.
        session_id: the attempt's session ID (the events may name another).
        prior_cost: USD of earlier attempts.

    Returns:
        An idempotent change; it leaves a run that has ended as it is.
    """

    def change(rec: StatusRecord) -> None:
        if not rec.state.is_active:
            return
        if cli is not None:
            move_from(rec, State.STARTING, State.RUNNING, started=cli[2])
            rec.pid, rec.pid_started = cli[0], cli[1]
        rec.num_turns = progress.num_turns
        rec.session_id = progress.session_id or session_id or rec.session_id
        rec.model = progress.model or rec.model
        rec.last_tool = progress.last_tool or rec.last_tool
        rec.tokens = progress.tokens
        if progress.result is not None:
            rec.cost_usd = total_cost(prior_cost, progress)
        rec.peak_rss_mb = round(tree.peak_mb, 1) if tree.peak_mb else rec.peak_rss_mb
        rec.memory_warnings = list(tree.memory_warnings)
        rec.tree = tree.entries()
        rec.last_activity = utc_now()

    return change


def output_text(outcome: AttemptEnd) -> str:
    """The result file's text: the result event's ``result``, else ``[state] error``.

    It ends in exactly one newline (the answer's own trailing newlines are
    dropped), so that ``cat a_latest.txt b_latest.txt`` keeps the answers
    apart; an empty result stays empty.  The record's ``result`` is the
    event's text as it came.
    """
    text = result_text(outcome.progress)
    return f"[{outcome.state}] {outcome.error}\n" if text is None else text


def result_text(progress: RunProgress) -> str | None:
    """The latest result event's ``result`` as the result file holds it (one final newline; empty stays
    empty), or None if there is no result event or it holds no text."""
    result = progress.result
    text = result.get("result") if result else None
    if text is None:
        return None
    text = text.rstrip("\n")
    return text + "\n" if text else ""


def final_fields(outcome: AttemptEnd, tree: ProcessTree, prior_cost: float) -> dict[str, Any]:
    """The record fields set with the move to the run's end (:func:`..records.lifecycle.move`'s ``fields``)."""
    result, progress, end = outcome.progress.result, outcome.progress, outcome.outcome
    fields: dict[str, Any] = dict(
        exit_code=end.exit_code, error=end.error, is_error=end.is_error, num_turns=progress.num_turns,
        tokens=progress.tokens, session_id=outcome.session_id, peak_rss_mb=round(tree.peak_mb, 1),
        memory_warnings=list(tree.memory_warnings), finished=outcome.ended_at,
    )
    if result is None:
        return fields
    text = result.get("result")
    fields.update(
        cost_usd=total_cost(prior_cost, progress), usage=result.get("usage"),
        result=text[:RESULT_PREVIEW_CHARS] if text is not None else None,
    )
    return fields


def final_edit(outcome: AttemptEnd, tree: ProcessTree) -> Change:
    """The other changes of the final write: what depends on the stored record, and the facts set only when they apply."""
    result, progress = outcome.progress.result, outcome.progress

    def edit(rec: StatusRecord) -> None:
        rec.last_tool = progress.last_tool or rec.last_tool
        rec.model = progress.model or rec.model
        if result is not None and result.get("api_error_status") is not None:
            rec.api_error_status = result.get("api_error_status")
        if outcome.stop_reason is not None:
            rec.stop_reason = outcome.stop_reason.value
        if outcome.stopped_after_result:
            rec.stopped_after_result = True
        if outcome.skipped_lines:
            rec.stream_lines_skipped = outcome.skipped_lines
        if outcome.transcript_dropped:
            rec.transcript_bytes_lost = outcome.transcript_dropped
        rec.tree = tree.entries()

    return edit
