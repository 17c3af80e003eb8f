"""The ``--on-complete`` hook: an argument vector run once, after the run has ended.

Its failure never changes the run's status; what it returned (or why it
could not run) is kept in the record's ``on_complete``.
"""

from __future__ import annotations

import os
import subprocess
from typing import IO, Any

from ..core.errors import OrchestratorError
from ..core.paths import StatePaths
from ..records.status_record import StatusRecord
from .writer import SHORT_RETRY_LIMIT_S, RecordWriter

#: Seconds an --on-complete command may run before it is given up on.
ON_COMPLETE_TIMEOUT_S = 120.0


def hook_env(paths: StatePaths, rec: StatusRecord) -> dict[str, str]:
    """The hook's environment: ours, plus ``ORCHESTRATOR_AGENT``, ``_STATUS``, ``_RUN_ID``, ``_RECORD`` and ``_OUTPUT``."""
    return dict(
        os.environ,
        ORCHESTRATOR_AGENT=rec.agent,
        ORCHESTRATOR_STATUS=str(rec.status),
        ORCHESTRATOR_RUN_ID=rec.run_id,
        ORCHESTRATOR_RECORD=str(paths.status(rec.agent)),
        ORCHESTRATOR_OUTPUT=str(paths.latest_output(rec.agent)),
    )


def run_hook(argv: list[str], env: dict[str, str], cwd: str | None, output: IO[bytes] | None) -> dict[str, Any]:
    """Run ``argv`` in its own session, stdin from /dev/null, stdout and stderr to ``output`` (the run's log).

    Given up on after :data:`ON_COMPLETE_TIMEOUT_S` seconds.

    Returns:
        The record's ``on_complete``: ``{"argv", "exit_code"}``, plus
        ``"error"`` if it exited non-zero, could not be started or timed out
        (then ``exit_code`` is None).
    """
    outcome: dict[str, Any] = {"argv": argv}
    try:
        done = subprocess.run(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            timeout=ON_COMPLETE_TIMEOUT_S, start_new_session=True,
        )
        outcome["exit_code"] = done.returncode
        if done.returncode != 0:
            outcome["error"] = f"exited with status {done.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        outcome["exit_code"] = None
        outcome["error"] = str(exc)
    return outcome


def run_on_complete(paths: StatePaths, writer: RecordWriter, output: IO[bytes] | None) -> None:
    """Run the launch's ``--on-complete`` hook once, if the run has ended, and note what it returned.

    The record is read again (the supervisor's copy if it cannot be); nothing
    happens if it is no longer this run's, has not ended (its final write
    failed) or has no hook.  The note is retried for :data:`SHORT_RETRY_LIMIT_S`.

    Args:
        paths: the state root.
        writer: the run's record writer (its log, its copy of the record).
        output: the run's log, for the hook's output.
    """
    try:
        rec = writer.store.read(writer.name)
    except OrchestratorError:
        rec = writer.record
    if rec is None or rec.run_id != writer.run_id or not rec.state.is_terminal:
        return
    if not rec.spec.on_complete:
        return
    argv = list(rec.spec.on_complete)
    writer.log(f"on-complete: {argv}")
    outcome = run_hook(argv, hook_env(paths, rec), rec.cwd, output)
    writer.log(f"on-complete ended: {outcome}")

    def note(r: StatusRecord) -> None:
        r.on_complete = outcome

    writer.record = writer.record or rec
    if not writer.change("on_complete", note):
        writer.persist([("the record", writer.flush)], SHORT_RETRY_LIMIT_S)
