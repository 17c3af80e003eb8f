"""Sending a message to an agent: into its running run's inbox, or as the next run of its session.

The rule (docs/scripts.md, ``message_agent.py``), decided under the agent's
record lock so that no message falls between a run's end and the next:

- the agent's run is active (waiting, queued, starting, running) and its
  supervisor alive: the message is appended to that run's inbox
  (:mod:`..records.channel`); the supervisor writes it to the CLI's stdin as
  it arrives, or after the task when the CLI starts;
- otherwise (the run has ended, or its supervisor is gone): the message
  continues the agent's session as ``resume_agent.py`` would, with the same
  options and executor as that run (:func:`continuation_spec`), unless the
  caller said not to (:class:`NotRunning`, exit 6).

A run's supervisor takes the messages its CLI never got when it writes the
run's end (under the same lock), and continues the session with them itself
(:func:`continue_with`) unless the run was killed or skipped.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NamedTuple

from ..core.errors import Conflict, NotFound, OrchestratorError
from ..core.paths import StatePaths, validate_name
from ..core.programs import command
from ..core.states import ExitCode, State
from ..records import channel
from ..records.shape import utc_now
from ..records.spec import RunSpec
from ..records.status_record import RecordStore, StatusRecord
from .control import reconcile

#: How many times a send looks again when the agent's state changed under it (a run ended, another started).
SEND_TRIES = 5
#: States after which a supervisor continues the session with the messages its CLI never got.
CONTINUED_AFTER = frozenset({State.COMPLETED, State.FAILED, State.TIMEOUT, State.MEMORY_EXCEEDED})


class NotRunning(OrchestratorError):
    """``--no-resume``: the agent's run has ended, so the message was not sent (exit 6)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.NOT_RUNNING)


class Sent(NamedTuple):
    """What became of a send.

    Attributes:
        how: ``"queued"`` (in a running run's inbox) or ``"resumed"`` (a new run of the session took it).
        record: the record of the run that takes the messages, as read or written then.
        message_ids: the ids of the messages in that run's inbox (``m-...``); for a resume,
            the first message is the new run's task and has none.
        numbers: each message's number in that run's inbox (1, 2, ...), as the record's
            ``messages`` counts them; empty for a resume's task.
        previous: for a resume, the record of the run that had ended.
    """

    how: str
    record: StatusRecord
    message_ids: list[str]
    numbers: list[int]
    previous: StatusRecord | None = None


def sender() -> str:
    """Who sends, for the inbox line: ``pid N on HOST``."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


def continuation_spec(rec: StatusRecord) -> RunSpec:
    """The spec of a run that continues ``rec``'s session: the same CLI options, limits, executor and
    ways to talk, without what belongs to a first launch (isolation, dependencies, a fork's source)."""
    return rec.spec.replace(
        cwd=None, isolation="none", after=(), after_any=False, context_from=None, resume_id=None,
        session_cwd=None, fork=False, forked_from=None,
    )


def _lost_messages(paths: StatePaths, rec: StatusRecord) -> list[str]:
    """The messages a run whose supervisor is gone (``lost``, never closed) had received but not delivered."""
    if rec.messages and "undelivered" in rec.messages:
        return []  # its supervisor closed the inbox: it continued them itself, or the run was killed
    delivered = rec.messages.get("delivered", 0) if rec.messages else 0
    found, _, _ = channel.read_messages(paths.inbox(rec.agent, rec.run_id))
    return [m["text"] for m in found[delivered if isinstance(delivered, int) else 0:]]


def send(paths: StatePaths, name: str, texts: list[str], *, resume: bool = True) -> Sent:
    """Send ``texts`` (in order) to agent ``name`` (the rule in the module docstring).

    Args:
        texts: the messages, each checked (:func:`..records.channel.check_message`).
        resume: continue an ended agent's session with them; False: raise :class:`NotRunning`.

    Raises:
        BadInput: a bad name or message (exit 2).  NotFound: no such agent, or no session
        to continue (exit 4).  NotRunning: ``resume`` False and the run has ended (exit 6).
        Conflict: the agent's ended run still runs its ``--on-complete`` hook (exit 3).
        BadRecord: its record is unreadable (exit 2).  StorageError (exit 74).
        and what :func:`..usecases.launch.resume` raises.
    """
    validate_name(name)
    for text in texts:
        channel.check_message(text)
    store = RecordStore(paths)
    for _ in range(SEND_TRIES):
        rec = store.read(name)
        if rec is None:
            raise NotFound(f"no agent named {name!r}; see {command('check_status')} for the agents there are")
        if rec.state.is_active:
            rec = reconcile(store, rec)  # a run whose supervisor is gone ends lost here (not under the lock: it takes it)
        if rec.state.is_active:
            queued = _append_if_active(store, rec, texts)
            if queued is not None:
                return queued
            continue  # it ended or changed meanwhile: look again
        if not resume:
            raise NotRunning(
                f"agent {name!r} is not running (its run {rec.run_id} is {rec.status}); the message was not sent. "
                f"Send it without --no-resume to continue its session, or: {command('resume_agent')} {name} \"TEXT\""
            )
        try:
            return _resume_with(paths, rec, [*_lost_messages(paths, rec), *texts])
        except Conflict:
            continue  # another run of the name started meanwhile (its hook is reported below): send to it
    rec = store.read(name)
    if rec is not None and rec.on_complete and rec.on_complete.get("running"):
        raise Conflict(
            f"agent {name!r} is running its --on-complete hook; the message was not sent. "
            f"Send it again once the hook has ended ({command('wait_agents')} {name})"
        )
    raise Conflict(f"agent {name!r} kept changing state; the message was not sent. Try again")


def _append_if_active(store: RecordStore, seen: StatusRecord, texts: list[str]) -> Sent | None:
    """Under the record's lock: if ``seen``'s run is still the agent's and active, append ``texts`` to its inbox.

    A run idle after its turn (``keep_open_until``) is idle no more: that is cleared in the same
    write, so a ``wait_agents.py`` started right after this waits for the turn the message starts.
    """
    paths = store.paths
    sent: list[Sent] = []

    def append(rec: StatusRecord | None) -> StatusRecord | None:
        if rec is None or rec.run_id != seen.run_id or not rec.state.is_active:
            return None
        sent.append(Sent("queued", rec, *_append(paths.inbox(rec.agent, rec.run_id), texts)))
        if rec.keep_open_until is None:
            return None
        rec.keep_open_until = None
        return rec

    store.update(seen.agent, append, durable=False)
    return sent[0] if sent else None


def _resume_with(paths: StatePaths, rec: StatusRecord, texts: list[str]) -> Sent:
    """Continue ``rec``'s agent's session: the first text is the new run's task, the others go to its inbox.

    Raises:
        NotFound: the agent has no session (exit 4).  Conflict: the name is busy (exit 3).
    """
    from .launch import resume  # here: only a send to an ended agent pays for the launch path

    first, rest = texts[0], texts[1:]
    new = resume(paths, rec.agent, first, continuation_spec(rec))
    ids, numbers = _append(paths.inbox(new.agent, new.run_id), rest) if rest else ([], [])
    return Sent("resumed", new, ids, numbers, rec)


def _append(inbox: Path, texts: list[str]) -> tuple[list[str], list[int]]:
    """Append ``texts`` to ``inbox``, one line each (the caller holds the record's lock, or owns the new run).

    Returns:
        ``(their message ids, their numbers in the inbox)``.
    """
    before, _, _ = channel.read_messages(inbox)
    at, who = utc_now(), sender()
    ids = [channel.new_message_id() for _ in texts]
    for mid, text in zip(ids, texts, strict=True):
        channel.append_message(inbox, channel.message_line(text, at, who, mid))
    return ids, list(range(len(before) + 1, len(before) + 1 + len(texts)))


#: Seconds a wait looks at the record again without a change event (a supervisor that died, a network filesystem).
WAIT_RECHECK_S = 1.0
#: Seconds a wait gives an ended run's supervisor to continue the session with messages its CLI never got.
CONTINUATION_WAIT_S = 30.0


def wait_answered(paths: StatePaths, name: str, run_id: str, number: int, timeout_s: float | None = None) -> tuple[StatusRecord | None, bool]:
    """Sleep until message ``number`` of run ``run_id`` has been answered: a turn that took it has ended
    (``number`` 0: the run's task, whose turn has ended when the run ends or waits for more, ``--keep-open``).

    If the run ends first with the message undelivered, its supervisor continues the
    session with it: then the new run's end is the answer.  Woken by changes in
    ``status/`` (watchdog), with a look every :data:`WAIT_RECHECK_S`.

    Returns:
        ``(the record then, answered)``; ``(None, False)`` if the record is gone;
        answered is False if the run ended without answering it (or ``timeout_s`` passed).
    """
    import time

    from .watch import DirWatcher  # watchdog: only a waiting sender loads it

    store = RecordStore(paths)
    start = time.monotonic()
    ended_at: float | None = None
    with DirWatcher(paths.status_dir) as watcher:
        while True:
            rec = store.read(name)
            if rec is None:
                return None, False
            if rec.state.is_active:
                rec = reconcile(store, rec)
            now = time.monotonic()
            if rec.run_id == run_id:
                if number and (rec.messages or {}).get("answered", 0) >= number:
                    return rec, True
                if not number and rec.keep_open_until:  # the task's turn has ended; the run waits for more
                    return rec, True
                if not number and rec.state.is_terminal:
                    return rec, rec.state is State.COMPLETED
                if rec.state.is_terminal:
                    continues = (rec.messages or {}).get("undelivered") and rec.state in CONTINUED_AFTER
                    ended_at = ended_at or now
                    if not continues or now - ended_at > CONTINUATION_WAIT_S:
                        return rec, False
            elif rec.state.is_terminal:  # the run that continued the session with it has ended
                return rec, rec.state is State.COMPLETED
            if timeout_s is not None and now - start >= timeout_s:
                return rec, False
            watcher.wait(WAIT_RECHECK_S)
