"""The processes a test's runs left: found through the records under a state root, checked by start time.

Used by tests/conftest.py (its fixtures and the tests that import these from it) and by the docs'
harness (tests/docs_harness.py), which stops what a document's agents left.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def process_gone(pid: int, started: float) -> bool:
    """Whether the process ``pid`` started at ``started`` has ended (or is a zombie)."""
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - started) > 0.05 or p.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_if_ours(pid: int | None, started: float | None) -> None:
    """SIGKILL a process of ours if it still runs (PID checked with its start time)."""
    if pid and started is not None and not process_gone(pid, started):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def _live_processes(root: Path) -> list[psutil.Process]:
    found = []
    status = root / "status"
    if not status.is_dir():
        return found
    for f in status.glob("*.json"):
        try:
            rec = json.loads(f.read_bytes())
        except (ValueError, RecursionError, OSError):
            continue
        if not isinstance(rec, dict):
            continue
        for pid_key, start_key in (("supervisor_pid", "supervisor_started"), ("pid", "pid_started")):
            pid, started = rec.get(pid_key), rec.get(start_key)
            if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(started, (int, float)):
                continue
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - started) < 0.05 and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except psutil.Error:
                pass
    return found


def stop_leftovers(root: Path, timeout: float = 5) -> list[psutil.Process]:
    """Wait up to ``timeout`` s for the runs' processes under ``root`` to exit; kill and return those left.

    A supervisor writes the final record a moment before it exits: this gives it that moment.
    (Not psutil.wait_procs: an exited supervisor stays a zombie until init reaps it, which
    wait_procs counts as alive; _live_processes leaves zombies out.)
    """
    deadline = time.monotonic() + timeout
    leaked = _live_processes(root)
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = _live_processes(root)
    for p in leaked:
        try:
            p.kill()
        except psutil.Error:
            pass
    return leaked


def tmux_on(socket: str, env: dict[str, str]) -> Callable[..., str]:
    """``tmux(*args)``: runs ``tmux -L SOCKET -f /dev/null ARGS`` (a tmux server of the test's own, no
    user configuration) in ``env`` and returns its stdout; fails the test if tmux fails."""

    def tmux(*args: str) -> str:
        done = subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], env=env, capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    return tmux
