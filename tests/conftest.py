"""Shared fixtures: an isolated state root, the fake API, the real and the fake CLI, a Slurm cluster.

Every test gets its own ``ORCHESTRATOR_HOME``; tests of the real CLI also get
their own ``CLAUDE_CONFIG_DIR`` so no CLI state leaks into the user's home.
A test fails if it leaves a supervisor or CLI process alive.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest import mock

import pytest
from processes import kill_if_ours, process_gone, stop_leftovers  # noqa: F401 (the tests import them from here)

from claude_orchestrator.claude.invocation import LOCAL_CLI, PINNED_CLIS
from claude_orchestrator.core import states
from claude_orchestrator.devtools.fake_api import serve_in_thread
from claude_orchestrator.devtools.slurm_cluster import SlurmCluster, missing

ROOT = Path(__file__).resolve().parent.parent
AGENTS = ROOT / "agents"

#: The statuses a run ends in, as a record spells them (the package's own list: core.states.TERMINAL).
TERMINAL = frozenset(state.value for state in states.TERMINAL)


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


def wait_cli_quiet(rec: dict) -> None:
    """Until a run's fake CLI in a hanging mode has written all it writes before it hangs: its init event and
    the echo of its task (``isReplay``), parsed from the run's transcript.

    A test that kills the supervisor and expects the CLI to live on must wait for this, not for the first
    line: killing the supervisor between the two closes the pipe under the echo, and the fake CLI dies of
    the broken pipe (CI failed on it once).
    """

    def echoed() -> bool:
        try:
            with open(rec["transcript_file"], encoding="utf-8", errors="replace") as f:
                lines = [line for line in f if line.endswith("\n")]
        except FileNotFoundError:
            return False
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("isReplay") is True:
                return True
        return False

    wait_until(echoed, what="the CLI's init event and the echo of its task")


class Toolkit:
    """Runs the scripts in agents/ as a user would, against one state root."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env
        self.started: list[Background] = []

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

    def start(self, script: str, *args: str) -> Background:
        """Start ``agents/<script>.py ARGS`` in the background, as a user would with ``&``; see :class:`Background`.

        The kit's fixture stops whatever is still running after the test (:meth:`stop_started`).
        """
        started = Background(self, script, *args)
        self.started.append(started)
        return started

    def stop_started(self) -> None:
        """Stop every background script :meth:`start` started that still runs."""
        for started in self.started:
            started.stop()

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
    """The lines of a child's stream, read by a thread from the start, so that a reader waits with a deadline, never for ever.

    :meth:`next` and :meth:`until` hand the lines out in order, each once; :meth:`expect`
    searches every line, handed out or not; :attr:`seen` holds every line read so far.
    Reading from the start also keeps the child from blocking on a full pipe.
    """

    def __init__(self, stream) -> None:
        self.seen: list[str] = []
        self.ended = False
        self._next = 0  # index in ``seen`` of the line next() hands out
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        with stream:  # closed here, at its end: never under a reading thread's feet
            for line in stream:
                with self._cond:
                    self.seen.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self.ended = True
            self._cond.notify_all()

    def _wait(self, deadline: float, timeout: float, what: str) -> None:
        """Wait (holding the lock) for the next line or the end; AssertionError once ``deadline`` has passed."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{what} within {timeout} s; lines so far: {self.seen}")
        self._cond.wait(left)

    def next(self, timeout: float = 60, end_ok: bool = False) -> str | None:
        """The next line; None if the stream ended (an error unless ``end_ok``)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._next == len(self.seen) and not self.ended:
                self._wait(deadline, timeout, "no line")
            if self._next < len(self.seen):
                self._next += 1
                return self.seen[self._next - 1]
        assert end_ok, f"the stream ended; its lines: {self.seen}"
        return None

    def until(self, done, limit: int = 1000) -> list[str]:
        """Lines up to the first one after which ``done(lines so far)`` is true."""
        lines: list[str] = []
        for _ in range(limit):
            lines.append(self.next())
            if done(lines):
                return lines
        raise AssertionError(f"no end condition after {limit} lines: {lines}")

    def expect(self, pattern: str, timeout: float = 20) -> str:
        """The first line, read so far or to come, that matches the regular expression ``pattern``
        (``re.search``); AssertionError if the stream ends or ``timeout`` s pass without one."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        checked = 0
        with self._cond:
            while True:
                for line in self.seen[checked:]:
                    if rx.search(line):
                        return line
                checked = len(self.seen)
                if self.ended:
                    raise AssertionError(f"no line matching {pattern!r}: the stream ended; its lines: {self.seen}")
                self._wait(deadline, timeout, f"no line matching {pattern!r}")

    def all(self, timeout: float = 30) -> list[str]:
        """Every line of the stream, once it has ended (AssertionError if it does not within ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.ended:
                self._wait(deadline, timeout, "the stream did not end")
            return list(self.seen)


#: Puts SIGINT back to its default action, then execs the rest of its argv (a default action survives exec).
_SIGINT_DEFAULT_THEN_EXEC = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


def _with_default_sigint(argv: list[str]) -> list[str]:
    """``argv``, run with SIGINT at its default action.

    A shell running the tests in the background (``make test &``) leaves SIGINT
    ignored, and an ignored signal stays ignored across fork and exec (POSIX), so a
    script could not be interrupted as from a terminal.  Then a small interpreter
    puts it back and execs ``argv`` (not ``preexec_fn``: Python code between fork and
    exec may deadlock a child when the test process has threads, as the readers are).
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return argv
    return [sys.executable, "-c", _SIGINT_DEFAULT_THEN_EXEC, *argv]


class Background:
    """A script of agents/ running in the background (:meth:`Toolkit.start`), as ``python3 agents/<script>.py ARGS &``.

    It runs with the kit's environment, in the kit's root, with stdin from /dev/null and
    SIGINT at its default action (:func:`_with_default_sigint`).  Its stdout and stderr are
    read by threads from the start (:class:`Lines`: :attr:`out`, :attr:`err`), so every
    read has a deadline and the script never blocks on a full pipe.  A test synchronises
    on what the script prints (``out.next()``, ``out.expect(...)``), never on a sleep.

    As a context manager it stops the script on leaving the block (:meth:`stop`); the
    kit's fixture stops any left running after the test in any case.

    Attributes:
        proc: the script's :class:`subprocess.Popen`, e.g. for ``proc.send_signal``.
        out: the lines of its stdout.
        err: the lines of its stderr.
    """

    def __init__(self, kit: Toolkit, script: str, *args: str) -> None:
        self.what = " ".join([f"{script}.py", *args])
        self.proc = subprocess.Popen(
            _with_default_sigint([sys.executable, str(AGENTS / f"{script}.py"), *args]), env=kit.env, cwd=str(kit.root),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.out = Lines(self.proc.stdout)
        self.err = Lines(self.proc.stderr)

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def expect(self, pattern: str, timeout: float = 20) -> str:
        """The first stdout line, so far or to come, that matches ``pattern`` (:meth:`Lines.expect`)."""
        try:
            return self.out.expect(pattern, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{self.what}: {exc}; stderr: {self.err.seen}") from None

    def wait(self, timeout: float = 30) -> int:
        """Its exit status once it has ended; AssertionError, with what it printed, if it runs ``timeout`` s more
        (it is then stopped)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.what} did not end within {timeout} s; stdout {self.out.seen}, stderr {self.err.seen}") from None

    def finish(self, timeout: float = 30) -> tuple[int, list[str], str]:
        """Wait for it to end (:meth:`wait`): ``(exit status, every stdout line, stderr)``.  A traceback on stderr
        fails the test: a script reports every failure in one line (docs/files.md, the exit codes)."""
        code = self.wait(timeout)
        out, err = self.out.all(), "\n".join(self.err.all())
        assert "Traceback" not in err, f"{self.what} printed a traceback:\n{err}"
        return code, out, err

    def stop(self) -> None:
        """If it still runs: SIGTERM, SIGKILL 5 s later; then wait for it (with deadlines).

        Its pipes are left to their readers, which close them at their end.
        """
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait(timeout=10)


class _Overran(BaseException):
    """Raised by :func:`run_cli`'s alarm in a command that runs too long: not an Exception, so no guard catches it."""


def _overran(signum, frame) -> None:
    raise _Overran


def run_cli(script: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """Run command ``script`` in this process: ``(exit status, stdout, stderr)``, as pipx's tests run pipx.

    Imports ``claude_orchestrator.commands.<script>`` and calls its ``main(list(args))``
    with stdout and stderr captured and ``sys.argv[0]`` set to ``agents/<script>.py``,
    so the command names itself as that script does (``usage: <script>.py``);
    argparse's exits (``--help``: 0, a usage error: 2) are caught and their status
    returned.  ``env``, if given (e.g. ``kit.env``), is the whole environment
    for the call; the test's own is restored after it.  A command still running
    after ``timeout`` s (say a wait that should have been refused) is interrupted
    (SIGALRM, in the main thread) and the test fails, as :meth:`Toolkit.run` would.

    For ``--help`` and usage errors, which end before any process is started: a
    small part of a subprocess's cost.  Where the point is the process itself (the
    bootstrap in agents/, the console scripts, pipes, signals), run the script
    (:meth:`Toolkit.run`).
    """
    module = importlib.import_module(f"claude_orchestrator.commands.{script}")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(sys, "argv", [str(AGENTS / f"{script}.py"), *args]))
        if env is not None:
            stack.enter_context(mock.patch.dict(os.environ, env, clear=True))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGALRM, _overran)
            stack.callback(signal.signal, signal.SIGALRM, previous)
            stack.callback(signal.setitimer, signal.ITIMER_REAL, 0)  # runs first: the alarm is off before the handler goes
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            code = module.main(list(args))
        except SystemExit as exc:  # argparse: --help, or a usage error
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except _Overran:
            raise AssertionError(f"{script}.py {' '.join(args)} did not end within {timeout} s; "
                                 f"stdout {out.getvalue()!r}, stderr {err.getvalue()!r}") from None
    return code, out.getvalue(), err.getvalue()


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
    """The toolkit wired to the fake ``claude``; the scripts it started in the background are stopped after the test."""
    argv_dir = tmp_path / "argv"
    argv_dir.mkdir()
    env = dict(base_env, CLAUDE_BIN=str(fake_claude), FAKE_CLAUDE_ARGV_DIR=str(argv_dir))
    kit = Toolkit(state_root, env)
    yield kit
    kit.stop_started()


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
#: A test whose expectation differs between them keys it on a feature the CLI reports
#: (claude_orchestrator.claude.features) or on a range of versions (:func:`version_tuple`),
#: never on one version's exact string, so that a newer CLI needs no edit of the test.
CURRENT_CLI_VERSION = "2.1.332"
CLI_VERSIONS = (CURRENT_CLI_VERSION, "2.1.197")
_cli_versions_seen: dict[Path, str] = {}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.1.332"`` (or ``claude --version``'s ``"2.1.332 (Claude Code)"``) as ``(2, 1, 332)``, to compare with a range."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    assert match, f"not a version: {version!r}"
    return tuple(int(part) for part in match.group().split("."))


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
    """Each pinned CLI version in turn (test ids ``[2.1.332]``, ``[2.1.197]``)."""
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
    """The toolkit wired to the real CLI, talking to the fake API, with its own config dir; the scripts it started in
    the background are stopped after the test."""
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
    yield kit
    kit.stop_started()
