"""Starting a run's supervisor detached on this host: forked from the launcher, or a fresh interpreter.

A supervisor is the module :data:`SUPERVISOR_MODULE` run as ``python -m``
would run it.  There are two ways to start one, with the same guarantees
(its own session and process group, stdin ``/dev/null``, stdout and stderr
the run's log, none of the caller's descriptors but the locks it takes over,
the caller's environment, cwd the state root; it outlives the caller and is
never waited for):

- :func:`fork_supervisors`: ``fork()`` the launcher, which has the toolkit's
  code imported already, twice (the middle process starts the session and
  exits at once, so the supervisor is never the caller's child and is
  reparented to init or the nearest subreaper), and call the supervisor's
  ``main`` in the grandchild.  A fan-out imports the supervisor's modules once
  (:func:`prepare`) and then costs one fork per run: measured here (bench item
  3), a fresh interpreter per supervisor cost about 65 ms of CPU while the
  launcher started the next.  Only from a single-threaded process
  (:func:`can_fork`): a fork copies only the calling thread, and a lock
  another thread held would stay locked in the child for ever.
- :func:`spawn_supervisor`: ``python -S -m claude_orchestrator.supervisor``
  (:func:`supervisor_command`), for a launcher that runs threads (the web
  console, a test) and where ``fork()`` is not there.

Standard library only: this module is on the launch path.
"""

from __future__ import annotations

import fcntl
import gc
import importlib
import io
import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, NoReturn

from ..core.modes import CALLER_UMASK_ENV, user_umask
from ..core.paths import StatePaths

#: The supervisor's module, as ``python -m`` names it (a cluster job's batch script runs it so too).
SUPERVISOR_MODULE = "claude_orchestrator.supervisor"
#: Its entry (``main(argv) -> exit status``), which a forked supervisor calls.
SUPERVISOR_ENTRY = f"{SUPERVISOR_MODULE}.entry"
#: What :func:`prepare` imports: the supervisor's entry (and with it the modules it imports at its top),
#: and what every run's supervisor imports later (the inbox watch: watchdog's observer).
PRELOAD = (SUPERVISOR_ENTRY, "claude_orchestrator.usecases.watch", "watchdog.observers")
#: What the supervisor imports.  A spawned one runs as ``python -S`` (no site hooks: a
#: ``.pth`` file that imports something costs every supervisor start-up time
#: and memory for the whole run) and finds these through ``PYTHONPATH``.
SUPERVISOR_PACKAGES = ("claude_orchestrator", "psutil", "filelock", "watchdog")
#: The exit status of a forked supervisor whose start failed before its ``main`` (sysexits' EX_SOFTWARE).
START_FAILED = 70
#: The exit status of the middle process when its ``fork()`` failed.
FORK_FAILED = 71

#: Seconds a fan-out's supervisor waits at most at its gate (:func:`fork_supervisors`): a safety net for a
#: launcher that neither exits nor opens the gates (a program using this package that goes on running).
GATE_WAIT_S = 5.0

_supervisor_path: list[str] | None = None
#: Write ends of this process's gates not yet opened (:func:`open_gates`; the kernel opens them at its exit).
_gates: list[int] = []


class Detached(NamedTuple):
    """One run for :func:`fork_supervisors` or :func:`spawn_supervisor`.

    Attributes:
        name: the agent.
        run_id: the run.
        held: the descriptors holding the agent's life lock, then a slot if any.
        log_fd: the run's log, its stdout and stderr.
    """

    name: str
    run_id: str
    held: tuple[int, ...]
    log_fd: int


def can_fork() -> bool:
    """Whether this process may fork a supervisor: ``fork()`` exists and this process runs one thread.

    The threads are counted by the kernel (``/proc/self/task``), so a thread a
    C extension started counts too; without ``/proc`` (not Linux) the answer is False.
    """
    if not hasattr(os, "fork"):
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1 and threading.active_count() == 1
    except OSError:
        return False


def prepare() -> None:
    """Import the supervisor's modules into this process, so that each forked supervisor starts with them."""
    for module in PRELOAD:
        importlib.import_module(module)


def fork_supervisors(paths: StatePaths, runs: Sequence[Detached]) -> list[OSError | None]:
    """Fork a detached supervisor for each of ``runs`` (:func:`can_fork` must be true).

    Each costs this process one ``fork()``; the middle processes are reaped at
    the end (each exits as soon as it has forked its supervisor).  Buffered
    output of this process is flushed first, so that no child writes it again.
    The supervisors of several runs wait at a gate, a pipe whose write end this
    process keeps until it exits (or :func:`open_gates`, or :data:`GATE_WAIT_S`):
    measured with 50 runs, supervisors starting their CLIs at once took the two
    cores from the launcher still forking, reaping and exiting, and the launch
    returned in 1.8 s instead of 0.5 s.

    Returns:
        One answer per run, in order: None, or an ``OSError`` if its supervisor
        could not be forked (a process limit: ``EAGAIN``).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    env = supervisor_env()
    gate = os.pipe() if len(runs) > 1 else None
    middles: list[int | OSError] = []
    # The objects so far are left out of the children's collections, so their collectors never write to
    # those pages, which stay shared between the supervisors (copy-on-write) instead of copied into each;
    # this process takes them back afterwards (a long-lived launcher's garbage is still collected).
    gc.freeze()
    try:
        for run in runs:
            try:
                pid = os.fork()
            except OSError as exc:
                middles.append(exc)
                continue
            if pid == 0:  # the middle process: a new session, the supervisor forked into it, gone
                try:
                    os.setsid()
                    if os.fork() == 0:
                        _become_supervisor(paths, run, env, gate)
                except BaseException:  # noqa: BLE001 - a child never returns into the launcher's code
                    os._exit(FORK_FAILED)
                os._exit(0)
            middles.append(pid)
    finally:
        gc.unfreeze()
        if gate is not None:
            _gates.append(gate[1])  # the gate opens when this process exits, or waits (open_gates)
    answers: list[OSError | None] = []
    for middle in middles:
        if isinstance(middle, OSError):
            answers.append(middle)
            continue
        _, status = os.waitpid(middle, 0)
        code = os.waitstatus_to_exitcode(status)
        answers.append(None if code == 0 else OSError(f"could not fork the supervisor (exit status {code})"))
    if gate is not None:
        os.close(gate[0])
    return answers


def open_gates() -> None:
    """Let the supervisors this process forked behind gates start now: a launcher about to wait for its
    runs (``--wait``) calls it; otherwise they start when it exits."""
    while _gates:
        os.close(_gates.pop())


def _become_supervisor(paths: StatePaths, run: Detached, env: dict[str, str], gate: tuple[int, int] | None) -> NoReturn:
    """In the forked grandchild: take the descriptors a spawned supervisor would have, wait at the ``gate``
    (until its launcher exits or waits), take the environment and streams, run the supervisor's ``main``,
    and exit with its status without returning to the launcher's code."""
    code = START_FAILED
    try:
        # first of all: none of the caller's descriptors (nor any gate's write end) is kept while it waits
        waiting = None if gate is None else gate[0] if gate[0] > 2 else fcntl.fcntl(gate[0], fcntl.F_DUPFD, 3)
        held = _settle_descriptors(run, keep=() if waiting is None else (waiting,))
        if waiting is not None:
            select.select([waiting], [], [], GATE_WAIT_S)  # readable (EOF) once its launcher has let go
            os.close(waiting)
        os.chdir(paths.root)
        os.environ.clear()
        os.environ.update(env)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # as a fresh interpreter has them
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own stream
        sys.stdout = sys.__stdout__ = io.TextIOWrapper(open(1, "wb", closefd=False), encoding="utf-8")  # noqa: SIM115
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", buffering=0, closefd=False), encoding="utf-8",  # noqa: SIM115
                                                       errors="backslashreplace", line_buffering=True)
        argv = ["--root", str(paths.root), *_fd_flags(held), run.name, run.run_id]
        sys.argv = [SUPERVISOR_MODULE, *argv]
        code = importlib.import_module(SUPERVISOR_ENTRY).main(argv)
    except SystemExit as exc:  # argparse's, or a sys.exit() in the supervisor
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a bug: said in the run's log, as a spawned interpreter would say it
        import traceback

        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001, S110 - the log may be gone; the exit status still says it
            pass
    finally:
        _exit_like_an_interpreter(code)


def _settle_descriptors(run: Detached, keep: Sequence[int] = ()) -> list[int]:
    """stdin ``/dev/null``, stdout and stderr the log, the held locks and ``keep`` kept (a held lock moved
    above 2 if it is below), every other descriptor closed.  Returns the held descriptors' numbers."""
    # a caller with stdin closed: a lock may be fd 0; moved above 2 before 0-2 are set
    held = [fd if fd > 2 else fcntl.fcntl(fd, fcntl.F_DUPFD, 3) for fd in run.held]
    log = run.log_fd if run.log_fd > 2 else fcntl.fcntl(run.log_fd, fcntl.F_DUPFD, 3)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    low = 3
    for fd in sorted({*held, *keep}):
        if fd > low:  # never an empty range: os.closerange(n, n) closes every descriptor from n up (Python 3.11)
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(_max_fd(), low + 1))
    for fd in held:
        os.set_inheritable(fd, False)  # the CLI and the hook never get it (as Popen(close_fds=True) sees to)
    return held


def _max_fd() -> int:
    """One past the highest descriptor number this process may have."""
    try:
        return max(os.sysconf("SC_OPEN_MAX"), 1024)
    except (OSError, ValueError):
        return 65536


def _fd_flags(held: Sequence[int]) -> list[str]:
    """``--alive-fd N [--slot-fd M]`` for the held descriptors (the life lock first)."""
    flags = ["--alive-fd", str(held[0])] if held else []
    return flags + (["--slot-fd", str(held[1])] if len(held) > 1 else [])


def _exit_like_an_interpreter(code: object) -> NoReturn:
    """End a forked supervisor as ``python -m`` ends: wait for its non-daemon threads, flush its streams, exit
    with ``code``; never through the launcher's ``atexit`` handlers or its frames (``os._exit``)."""
    try:
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    except BaseException:  # noqa: BLE001, S110 - exiting regardless
        pass
    os._exit(code if isinstance(code, int) and 0 <= code <= 255 else START_FAILED)


def spawn_supervisor(paths: StatePaths, run: Detached) -> None:
    """Start ``python -S -m claude_orchestrator.supervisor`` detached (new session, stdin /dev/null), never waited for.

    Raises:
        OSError: the interpreter could not be started.
    """
    argv, env = supervisor_command(paths, list(run.held), run.name, run.run_id)
    subprocess.Popen(  # noqa: S603 - an argument vector, no shell
        argv,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=run.log_fd,
        stderr=run.log_fd,
        cwd=str(paths.root),
        start_new_session=True,  # detached: no signal of the caller's terminal reaches it
        close_fds=True,  # no pipe of the caller leaks into it ...
        pass_fds=run.held,  # ... only the locks it takes over
    )
    # It is never waited for: it outlives this process and is reparented to
    # init (or the nearest subreaper).


def supervisor_env() -> dict[str, str]:
    """The supervisor's environment: the caller's, with ``ORCHESTRATOR_CALLER_UMASK`` the caller's umask
    (the supervisor gives it back to the CLI and the hook: :mod:`..core.modes`)."""
    env = dict(os.environ)
    env[CALLER_UMASK_ENV] = f"{user_umask():04o}"
    return env


def supervisor_command(
    paths: StatePaths, held: list[int], name: str, run_id: str, flags: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, str]]:
    """The argument vector and environment of a supervisor started as a fresh interpreter.

    ``held`` are the inherited descriptors: the life lock, then a slot if any
    (none for a supervisor that another host starts, as a cluster job's is);
    ``flags`` are more of its options (e.g. ``--time-limit-signal USR1``).
    The environment is :func:`supervisor_env`'s, with ``PYTHONPATH`` naming the folders of
    :data:`SUPERVISOR_PACKAGES` and the caller's own value kept in
    ``ORCHESTRATOR_CALLER_PYTHONPATH`` (the supervisor puts it back before it
    starts anything).  If a package's folder cannot be found the supervisor
    starts with the site hooks, as any script would.  ``ORCHESTRATOR_SHARE``
    comes with the rest.
    """
    global _supervisor_path
    if _supervisor_path is None:
        _supervisor_path = _package_dirs()
    argv = [sys.executable, "-m", SUPERVISOR_MODULE, "--root", str(paths.root), *_fd_flags(held)]
    env = supervisor_env()
    if _supervisor_path:
        argv.insert(1, "-S")
        env["ORCHESTRATOR_CALLER_PYTHONPATH"] = env.get("PYTHONPATH", "")
        env["PYTHONPATH"] = os.pathsep.join(_supervisor_path)
    return [*argv, *flags, name, run_id], env


def _package_dirs() -> list[str]:
    """The folders holding :data:`SUPERVISOR_PACKAGES`, or [] if one cannot be found."""
    from importlib.util import find_spec  # once per launcher process

    dirs: list[str] = []
    for package in SUPERVISOR_PACKAGES:
        spec = find_spec(package)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            return []
        folder = str(Path(locations[0]).parent)
        if folder not in dirs:
            dirs.append(folder)
    return dirs
