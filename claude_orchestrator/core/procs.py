"""Process identity, liveness and stopping (psutil).

A PID read from a file is trusted only together with its process start time
(``psutil.Process.create_time()``): a PID the kernel has reused for another
process is never reported alive and never signalled.
"""

from __future__ import annotations

import math
import os
import signal

import psutil

#: psutil's create_time() is derived from clock ticks since boot; allow for rounding.
START_TIME_TOLERANCE_S = 0.05


def _has_proc_children() -> bool:
    try:
        return os.path.exists(f"/proc/self/task/{os.getpid()}/children")
    except OSError:
        return False


#: Linux lists each thread's children in ``/proc/PID/task/TID/children``
#: (proc(5); since Linux 3.5, with CONFIG_PROC_CHILDREN).
PROC_CHILDREN = _has_proc_children()


def child_pids(pid: int) -> list[int] | None:
    """The PIDs of ``pid``'s children from ``/proc/PID/task/*/children``.

    This reads one small file per thread of ``pid``, where psutil's
    ``Process.children()`` reads ``/proc/*/stat`` of every process on the
    machine; a supervisor sampling its tree once a second with psutil costs
    a share of a core that grows with the number of processes, so with 200
    agents the supervisors together took all of this 2-core machine.

    proc(5) warns that a child created while the files are read can be
    missed; callers that must not miss one (stopping a tree) use psutil.

    Returns:
        The children's PIDs ([] if ``pid`` is gone), or None where the kernel
        does not offer these files.
    """
    if not PROC_CHILDREN:
        return None
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    out: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:  # the thread or the process ended meanwhile
            continue
    return out


def descendant_pids(pid: int) -> list[int] | None:
    """The PIDs of every descendant of ``pid`` (see :func:`child_pids`), or None where unsupported."""
    if not PROC_CHILDREN:
        return None
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = child_pids(todo.pop()) or []
        out.extend(kids)
        todo.extend(kids)
    return out


def start_time(pid: int) -> float | None:
    """The start time of process ``pid`` (seconds since the epoch), or None if it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied, ValueError):
        return None


def find_entries(entries: object) -> list[psutil.Process]:
    """The live processes named by ``[[pid, start time], ...]`` (a record's ``tree`` or ``orphans``), each by :func:`find_process`.

    The entries come from a file, so are untrusted: any that is not a pair of
    numbers, names PID 1 or lower or this process, is ignored; at most 10000
    are read.  A PID written as a whole float (``123.0``) counts.
    """
    found: dict[int, psutil.Process] = {}
    for entry in entries[:10000] if isinstance(entries, list) else []:
        if not (isinstance(entry, list) and len(entry) == 2):
            continue
        pid, started = entry
        if isinstance(pid, float) and pid.is_integer():
            pid = int(pid)
        if isinstance(pid, bool) or isinstance(started, bool) or not isinstance(pid, int) or pid <= 1 or pid == os.getpid():
            continue
        p = find_process(pid, started)
        if p is not None:
            found[p.pid] = p
    return list(found.values())


def find_process(pid: int | None, started: float | None) -> psutil.Process | None:
    """The live process with this PID *and* this start time, or None.

    A zombie counts as gone.  With ``started`` None the PID alone is not
    trusted and None is returned.
    """
    if not isinstance(pid, int) or pid <= 0 or not isinstance(started, (int, float)) or not math.isfinite(started):
        return None  # a PID alone (or with a NaN start time, which matches nothing) is never trusted
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > START_TIME_TOLERANCE_S:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def become_subreaper() -> bool:
    """Make this process a child subreaper (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``).

    Orphaned descendants (say, a grandchild that called setsid and whose
    parent exited) are then reparented to us instead of init, so they stay in
    our process tree where they can be measured and stopped.  Returns False
    where the call is unavailable.
    """
    try:
        import ctypes  # here: only the supervisor calls this; the readers of procs need no ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER = 36
    except (OSError, AttributeError):
        return False


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False if the group is gone."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def stop_tree(procs: list[psutil.Process], grace_s: float, pgid: int | None = None) -> list[psutil.Process]:
    """Stop processes the POSIX way: SIGTERM, up to ``grace_s`` seconds, then SIGKILL.

    Args:
        procs: verified live processes (see :func:`find_process`); their
            descendants are collected first so nothing escapes when a parent dies.
        grace_s: seconds between SIGTERM and SIGKILL.
        pgid: a process group to signal as well.

    Returns:
        The processes still alive afterwards (normally none).
    """
    targets: dict[int, psutil.Process] = {}
    for p in procs:
        try:
            targets[p.pid] = p
            for c in p.children(recursive=True):
                targets[c.pid] = c
        except psutil.Error:
            pass
    if pgid:
        signal_group(pgid, signal.SIGTERM)
    for p in targets.values():
        try:
            p.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(list(targets.values()), timeout=grace_s)
    if alive:
        if pgid:
            signal_group(pgid, signal.SIGKILL)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(alive, timeout=2.0)
    return alive
