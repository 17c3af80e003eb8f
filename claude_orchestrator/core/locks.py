"""Locks that outlive a function call: the supervisor's life lock, parallel slots, the FIFO queue.

All are ``flock`` locks taken through filelock's :func:`filelock.lock_descriptor`
on descriptors we own, so that a lock can be handed from the launcher to the
supervisor it spawns (``pass_fds``) and is dropped by the kernel when the
last process holding it dies: a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from filelock import lock_descriptor

from .modes import file_mode
from .paths import NAME_RE, StatePaths


def try_lock(path: Path) -> int | None:
    """Take the exclusive lock on ``path`` without waiting.

    Returns:
        The open descriptor that holds the lock (close it to release), or None
        if another open file description holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, file_mode())  # a group shares a state root: it takes the locks too
    try:
        if lock_descriptor(fd, blocking=False):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def lock_within(path: Path, timeout_s: float, poll_s: float = 0.02) -> int | None:
    """:func:`try_lock` repeated for up to ``timeout_s`` seconds; None if still held."""
    deadline = time.monotonic() + timeout_s
    while True:
        fd = try_lock(path)
        if fd is not None or time.monotonic() >= deadline:
            return fd
        time.sleep(poll_s)


def is_held(path: Path) -> bool:
    """True if some process holds the lock on ``path`` (probed by taking it briefly).

    Opens the file read-only and creates nothing (``flock`` does not need
    write access), so it works on a read-only or full state root.  A symlink
    is never followed: it holds no lock of ours.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:  # absent, a symlink, unreadable: no supervisor holds it
        return False
    try:
        if lock_descriptor(fd, blocking=False):
            return False
        return True
    finally:
        os.close(fd)


def take_slot(paths: StatePaths, max_parallel: int) -> int | None:
    """Take a free slot among ``0..max_parallel-1``; its held descriptor, or None if all are taken.

    A slot file that cannot be opened (a folder or a symlink in its place) is
    passed over, so one bad entry does not block the others.

    Raises:
        OSError: no slot is free and at least one could not be opened (say,
            the state root is read-only).
    """
    failure: OSError | None = None
    for k in range(max_parallel):
        try:
            fd = try_lock(paths.slot(k))
        except OSError as exc:
            failure = failure or exc
            continue
        if fd is not None:
            return fd
    if failure is not None:
        raise failure
    return None


def queue_entries(paths: StatePaths) -> list[tuple[Path, str]]:
    """The queue in FIFO order: ``(entry file, agent name)`` pairs.

    Only regular files named ``<seq>-<agent>`` count; anything else there is
    not an entry (and an unreadable queue folder is an empty queue).
    """
    try:
        with os.scandir(paths.queue_dir) as it:
            names = sorted(e.name for e in it if e.is_file(follow_symlinks=False))
    except OSError:
        return []
    out = []
    for entry in names:
        _, _, agent = entry.partition("-")
        if NAME_RE.fullmatch(agent):
            out.append((paths.queue_dir / entry, agent))
    return out


def enqueue(paths: StatePaths, name: str, run_id: str) -> Path:
    """Add a queue entry for ``name`` (named by a nanosecond clock, so sorted = FIFO)."""
    paths.queue_dir.mkdir(parents=True, exist_ok=True)
    entry = paths.queue_dir / f"{time.time_ns():020d}-{name}"
    entry.write_text(run_id + "\n")
    return entry


def queue_head(paths: StatePaths) -> str | None:
    """The agent at the head of the queue, or None if it is empty.

    Entries at the front whose supervisor is gone (life lock free) are removed
    on the way, so a crashed queued run never blocks the queue.
    """
    for entry, agent in queue_entries(paths):
        if is_held(paths.alive_lock(agent)):
            return agent
        try:
            entry.unlink()
        except OSError:  # gone already, or a read-only state root: it is passed over all the same
            pass
    return None


def queue_positions(paths: StatePaths) -> dict[str, int]:
    """``{agent: 1-based place in the queue}`` for every queued agent."""
    return {agent: i for i, (_, agent) in enumerate(queue_entries(paths), start=1)}


def remove_from_queue(paths: StatePaths, name: str) -> None:
    """Remove ``name``'s queue entries, if any."""
    for entry, agent in queue_entries(paths):
        if agent == name:
            try:
                entry.unlink()
            except FileNotFoundError:
                pass
