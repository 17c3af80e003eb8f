"""A supervisor's waits before its CLI may start: for its dependencies (``waiting``), then for a slot (``queued``).

The slot-or-queue decision itself is :mod:`..usecases.scheduling`'s, shared with the
launcher; here are the loops that wait, each ended early by a stop request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..core import locks
from ..core.errors import BadRecord
from ..core.paths import StatePaths
from ..core.states import ACTIVE, State
from ..executors.registry import executor_of
from ..records.status_record import RecordStore
from ..usecases.control import reconcile
from ..usecases.scheduling import take_turn

#: How often a queued run looks for its turn, in seconds.
QUEUE_POLL_S = 0.1
#: Seconds between re-reads of the dependencies' records if no change wakes the wait.
DEPENDENCY_RECHECK_S = 1.0
_ACTIVE_NAMES = frozenset(s.value for s in ACTIVE)


def dependency_states(store: RecordStore, deps: list[str], judge_local: bool = True) -> dict[str, str]:
    """Each ``--after`` agent's state: ``{agent: state}``.

    A state as :class:`..core.states.State`'s value, reconciled (a run whose
    supervisor is gone is ``lost``), or ``gone`` (no record) or
    ``unreadable`` (a bad record file).  Without ``judge_local`` (a supervisor
    on another host than the launcher's, as a cluster job's), a run of a
    host-bound executor (:attr:`..executors.base.Executor.host_bound`, a local
    run) is read as it is, never reconciled: its liveness is a lock held on
    another host, which a lock on a shared filesystem cannot tell.
    """
    states: dict[str, str] = {}
    for dep in deps:
        try:
            found = store.read(dep)
            if found is None:
                states[dep] = "gone"
            elif not judge_local and executor_of(found).host_bound:
                states[dep] = found.status.value
            else:
                states[dep] = reconcile(store, found).status.value
        except BadRecord:
            states[dep] = "unreadable"
    return states


def await_dependencies(
    paths: StatePaths, store: RecordStore, deps: list[str], stopped: Callable[[], bool], judge_local: bool = True
) -> dict[str, str]:
    """Sleep until no ``--after`` agent is active, or a stop request (``stopped()``) came.

    Woken by changes in ``status/`` (watchdog), with a re-read every
    :data:`DEPENDENCY_RECHECK_S` seconds for a missed event.

    Returns:
        Their last states, as :func:`dependency_states` (``judge_local`` passed on; empty if stopped before the first look).
    """
    from ..usecases.watch import DirWatcher  # watchdog: only a run that waits for its dependencies loads it

    states: dict[str, str] = {}
    with DirWatcher(paths.status_dir) as watcher:
        while not stopped():
            states = dependency_states(store, deps, judge_local)
            if not _ACTIVE_NAMES.intersection(states.values()):
                break
            watcher.wait(DEPENDENCY_RECHECK_S)
    return states


def unmet(states: dict[str, str], after_any: bool) -> str | None:
    """Why the run must be skipped: the dependencies that did not complete (``"a1 failed, a2 gone"``), or None.

    With ``after_any`` (``--after-any``) any end will do: None.
    """
    bad = {d: s for d, s in states.items() if s != State.COMPLETED.value}
    if not bad or after_any:
        return None
    return ", ".join(f"{d} {s}" for d, s in bad.items())


def await_slot(paths: StatePaths, name: str, max_parallel: int, stopped: Callable[[], bool]) -> tuple[int, float] | None:
    """Wait in the FIFO queue until ``name`` is at its head and a slot is free (:func:`..usecases.scheduling.take_turn`).

    Returns:
        ``(descriptor holding the slot, time.time() it was granted)``, or
        None if a stop request came first (the queue entry is then removed).

    Raises:
        filelock.Timeout, OSError: as :func:`..usecases.scheduling.take_turn`.
    """
    while not stopped():
        fd, granted = take_turn(paths, name, max_parallel)
        if fd is not None and granted is not None:
            return fd, granted
        time.sleep(QUEUE_POLL_S)
    locks.remove_from_queue(paths, name)
    return None
