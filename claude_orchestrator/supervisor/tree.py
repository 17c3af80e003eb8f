"""The supervisor's process tree: every descendant of the supervisor, measured and stopped.

The supervisor is a child subreaper (:func:`..core.procs.become_subreaper`), so a
descendant that called setsid and lost its parent is reparented to it and
stays in this tree.  :class:`ProcessTree` finds the descendants, reaps those
that exited, samples their summed RSS once a second (keeping the peak and the
50 % / 80 % warnings), signals the whole tree, and stops what a run or a lost
earlier run left behind.  Processes named by a file are trusted only with
their start time (:func:`..core.procs.find_entries`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

import psutil

from ..core import procs
from ..core.limits import MEMORY_LEVELS
from ..records.shape import utc_now

#: Seconds to wait for the CLI to be reaped after SIGKILL.
KILL_WAIT_S = 10.0


class ProcessTree:
    """The live descendants of this process, with what was learnt of them.

    Attributes:
        seen: every descendant ever found: ``{pid: start time}`` (seconds since
            the epoch, as psutil reports it); the record's ``tree``.
        peak_mb: the highest tree RSS sampled, in MiB.
        memory_warnings: the record's ``memory_warnings``: ``{"level",
            "rss_mb", "limit_mb", "at"}`` once per level reached.

    Args:
        log: where to say what was done (the supervisor's log).
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.me = psutil.Process()
        self.seen: dict[int, float] = {}
        self.peak_mb = 0.0
        self.memory_warnings: list[dict[str, Any]] = []
        self._warned: set[str] = set()
        self._known: dict[int, psutil.Process] = {}  # descendants found by the last sample

    def entries(self) -> list[list[float]]:
        """``[[pid, start time], ...]`` of every descendant seen: the record's ``tree``."""
        return [[pid, started] for pid, started in self.seen.items()]

    def descendants(self, thorough: bool = True) -> list[psutil.Process]:
        """Every live (not zombie) descendant: the CLI's tree and any orphan reparented to us.

        ``thorough=False`` (the once-a-second sample) finds them through
        :func:`..core.procs.descendant_pids`, whose cost grows with the tree rather
        than with every process on the machine, and keeps their
        ``psutil.Process`` objects between samples; stopping a tree uses
        psutil's full scan, which misses nothing.  Each one found is added to
        :attr:`seen`.
        """
        pids = None if thorough else procs.descendant_pids(self.me.pid)
        if pids is None:
            try:
                kids = self.me.children(recursive=True)
            except psutil.Error:
                return []
        else:
            kids = self._lookup(pids)
        out = []
        for p in kids:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
                    self.seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                pass
        return out

    def _lookup(self, pids: list[int]) -> list[psutil.Process]:
        """``psutil.Process`` objects for ``pids``, reusing those of the last sample (gone ones are left out)."""
        kids = []
        known, self._known = self._known, {}
        for pid in pids:
            p = known.get(pid)
            if p is None:
                try:
                    p = psutil.Process(pid)
                except psutil.Error:
                    continue
            self._known[pid] = p
            kids.append(p)
        return kids

    def reap(self, keep: int | None) -> None:
        """Reap exited children other than ``keep`` (the CLI, waited for by its Popen): orphans reparented to us."""
        pids = procs.child_pids(self.me.pid)
        if pids is None:
            try:
                pids = [p.pid for p in self.me.children()]
            except psutil.Error:
                return
        for pid in pids:
            if pid == keep:
                continue
            try:
                os.waitpid(pid, os.WNOHANG)  # reaps it if it has exited; (0, 0) if it still runs
            except ChildProcessError:
                pass

    def sample(self, limit_mb: float) -> float:
        """The tree's RSS now, in MiB; updates :attr:`peak_mb` and, against ``limit_mb`` (0: none), the warnings."""
        total = 0
        for p in self.descendants(thorough=False):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        mb = total / (1024 * 1024)
        self.peak_mb = max(self.peak_mb, mb)
        if limit_mb:
            for level, fraction in MEMORY_LEVELS:
                if mb >= limit_mb * fraction and level not in self._warned:
                    self._warned.add(level)
                    self.memory_warnings.append({"level": level, "rss_mb": round(mb, 1), "limit_mb": limit_mb, "at": utc_now()})
                    self.log(f"memory {level}: tree RSS {mb:.0f} MiB is {mb / limit_mb:.0%} of the {limit_mb:.0f} MiB limit")
        return mb

    def signal(self, pgid: int, sig: int) -> None:
        """Send ``sig`` to process group ``pgid`` (the CLI's) and to every descendant (setsid ones too)."""
        procs.signal_group(pgid, sig)
        for p in self.descendants():
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass

    def stop_leftovers(self, pgid: int, grace_s: float) -> None:
        """Stop what a run left behind (its tools' background processes): SIGTERM, ``grace_s`` seconds, SIGKILL; then reap."""
        left = self.descendants()
        if left:
            self.log(f"stopping {len(left)} leftover process(es) of the run: {[p.pid for p in left]}")
            procs.signal_group(pgid, signal.SIGTERM)
            procs.stop_tree(left, grace_s=grace_s)
        self.reap(None)

    def stop_cli(self, proc: subprocess.Popen, grace_s: float) -> None:
        """Stop a running CLI's whole tree (SIGTERM, ``grace_s`` seconds, SIGKILL), then what is left; reap it."""
        if proc.poll() is None:
            self.log(f"stopping the CLI's tree (pid {proc.pid}): SIGTERM, SIGKILL after {grace_s:g} s")
            self.signal(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.signal(proc.pid, signal.SIGKILL)
                proc.wait(timeout=KILL_WAIT_S)
        self.stop_leftovers(proc.pid, grace_s)

    def stop_orphans(self, entries: Any, grace_s: float) -> list[int]:
        """Stop the processes a lost earlier run of the agent left running.

        Args:
            entries: the record's ``orphans``, ``[[pid, start time], ...]``
                (untrusted: each is stopped only if a process with that PID
                *and* start time still runs).
            grace_s: seconds from SIGTERM (to it, its descendants and its
                process group if it leads one) to SIGKILL.

        Returns:
            The PIDs found (and stopped): the record's ``orphans_stopped``.
        """
        found = procs.find_entries(entries)
        pids = [p.pid for p in found]
        if not found:
            self.log("no process of the lost earlier run is left")
            return pids
        self.log(f"stopping {len(found)} process(es) a lost earlier run left: {pids} (SIGTERM, SIGKILL after {grace_s:g} s)")
        for p in found:
            try:
                if os.getpgid(p.pid) == p.pid:
                    procs.signal_group(p.pid, signal.SIGTERM)
            except OSError:
                pass
        left = procs.stop_tree(found, grace_s=grace_s)
        if left:
            self.log(f"could not stop {[p.pid for p in left]}")
        return pids
