"""What every benchmark shares: timing side by side, the environments, the table.

Each ``bench/*.py`` measurement exposes ``measure(quick=False) -> list[Row]``
and runs alone as a script; ``bench/run.py`` (``make bench``) runs them all
and prints one table.  Figures are medians of repeated runs with min and
max; a ratio is always taken from two commands run alternately in the same
rounds, so that noise on this shared machine hits both alike.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ROOT / "agents"


# -- figures -----------------------------------------------------------------


@dataclass
class Row:
    """One line of the table.

    ``samples`` are in ``unit`` (``ms``, ``s``, ``MiB``, ``%``, ``x`` or a count);
    the table shows their median, min and max.  ``against`` names what the
    figure is compared with, ``goal`` the target, ``met`` whether it was met
    (None: no goal).
    """

    item: str
    measure: str
    samples: list[float]
    unit: str
    against: str = ""
    goal: str = ""
    met: bool | None = None
    p95: bool = False  # show the 95th percentile instead of min/max
    value: float | None = None  # the headline figure if not the median (a ratio of medians)

    @property
    def median(self) -> float:
        return self.value if self.value is not None else statistics.median(self.samples)


def p95(xs: Sequence[float]) -> float:
    """The 95th percentile (nearest rank) of ``xs``."""
    s = sorted(xs)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


def fmt(value: float, unit: str) -> str:
    """``value`` in ``unit`` with a precision that suits it."""
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.1f}%"
    if unit == "count":
        return f"{value:g}"
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {unit}"


def table(rows: Sequence[Row]) -> str:
    """The rows as one Markdown table (readable as plain text too)."""
    head = ("#", "measure", "median", "min / max (n)", "against", "goal", "met")
    lines = []
    for r in rows:
        if r.p95:
            spread = f"p95 {fmt(p95(r.samples), r.unit)} (n={len(r.samples)})"
        elif len(r.samples) > 1:
            spread = f"{fmt(min(r.samples), r.unit)} / {fmt(max(r.samples), r.unit)} (n={len(r.samples)})"
        else:
            spread = "(n=1)"
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append((r.item, r.measure, fmt(r.median, r.unit), spread, r.against, r.goal, met))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |" for line in lines]
    return "\n".join(out)


def machine() -> str:
    """One line naming the machine: date, cores, memory, Python (a venv or which interpreter), CLI version."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = psutil.virtual_memory().total / 2**30
    try:
        from claude_orchestrator.claude.invocation import find_claude

        cli = subprocess.run([find_claude(), "--version"], capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as exc:  # noqa: BLE001 - the table still prints without it
        cli = f"unknown ({exc})"
    where = "in a venv" if sys.prefix != sys.base_prefix else sys.executable
    return (f"{time.strftime('%Y-%m-%d')}, {platform.system()} {platform.machine()}, {cores} cores, "
            f"{mem:.0f} GiB, Python {platform.python_version()} ({where}), Claude CLI {cli}, toolkit {revision()}")


def revision() -> str:
    """The toolkit checkout's commit, e.g. ``e0d9d10``, or ``unknown``.

    ``+ changes`` follows if the package's or agents/' tracked files differ from it (not bench/'s: the bench
    may be a newer one copied in to measure an older checkout).
    """
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + (" + changes" if git("status", "--porcelain", "--untracked-files=no", "--", "claude_orchestrator", "agents") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def foreign_package() -> str | None:
    """The other checkout whose ``claude_orchestrator`` is imported, or None (this checkout's, or an installed copy).

    A venv with the toolkit installed in editable mode finds the package of the checkout it was installed
    from; the bench, copied into another checkout, measures that one only with ``PYTHONPATH=<checkout>``.
    A checkout is a folder with agents/_bootstrap.py beside the package.
    """
    import claude_orchestrator

    folders = [Path(f).resolve().parent for f in claude_orchestrator.__path__]
    others = [f for f in folders if f != ROOT and (f / "agents" / "_bootstrap.py").exists()]
    return None if ROOT in folders or not others else ", ".join(str(f) for f in others)


# -- running things ----------------------------------------------------------


def timed(cmd: Sequence[str], env: dict[str, str], stdin_text: str | None = None, **kw: Any) -> float:
    """Milliseconds from starting ``cmd`` until it has exited (no pipes held but stdin, which gets ``stdin_text`` if given)."""
    feed: dict[str, Any] = {"input": stdin_text.encode()} if stdin_text is not None else {"stdin": subprocess.DEVNULL}
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, **feed, **kw)
    return (time.perf_counter() - t0) * 1000


def script(env: dict[str, str], name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``agents/<name>.py`` with ``args``; output captured."""
    proc = subprocess.run([sys.executable, str(AGENTS / f"{name}.py"), *args], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise SystemExit(f"{name}.py {' '.join(args)[:80]} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def memory(procs: Sequence[Any], what: str = "rss") -> list[float]:
    """Each of ``procs``' (psutil.Process) ``what`` in MiB: ``rss``, or ``pss`` (shared pages split among
    the processes that share them, from ``/proc/PID/smaps_rollup``: psutil's ``memory_full_info``).

    A process that has gone or cannot be read counts 0 (it holds no memory now).
    """
    import psutil

    out = []
    for p in procs:
        try:
            info = p.memory_full_info() if what != "rss" else p.memory_info()
            out.append(getattr(info, what) / 2**20)
        except psutil.Error:
            out.append(0.0)
    return out


def tree_rss(proc: Any) -> float:
    """RSS in MiB of ``proc`` (a psutil.Process) and all its descendants (0 for any that has gone)."""
    import psutil

    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0.0
    return sum(memory(procs))


def task_stdin(task: str) -> str:
    """What a run's CLI reads on stdin for ``task``, as the supervisor writes it: one stream-json user
    message (``build_argv`` passes ``--input-format stream-json``; plain text makes the CLI exit 1)."""
    from claude_orchestrator.records.channel import stream_json_message

    return stream_json_message(task).decode("ascii")


def wait_until(pred: Callable[[], Any], timeout: float = 120.0, poll: float = 0.02, what: str = "a condition") -> Any:
    """Poll ``pred`` until it returns something true and return that; SystemExit after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"benchmark timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def record(state: Path, name: str) -> dict | None:
    """The agent's status record as stored, or None if absent or unreadable."""
    try:
        return json.loads((state / "status" / f"{name}.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


TERMINAL = {"completed", "failed", "timeout", "memory_exceeded", "killed", "skipped", "lost"}


def ended(state: Path, name: str) -> bool:
    """True once the agent's record is terminal and its supervisor has let go of its life lock."""
    r = record(state, name)
    if not r or r.get("status") not in TERMINAL:
        return False
    from claude_orchestrator.core.locks import is_held

    return not is_held(state / "status" / f"{name}.supervisor.lock")


def hold(paths: Any, name: str) -> int:
    """Take agent ``name``'s life lock as its supervisor would; returns the descriptor (close it to let go)."""
    from claude_orchestrator.core.locks import try_lock

    fd = try_lock(paths.alive_lock(name))
    if fd is None:
        raise SystemExit(f"{name}'s life lock is already held")
    return fd


@contextmanager
def fake_env() -> Iterator[tuple[dict[str, str], Path]]:
    """An environment (and its state root) that runs agents on tests/fake_claude.py, in a temp folder."""
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        fake = Path(tmp) / "claude"
        fake.write_text(f"#!{sys.executable}\n" + (ROOT / "tests" / "fake_claude.py").read_text())
        fake.chmod(0o755)
        state = Path(tmp) / "state"
        env = dict(os.environ, ORCHESTRATOR_HOME=str(state), CLAUDE_BIN=str(fake), ORCHESTRATOR_MAX_PARALLEL="0")
        try:
            yield env, state
        finally:
            _reap(state)


@contextmanager
def real_env() -> Iterator[tuple[dict[str, str], Path, Any]]:
    """An environment that runs agents on the pinned real CLI against the fake Messages API on 127.0.0.1.

    Yields ``(env, state_root, server)``; each use has its own ``CLAUDE_CONFIG_DIR``.
    """
    from claude_orchestrator.claude.invocation import find_claude
    from claude_orchestrator.devtools.fake_api import serve_in_thread

    server = serve_in_thread()
    try:
        with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
            state, config = Path(tmp) / "state", Path(tmp) / "config"
            config.mkdir()
            env = dict(os.environ, ORCHESTRATOR_HOME=str(state), CLAUDE_BIN=find_claude(), CLAUDE_CONFIG_DIR=str(config),
                       ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="bench-offline",
                       CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1", ORCHESTRATOR_MAX_PARALLEL="0")
            for key in ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT"):
                env.pop(key, None)
            try:
                yield env, state, server
            finally:
                _reap(state)
    finally:
        server.shutdown()
        server.server_close()


def _reap(state: Path) -> None:
    """Stop whatever a benchmark left running under ``state`` before its folder goes."""
    status = state / "status"
    if not status.is_dir():
        return
    names = [p.name[: -len(".json")] for p in status.glob("*.json")]
    live = [n for n in names if not ended(state, n)]
    if live:
        subprocess.run([sys.executable, str(AGENTS / "kill_agent.py"), *live, "--grace", "2"],
                       env=dict(os.environ, ORCHESTRATOR_HOME=str(state)), capture_output=True, check=False)
        wait_until(lambda: all(ended(state, n) for n in live), timeout=60, what="leftover agents to stop")

