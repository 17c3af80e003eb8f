"""The ``--on-complete`` hook: an argument vector run once, after the run has ended.

Its failure never changes the run's status; what it returned (or why it
could not run) is kept in the record's ``on_complete``.  While it runs the
record says ``{"argv", "running": true}`` and its supervisor still holds the
agent's name (the life lock): a launch or resume of the name is refused (exit
3), waiters wait for it, and a stop (SIGTERM to the supervisor) stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from typing import IO, Any

from ..core.errors import OrchestratorError
from ..core.modes import user_umask
from ..core.paths import StatePaths
from ..core.procs import signal_group
from ..records.status_record import StatusRecord
from .writer import SHORT_RETRY_LIMIT_S, RecordWriter

#: Seconds an --on-complete command may run before it is given up on.
ON_COMPLETE_TIMEOUT_S = 120.0
#: Seconds between looks at the hook, its time limit and a stop request.
HOOK_POLL_S = 0.05


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


def run_hook(
    argv: list[str], env: dict[str, str], cwd: str | None, output: IO[bytes] | None, *,
    stop: Callable[[], str | None], grace: Callable[[], float],
) -> dict[str, Any]:
    """Run ``argv`` in its own session, stdin from /dev/null, stdout and stderr to ``output`` (the run's log),
    with the caller's umask (:func:`..core.modes.user_umask`: the hook is the user's, not the toolkit's).

    Its process group is stopped (SIGTERM, ``grace()`` seconds, SIGKILL) after
    :data:`ON_COMPLETE_TIMEOUT_S` seconds, or as soon as ``stop()`` says who asked (e.g. "signal 15").

    Returns:
        The record's ``on_complete``: ``{"argv", "exit_code"}``, plus
        ``"error"`` if it exited non-zero, could not be started, timed out
        or was stopped (then ``exit_code`` is None).
    """
    outcome: dict[str, Any] = {"argv": argv}
    try:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                start_new_session=True, umask=user_umask())
    except OSError as exc:
        return {**outcome, "exit_code": None, "error": str(exc)}
    deadline = time.monotonic() + ON_COMPLETE_TIMEOUT_S
    why = None
    while proc.poll() is None and why is None:
        asked = stop()
        if asked:
            why = f"stopped by request ({asked})"
        elif time.monotonic() >= deadline:
            why = f"timed out after {ON_COMPLETE_TIMEOUT_S:g} seconds"
        else:
            time.sleep(HOOK_POLL_S)
    if why is None:
        outcome["exit_code"] = proc.returncode
        if proc.returncode != 0:
            outcome["error"] = f"exited with status {proc.returncode}"
        return outcome
    _stop_group(proc, grace())
    return {**outcome, "exit_code": None, "error": why}


def _stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to ``proc``'s process group (it leads its own session), ``grace_s`` seconds, then SIGKILL; reaps it."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        signal_group(proc.pid, sig)  # False once the group is gone: the wait below returns at once
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_on_complete(
    paths: StatePaths, writer: RecordWriter, output: IO[bytes] | None, *,
    stop: Callable[[], str | None], grace: Callable[[], float],
) -> None:
    """Run the launch's ``--on-complete`` hook once, if the run has ended, and note what it returned.

    The record is read again (the supervisor's copy if it cannot be); nothing
    happens if it is no longer this run's, has not ended (its final write
    failed) or has no hook.  The record first says ``{"argv", "running": true}``,
    then the outcome (:func:`run_hook`); each note is retried for
    :data:`SHORT_RETRY_LIMIT_S`.  The caller holds the agent's name (its life
    lock) until this returns.

    Args:
        paths: the state root.
        writer: the run's record writer (its log, its copy of the record).
        output: the run's log, for the hook's output.
        stop: who asked the supervisor to stop since the run ended (e.g. "signal 15"), or None: the hook is stopped.
        grace: seconds from SIGTERM to SIGKILL when the hook is stopped.
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
    writer.record = writer.record or rec
    _note(writer, {"argv": argv, "running": True})
    writer.log(f"on-complete: {argv}")
    outcome = run_hook(argv, hook_env(paths, rec), rec.cwd, output, stop=stop, grace=grace)
    writer.log(f"on-complete ended: {outcome}")
    _note(writer, outcome)


def _note(writer: RecordWriter, value: dict[str, Any]) -> None:
    """Set the record's ``on_complete`` to ``value``, retried for :data:`SHORT_RETRY_LIMIT_S` if it cannot be written now."""

    def note(r: StatusRecord) -> None:
        r.on_complete = value

    if not writer.change("on_complete", note):
        writer.persist([("the record", writer.flush)], SHORT_RETRY_LIMIT_S)
