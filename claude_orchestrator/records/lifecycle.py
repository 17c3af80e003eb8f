"""The one writer of a run's state: every move of ``status`` goes through here.

A run's state changes in four places of the toolkit's life (the launcher
makes the record, the supervisor runs it, a reader finds it ``lost``, a stop
marks it ``killed``), and all of them call this module, the way Supervisor's
``change_state`` is the one door of its process states:

- :func:`create` writes a new run's first record, in the initial state the
  launcher decides under the record's lock (``waiting``, ``queued`` or
  ``starting``);
- :func:`change_state` moves a stored run from one state to another under
  the lock: it checks that the record is still that run's, that the move is in
  the table of moves (:data:`..core.states.TRANSITIONS`), stamps the times and
  writes the record atomically;
- :func:`move` is that same checked move on a record in memory (a supervisor
  keeps its own copy of its record, which heals a damaged file).

An illegal move is a bug in the toolkit, not bad input: it raises
:class:`IllegalMove` (exit 70 through :func:`..commands.guard.guarded`), never a usage error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..core.states import TRANSITIONS, State
from .shape import parse_time, utc_now
from .status_record import RecordStore, StatusRecord

#: The states a run's record may be created in (the launcher picks one).
INITIAL = frozenset({State.WAITING, State.QUEUED, State.STARTING})


class IllegalMove(RuntimeError):
    """A state change outside the table of moves (:data:`..core.states.TRANSITIONS`): a bug in the toolkit.

    Attributes:
        agent: the agent; source, target: the states of the refused move.
    """

    def __init__(self, agent: str, source: State, target: State) -> None:
        super().__init__(f"{agent}: a run cannot go from {source} to {target}")
        self.agent, self.source, self.target = agent, source, target


def move(rec: StatusRecord, target: State, *, now: str | None = None, **fields: Any) -> None:
    """Move ``rec`` (in memory) to ``target`` and stamp the times.

    ``fields`` are set on the record first (e.g. ``error=...``,
    ``started=<when the CLI started>``).  Then ``status_changed`` and
    ``last_activity`` are stamped with ``now`` (ISO-8601 UTC, default: the
    current time); entering ``running`` stamps ``started`` unless given;
    entering a terminal state stamps ``finished`` unless given (a supervisor
    passes the time the run ended, however late it is written) and
    ``duration_s`` from ``started`` (or ``created``) to ``finished``.

    Raises:
        IllegalMove: ``target`` may not be entered from the record's state.
    """
    source = State(rec.status)
    if source not in TRANSITIONS[target]:
        raise IllegalMove(rec.agent, source, target)
    now = now or utc_now()
    for key, value in fields.items():
        setattr(rec, key, value)
    rec.status = target
    rec.status_changed = now
    if "last_activity" not in fields:
        rec.last_activity = now
    if target is State.RUNNING and not rec.started:
        rec.started = now
    if target in INITIAL:
        rec.entered = {**(rec.entered or {}), target.value: now}
    if target.is_terminal:
        rec.finished = rec.finished or now
        rec.status_changed = rec.finished
        start = parse_time(rec.started) or parse_time(rec.created)
        end = parse_time(rec.finished)
        if start is not None and end is not None:
            rec.duration_s = round(max(0.0, end - start), 3)


def move_from(rec: StatusRecord, source: State, target: State, **fields: Any) -> None:
    """:func:`move` ``rec`` to ``target`` if it is in ``source``, else leave it.

    For a supervisor's change that holds a move: it may be applied twice (to
    the supervisor's copy at once, to the file's when it is written, maybe
    later, with other changes) or to a record that has moved on.

    Raises:
        IllegalMove: ``source`` -> ``target`` is not in the table of moves (a bug).
    """
    if rec.state is source:
        move(rec, target, **fields)


def change_state(
    store: RecordStore,
    name: str,
    run_id: str,
    target: State,
    *,
    when: Callable[[StatusRecord], bool] | None = None,
    edit: Callable[[StatusRecord], None] | None = None,
    fallback: StatusRecord | None = None,
    durable: bool = True,
    **fields: Any,
) -> StatusRecord | None:
    """Move run ``run_id`` of agent ``name`` to ``target``, under the record's lock.

    Nothing is written, and None returned, when the move is not for this
    caller to make: the record is gone or is another run's; the run has ended
    already (the first end wins: a supervisor's ``completed`` and a stop's
    ``killed`` may race, and that is not a bug); or ``when(record)`` is false
    (a caller's own condition, e.g. "its supervisor is gone").

    Args:
        store: the state root's records.
        name, run_id: the run.
        target: the state to enter.
        when: a condition on the current record, checked under the lock.
        edit: other changes to make in the same write (``edit(record)`` changes it in place).
        fallback: the caller's copy of the record, used when the file is
            unreadable (a supervisor heals its own record); a copy of it is changed.
        durable: fsync the write (see :func:`..core.files.write_atomic`).
        fields: record fields to set with the move (see :func:`move`).

    Returns:
        The record as written, or None if nothing was written.

    Raises:
        IllegalMove: the run is active but ``target`` may not be entered from its state (a bug).
        BadRecord: the file is unreadable and there is no ``fallback`` (exit 2).
        StorageError: the record cannot be written (exit 74); the file is as it was.
    """
    moved: list[StatusRecord] = []

    def mutate(cur: StatusRecord | None) -> StatusRecord | None:
        if cur is None or cur.run_id != run_id or cur.state.is_terminal:
            return None
        if when is not None and not when(cur):
            return None
        if edit is not None:
            edit(cur)
        move(cur, target, **fields)
        moved.append(cur)
        return cur

    store.update(name, mutate, durable=durable, fallback=fallback)
    return moved[0] if moved else None


def update_run(
    store: RecordStore,
    name: str,
    run_id: str,
    mutate: Callable[[StatusRecord], StatusRecord | None],
    *,
    fallback: StatusRecord | None = None,
    durable: bool = True,
) -> StatusRecord | None:
    """Change run ``run_id``'s record under its lock, if the file is still that run's.

    For changes other than a plain move: progress, a stop request's grace, a
    supervisor's waiting changes (which may hold a :func:`move_from`).
    ``mutate(record)`` changes it in place and returns it, or returns None to
    leave the file as it is.

    Returns:
        The record stored now: the changed one, or the file's as it is
        (another run's, or None if there is none).

    Raises:
        IllegalMove: from a move ``mutate`` makes.  BadRecord (exit 2): the
        file is unreadable and there is no ``fallback``.  StorageError (exit 74).
    """

    def if_ours(cur: StatusRecord | None) -> StatusRecord | None:
        if cur is None or cur.run_id != run_id:
            return None
        return mutate(cur)

    return store.update(name, if_ours, durable=durable, fallback=fallback)


def create(
    store: RecordStore,
    record: StatusRecord,
    decide: Callable[[StatusRecord | None], State],
) -> StatusRecord:
    """Write the first record of a new run, in the initial state ``decide`` picks.

    Under the agent's lock, ``decide(current record or None)`` may refuse
    (e.g. raise :class:`..core.errors.Conflict` if the agent is busy) or return the
    initial state; the record is stamped (``created`` if unset,
    ``status_changed``) and written without fsync: the supervisor rewrites it
    durably when it claims the run, and the fsync cost a loaded launch 38 ms.

    Returns:
        ``record``, as written.

    Raises:
        IllegalMove: ``decide`` returned a state a run cannot start in.
        whatever ``decide`` raises; BadRecord (exit 2) if the current file is
        unreadable; StorageError (exit 74).
    """

    def write(current: StatusRecord | None) -> StatusRecord:
        initial = decide(current)
        if initial not in INITIAL:
            raise IllegalMove(record.agent, State(record.status), initial)
        now = utc_now()
        record.status = initial
        record.created = record.created or now
        record.status_changed = record.created
        record.entered = {initial.value: record.created}
        return record

    store.update(record.agent, write, durable=False)
    return record
