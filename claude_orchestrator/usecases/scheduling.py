"""When a run may start: ``--max-parallel`` slots and the FIFO queue, in one place.

The launcher asks first (:func:`take_slot_or_enqueue`): a run that finds a
free slot and nobody queued starts at once, else it joins the queue.  A
supervisor whose run waited for its dependencies asks the same way, and a
queued supervisor asks :func:`take_turn` until it is at the head of the
queue and a slot is free.  Both hold the queue lock (``status/.queue.lock``)
while they look, so grant order is FIFO order.

Standard library and filelock only: this is on the launch path.
"""

from __future__ import annotations

import time

from filelock import FileLock

from ..core import locks
from ..core.paths import StatePaths

#: Seconds to wait for the queue lock before giving up (a stuck script holds it).
QUEUE_LOCK_TIMEOUT_S = 30.0


def _queue_lock(paths: StatePaths):
    return FileLock(str(paths.queue_lock), timeout=QUEUE_LOCK_TIMEOUT_S)


def take_slot_or_enqueue(paths: StatePaths, name: str, run_id: str, max_parallel: int) -> tuple[int | None, float | None]:
    """Take a free slot if nobody is queued, else put run ``run_id`` of ``name`` at the end of the queue.

    Returns:
        ``(descriptor holding the slot, time.time() it was granted)``, or
        ``(None, None)`` if the run was queued.

    Raises:
        filelock.Timeout: the queue lock was not had within :data:`QUEUE_LOCK_TIMEOUT_S`.
        OSError: the slots or the queue cannot be written (a read-only or full state root).
    """
    with _queue_lock(paths):
        fd = None if locks.queue_head(paths) else locks.take_slot(paths, max_parallel)
        if fd is None:
            locks.enqueue(paths, name, run_id)
            return None, None
        return fd, time.time()


def take_turn(paths: StatePaths, name: str, max_parallel: int) -> tuple[int | None, float | None]:
    """If ``name`` is at the head of the queue (or the queue is empty) and a slot is free, take it and leave the queue.

    Returns:
        ``(descriptor holding the slot, time.time() it was granted)``; the
        time is stamped under the queue lock, so grant order is FIFO order.
        ``(None, None)`` if it is not this run's turn yet.

    Raises:
        filelock.Timeout, OSError: as :func:`take_slot_or_enqueue`.
    """
    with _queue_lock(paths):
        head = locks.queue_head(paths)
        if head is not None and head != name:
            return None, None
        fd = locks.take_slot(paths, max_parallel)
        if fd is None:
            return None, None
        locks.remove_from_queue(paths, name)
        return fd, time.time()
