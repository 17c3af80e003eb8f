"""Shared fixtures: an isolated state root, the fake API, the real and the fake CLI, a Slurm cluster.

Every test gets its own ``ORCHESTRATOR_HOME``; tests of the real CLI also get
their own ``CLAUDE_CONFIG_DIR`` so no CLI state leaks into the user's home.
A test fails if it leaves a supervisor or CLI process alive.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from claude_orchestrator.claude.invocation import LOCAL_CLI, PINNED_CLIS
from claude_orchestrator.devtools.fake_api import serve_in_thread
from claude_orchestrator.devtools.slurm_cluster import SlurmCluster, missing

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ROOT / "agents"

#: The statuses a run ends in.
TERMINAL = frozenset({"completed", "failed", "timeout", "killed", "lost"})


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Toolkit:
    """Runs the scripts in agents/ as a user would, against one state root."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def run(self, script: str, *args: str, timeout: float = 60, input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(AGENTS / f"{script}.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            cwd=str(cwd or self.root),
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def record(self, name: str) -> dict | None:
        try:
            return json.loads((self.root / "status" / f"{name}.json").read_text())
        except FileNotFoundError:
            return None

    def wait_running(self, name: str, timeout: float = 30) -> dict:
        return wait_until(
            lambda: (r := self.record(name)) and r["status"] == "running" and r,
            timeout=timeout,
            what=f"{name} running",
        )

    def wait_terminal(self, name: str, timeout: float = 60) -> dict:
        return wait_until(
            lambda: (r := self.record(name)) and r["status"] in TERMINAL and r,
            timeout=timeout,
            what=f"{name} to end",
        )


class Lines:
    """Lines of a child's stream, read by a thread, so that a reader waits with a deadline, never for ever."""

    def __init__(self, stream) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        with stream:  # closed here, at its end: never under a reading thread's feet
            for line in stream:
                self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def next(self, timeout: float = 60, end_ok: bool = False) -> str | None:
        """The next line; None if the stream ended (an error unless ``end_ok``)."""
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s") from None
        assert line is not None or end_ok, "the stream ended"
        return line

    def until(self, done, limit: int = 1000) -> list[str]:
        """Lines up to the first one after which ``done(lines so far)`` is true."""
        lines: list[str] = []
        for _ in range(limit):
            lines.append(self.next())
            if done(lines):
                return lines
        raise AssertionError(f"no end condition after {limit} lines: {lines}")


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


@pytest.fixture
def state_root(tmp_path, monkeypatch) -> Path:
    """A fresh ORCHESTRATOR_HOME; fails the test if a run's process outlives it."""
    root = tmp_path / "home"
    root.mkdir()
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(root))
    yield root
    leaked = stop_leftovers(root)
    assert not leaked, f"processes left running: {leaked}"


@pytest.fixture
def fake_claude(tmp_path) -> Path:
    """An executable fake ``claude`` (tests/fake_claude.py under this interpreter)."""
    exe = tmp_path / "bin" / "claude"
    exe.parent.mkdir()
    exe.write_text(f"#!{sys.executable}\n" + (Path(__file__).parent / "fake_claude.py").read_text())
    exe.chmod(0o755)
    return exe


@pytest.fixture
def base_env(state_root) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env["ORCHESTRATOR_HOME"] = str(state_root)
    return env


@pytest.fixture
def fake_kit(state_root, base_env, fake_claude, tmp_path) -> Toolkit:
    """The toolkit wired to the fake ``claude``."""
    argv_dir = tmp_path / "argv"
    argv_dir.mkdir()
    env = dict(base_env, CLAUDE_BIN=str(fake_claude), FAKE_CLAUDE_ARGV_DIR=str(argv_dir))
    return Toolkit(state_root, env)


@pytest.fixture
def fake_api():
    """The fake Messages API on 127.0.0.1, stopped after the test."""
    server = serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> SlurmCluster:
    """A started one-node Slurm cluster, one per test process (pytest-xdist worker), stopped at the end.

    Its folder is under the session's temp dir; ``cluster.env`` holds its ``SLURM_CONF``.  Tests share
    it: each cancels the jobs it leaves running.  Skipped when Slurm is not installed, unless
    ``ORCHESTRATOR_REQUIRE_SLURM=1`` (set by .ci/run), which makes that a failure.
    """
    message = missing()
    if message:
        if os.environ.get("ORCHESTRATOR_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


#: The CLI versions `make install` puts into the project: today's (CLAUDE_VERSION, at
#: LOCAL_CLI) first, then the older ones the tests pin too (CLAUDE_TEST_VERSIONS).
CURRENT_CLI_VERSION = "2.1.330"
CLI_VERSIONS = (CURRENT_CLI_VERSION, "2.1.197")
_cli_versions_seen: dict[Path, str] = {}


def cli_path(version: str) -> Path:
    """The installed CLI of ``version`` (fails, never skips, if `make install` did not put it there)."""
    path = LOCAL_CLI if version == CURRENT_CLI_VERSION else PINNED_CLIS / version / "node_modules" / ".bin" / "claude"
    assert os.access(path, os.X_OK), f"{path} is missing: run `make install`"
    if path not in _cli_versions_seen:
        done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60)
        _cli_versions_seen[path] = done.stdout.strip()
    assert _cli_versions_seen[path].startswith(version), f"{path} is {_cli_versions_seen[path]!r}, not {version}: run `make install`"
    return path


@pytest.fixture(params=CLI_VERSIONS)
def cli_version(request) -> str:
    """Each pinned CLI version in turn (test ids ``[2.1.330]``, ``[2.1.197]``)."""
    return request.param


@pytest.fixture
def real_cli() -> Path:
    """Today's Claude CLI installed by ``make install`` (never skipped: CI must run these).

    A module that must run on every pinned version overrides this fixture with
    one that takes :func:`cli_version` (see test_real_cli.py).
    """
    return cli_path(CURRENT_CLI_VERSION)


@pytest.fixture
def real_kit(state_root, base_env, fake_api, real_cli, tmp_path) -> Toolkit:
    """The toolkit wired to the real CLI, talking to the fake API, with its own config dir."""
    config = tmp_path / "claude-config"
    config.mkdir()
    env = dict(
        base_env,
        CLAUDE_BIN=str(real_cli),
        CLAUDE_CONFIG_DIR=str(config),
        ANTHROPIC_BASE_URL=fake_api.url,
        ANTHROPIC_API_KEY="test-key-offline",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        # what the orchestrator's own environment would carry; it must be stripped
        CLAUDECODE="1",
        CLAUDE_CODE_ENTRYPOINT="cli",
    )
    kit = Toolkit(state_root, env)
    kit.api = fake_api
    return kit
