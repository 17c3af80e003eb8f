"""Unit tests of claude_orchestrator/scheduling.py: --max-parallel slots and the FIFO queue.

In process: a queued run counts as alive while its life lock
(``status/<name>.supervisor.lock``) is held, which these tests do with
:func:`locks.try_lock`; a slot is given back by closing its descriptor.
flock locks taken through separate opens conflict within one process too.
"""

from __future__ import annotations

import os

import pytest

from claude_orchestrator.core import locks
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.usecases.scheduling import take_slot_or_enqueue, take_turn


class Fds:
    """The descriptors a test opened, all closed at its end."""

    def __init__(self) -> None:
        self.open: set[int] = set()

    def keep(self, fd: int | None) -> int | None:
        if fd is not None:
            self.open.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self.open.remove(fd)
        os.close(fd)

    def close_all(self) -> None:
        for fd in sorted(self.open):
            os.close(fd)
        self.open.clear()


@pytest.fixture
def fds():
    kept = Fds()
    yield kept
    kept.close_all()


@pytest.fixture
def paths(tmp_path) -> StatePaths:
    return StatePaths(tmp_path)


def alive(paths: StatePaths, fds: Fds, name: str) -> int:
    """Hold ``name``'s life lock, as its supervisor would."""
    fd = fds.keep(locks.try_lock(paths.alive_lock(name)))
    assert fd is not None
    return fd


def launch(paths: StatePaths, fds: Fds, name: str, max_parallel: int) -> int | None:
    """A launch of ``name`` as the launcher does it: alive, then a slot or the queue; the slot's fd or None."""
    alive(paths, fds, name)
    fd, granted = take_slot_or_enqueue(paths, name, f"run-{name}", max_parallel)
    assert (fd is None) == (granted is None)
    return fds.keep(fd)


def test_grants_up_to_max_parallel_then_queues_fifo(paths, fds):
    got = {name: launch(paths, fds, name, 2) for name in ("a1", "a2", "q1", "q2", "q3")}
    assert got["a1"] is not None and got["a2"] is not None
    assert (got["q1"], got["q2"], got["q3"]) == (None, None, None)
    assert locks.queue_positions(paths) == {"q1": 1, "q2": 2, "q3": 3}
    assert locks.queue_head(paths) == "q1"
    entries = locks.queue_entries(paths)
    assert [entry.read_text() for entry, _ in entries] == ["run-q1\n", "run-q2\n", "run-q3\n"]


def test_grant_time_is_returned(paths, fds):
    alive(paths, fds, "a1")
    fd, granted = take_slot_or_enqueue(paths, "a1", "r1", 1)
    fds.keep(fd)
    assert fd is not None and isinstance(granted, float)


def test_slots_are_distinct_locks(paths, fds):
    a = launch(paths, fds, "a1", 2)
    b = launch(paths, fds, "a2", 2)
    assert os.fstat(a).st_ino != os.fstat(b).st_ino
    assert sorted(p.name for p in paths.slots_dir.iterdir()) == ["slot-0.lock", "slot-1.lock"]


def test_a_free_slot_is_not_taken_past_the_queue(paths, fds):
    """Someone is queued: a newcomer queues behind them even if a slot is free (FIFO)."""
    a1 = launch(paths, fds, "a1", 1)
    assert launch(paths, fds, "q1", 1) is None
    fds.close(a1)  # a slot is free now, but q1 has not taken it yet
    assert launch(paths, fds, "q2", 1) is None
    assert locks.queue_positions(paths) == {"q1": 1, "q2": 2}


def test_take_turn_only_for_the_head(paths, fds):
    a1 = launch(paths, fds, "a1", 1)
    for name in ("q1", "q2"):
        assert launch(paths, fds, name, 1) is None
    assert take_turn(paths, "q1", 1) == (None, None)  # its turn, but no slot free
    assert take_turn(paths, "q2", 1) == (None, None)
    fds.close(a1)
    assert take_turn(paths, "q2", 1) == (None, None)  # a slot is free, but q1 is ahead
    assert locks.queue_positions(paths) == {"q1": 1, "q2": 2}
    fd, granted = take_turn(paths, "q1", 1)
    fds.keep(fd)
    assert fd is not None and isinstance(granted, float)
    assert locks.queue_positions(paths) == {"q2": 1}  # q1 left the queue
    assert take_turn(paths, "q2", 1) == (None, None)  # q1 holds the only slot
    fds.close(fd)
    q2 = fds.keep(take_turn(paths, "q2", 1)[0])
    assert q2 is not None
    assert locks.queue_positions(paths) == {}


def test_releasing_a_slot_lets_the_head_take_it(paths, fds):
    a1 = launch(paths, fds, "a1", 2)
    a2 = launch(paths, fds, "a2", 2)
    assert launch(paths, fds, "q1", 2) is None
    fds.close(a2)
    q1 = fds.keep(take_turn(paths, "q1", 2)[0])
    assert q1 is not None
    assert locks.take_slot(paths, 2) is None  # a1 and q1 hold both
    fds.close(a1)
    assert launch(paths, fds, "n1", 2) is not None  # the queue is empty again: a newcomer starts at once


def test_take_turn_with_an_empty_queue(paths, fds):
    alive(paths, fds, "a1")
    fd = fds.keep(take_turn(paths, "a1", 1)[0])
    assert fd is not None
    assert take_turn(paths, "a2", 1) == (None, None)  # no slot left


def test_a_dead_entry_is_skipped_and_removed(paths, fds):
    """A queued run whose supervisor is gone (life lock free) never blocks the queue."""
    a1 = launch(paths, fds, "a1", 1)
    dead = alive(paths, fds, "dead")
    assert take_slot_or_enqueue(paths, "dead", "run-dead", 1) == (None, None)
    assert launch(paths, fds, "q1", 1) is None
    assert locks.queue_positions(paths) == {"dead": 1, "q1": 2}
    fds.close(dead)  # its supervisor died
    fds.close(a1)
    assert locks.queue_head(paths) == "q1"
    assert locks.queue_positions(paths) == {"q1": 1}  # the dead entry was removed on the way
    q1 = fds.keep(take_turn(paths, "q1", 1)[0])
    assert q1 is not None


def test_a_dead_head_does_not_queue_a_newcomer(paths, fds):
    """Only dead entries queued and a slot free: a newcomer takes the slot at once."""
    locks.enqueue(paths, "ghost", "run-ghost")  # nobody holds ghost's life lock
    assert launch(paths, fds, "n1", 1) is not None
    assert locks.queue_positions(paths) == {}


def test_queued_entries_need_their_life_lock(paths, fds):
    """Queueing without a held life lock counts as a crashed run: the next look removes it."""
    a1 = launch(paths, fds, "a1", 1)
    assert take_slot_or_enqueue(paths, "nolock", "run-nolock", 1) == (None, None)
    assert locks.queue_positions(paths) == {"nolock": 1}
    fds.close(a1)
    assert launch(paths, fds, "n1", 1) is not None
    assert locks.queue_positions(paths) == {}
