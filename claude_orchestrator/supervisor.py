"""The detached supervisor: one process per run that owns a ``claude -p`` job.

Started by the launcher in a new session with stdin from /dev/null and its
stdout/stderr on the run's log, it:

1. holds the agent's life lock (``status/<agent>.supervisor.lock``), handed
   over by the launcher as an open descriptor, until it exits: that lock is
   how every other script knows it is alive;
2. stops what a lost earlier run of the agent left running (the record's
   ``orphans``, each checked by its start time);
3. if the run is ``waiting`` or ``queued``, waits for its dependencies, then
   for its turn (FIFO) and a free slot;
4. starts the CLI (argument vector, never a shell) in its own process group,
   in the agent's cwd, with ``CLAUDECODE``/``CLAUDE_CODE_ENTRYPOINT`` stripped,
   the task file (``outputs/<agent>/<run_id>.task``) on its stdin;
5. appends the CLI's stdout to ``outputs/<agent>/<run_id>.jsonl`` as it
   arrives and keeps the record's progress (turns, last tool, last activity);
   the stream is untrusted: a line that is not a JSON object, or an event of
   an odd shape, is logged (the first :data:`SKIPPED_LOGGED`) and skipped, and
   a line longer than :data:`~.stream.MAX_LINE_BYTES` is never held whole;
6. samples the RSS of the whole process tree once a second (it is a child
   subreaper, so even descendants that called setsid and lost their parent
   stay in its tree), warns at 50 % and 80 % of the memory limit and stops
   the tree at 100 %; stops it at the timeout; stops a CLI that lingers after
   its result event;
7. retries a run that failed with a retryable API error, with backoff;
8. at the end stops whatever is left of the tree and writes the result text,
   the session ID and the final record.

A full or read-only state root never costs the run its supervision: a failed
transcript write drops those bytes (counted, logged) while the events are
still read; a record change that cannot be written is kept and written with
the next write that succeeds; the final writes are retried with backoff for
up to :data:`RECORD_RETRY_LIMIT_S`, the life lock held, so that the record is
right once space returns.  Meanwhile the timeout, the memory limit and a stop
request are enforced as ever.

Stopping a tree: SIGTERM to the CLI's process group and to every descendant,
the grace period, then SIGKILL.  SIGTERM, SIGINT or SIGHUP to the supervisor
stop the run that way; the status becomes ``killed``.  An unexpected error in
the supervisor itself stops the tree the same way, records the run ``failed``
("supervisor internal error: ...") and exits with status 70.

Run as ``python -m claude_orchestrator.supervisor --root ROOT [--alive-fd N]
[--slot-fd N] NAME RUN_ID``.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import math
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
from filelock import FileLock

from . import locks, procs
from .claude_cli import ClaudeOptions, build_argv, cli_env
from .cli_features import CliFeatures, detect_features
from .errors import BadRecord, OrchestratorError, StorageError
from .limits import MEMORY_LEVELS, RunLimits, is_retryable
from .paths import StatePaths
from .record import RESULT_PREVIEW_CHARS, RecordStore, StatusRecord, is_task_preview, utc_now, write_atomic
from .states import ACTIVE, ExitCode, State
from .stream import MAX_LINE_BYTES, LineBuffer, RunProgress, SkippedLine, classify, parse_event

#: Seconds between RSS samples of the process tree (at least one a second, as issue 3 asks).
SAMPLE_EVERY_S = 1.0
#: Minimum seconds between progress writes of the record (state changes are written at once).
PROGRESS_EVERY_S = 0.25
#: Seconds between tries of a progress write while the record cannot be written.
PROGRESS_RETRY_S = 1.0
#: After the CLI exits, seconds to keep reading a pipe a leftover process still holds.
DRAIN_AFTER_EXIT_S = 1.0
#: However short the grace, a CLI gets this long (s) after its result event to
#: finish on its own (it still writes its session then).
LINGER_MIN_S = 1.0
#: Seconds an --on-complete command may run before it is given up on.
ON_COMPLETE_TIMEOUT_S = 120.0
#: How often a queued run looks for its turn, in seconds.
QUEUE_POLL_S = 0.1
#: Seconds the final writes (result file, session file, final record) are
#: retried while the state root cannot be written; then the supervisor gives
#: up (logged) and readers reconcile the record to ``lost`` once it has exited.
RECORD_RETRY_LIMIT_S = 3600.0
#: Seconds the claim of the run is retried while the record cannot be written.
CLAIM_RETRY_LIMIT_S = 30.0
#: Seconds record writes are retried after an internal error, and for the on-complete note.
SHORT_RETRY_LIMIT_S = 5.0
#: Seconds between tries of a failed write: the first wait, and the cap as it doubles.
RETRY_FIRST_WAIT_S = 0.1
RETRY_MAX_WAIT_S = 2.0
#: Skipped stream lines logged one by one (each with a preview); later ones are only counted.
SKIPPED_LOGGED = 20
#: Bytes of a skipped line shown in the log.
SKIPPED_PREVIEW_BYTES = 200
#: Seconds between tries to open a transcript that could not be opened.
TRANSCRIPT_REOPEN_S = 1.0
#: The states in which a supervisor may claim its run.
CLAIMABLE = (State.WAITING, State.QUEUED, State.STARTING)
_ACTIVE_NAMES = frozenset(s.value for s in ACTIVE)


@dataclasses.dataclass
class Attempt:
    """How one attempt (one CLI process) ended."""

    state: State
    error: str | None
    exit_code: int | None
    progress: RunProgress
    session_id: str
    stopped_after_result: bool = False
    skipped_lines: int = 0  # stream lines not understood
    transcript_dropped: int = 0  # bytes of output the transcript could not take
    ended_at: str = dataclasses.field(default_factory=utc_now)  # when the outcome was decided: the record's ``finished``, however late it is written


@dataclasses.dataclass
class _Watch:
    """What the pump knows of one CLI process (times are ``time.monotonic()`` seconds)."""

    started: float
    reason: str | None = None  # why the tree is being stopped: killed, timeout, memory, lingered
    grace: float = 0.0  # seconds from SIGTERM to SIGKILL
    term_at: float | None = None  # when SIGTERM was sent
    killed: bool = False  # SIGKILL sent
    result_at: float | None = None  # when the result event came
    exited_at: float | None = None  # when the CLI was first seen exited
    eof: bool = False  # its stdout has ended


class _Transcript:
    """The run's transcript file, appended to as the CLI prints.

    A write that fails (disk full, read-only, a symlink in the way) loses
    those bytes, never the run: they are counted in :attr:`dropped`, the first
    failure of a streak and the recovery are logged.  After a write that
    stopped half-way, the next one starts on a new line, so the file stays
    one line per event.

    Args:
        path: ``outputs/<agent>/<run_id>.jsonl``.
        log: where to say that writes fail (the supervisor's log).
    """

    def __init__(self, path: Path, log: Callable[[str], None]) -> None:
        self.path, self.log = path, log
        self.fd: int | None = None
        self.dropped = 0
        self._torn = False
        self._failing = False
        self._next_open = 0.0
        self._open()

    def _open(self) -> bool:
        try:
            self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            return True
        except OSError as exc:
            self._next_open = time.monotonic() + TRANSCRIPT_REOPEN_S
            self._failed(exc)
            return False

    def write(self, parts: list[bytes]) -> None:
        """Append ``parts`` (one by one: the held head of a huge line is not copied again); never raises."""
        for part in parts:
            self._write(part)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        if self.fd is None and (time.monotonic() < self._next_open or not self._open()):
            self.dropped += len(data)
            return
        if self._torn:
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self._torn = self._torn or len(view) < len(data)
            self.dropped += len(view)
            self._failed(exc)
            return
        self._torn = False
        if self._failing:
            self._failing = False
            self.log(f"the transcript can be written again; {self.dropped} bytes of output were lost so far")

    def _failed(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            self.log(f"cannot write the transcript {self.path}: {exc.strerror or exc}; output is dropped (events are still read) until writes work again")

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class Supervisor:
    """Owns one run of one agent.

    Args:
        paths: the state root.
        name: the agent.
        run_id: the run this supervisor was started for; it touches the
            record only while the record still belongs to this run.
    """

    def __init__(self, paths: StatePaths, name: str, run_id: str) -> None:
        self.paths = paths
        self.store = RecordStore(paths)
        self.name = name
        self.run_id = run_id
        self.stop_signal: int | None = None
        try:
            self.log_file = open(paths.log(name, run_id), "ab", buffering=0)
        except OSError:
            self.log_file = None  # the launcher pointed our stderr at the same log: lines go there
        self.me = psutil.Process()
        self.limits = RunLimits()
        self.peak_mb = 0.0
        self.warned: set[str] = set()
        self.memory_warnings: list[dict] = []  # the record's memory_warnings, written with the progress
        self.seen: dict[int, float] = {}  # descendant pid -> its start time
        self._known: dict[int, psutil.Process] = {}  # descendants found by the last sample
        self.slot_fd: int | None = None  # a held --max-parallel slot
        self.prior_cost = 0.0  # cost of earlier attempts (retries)
        self.features = CliFeatures()  # what the CLI supports, detected when the run starts
        self.record: StatusRecord | None = None  # this supervisor's copy of its record (heals a corrupted file)
        self._pending: dict[str, Callable[[StatusRecord], None]] = {}  # record changes not written yet
        self._failing: set[str] = set()  # what cannot be written right now (logged once per streak)
        self._last_error: BaseException | None = None  # why the latest write failed
        self.cli: subprocess.Popen | None = None  # the running CLI, until its tree is stopped
        self.cli_pid: int | None = None
        self.cli_pid_started: float | None = None
        self.cli_started_at: str | None = None
        self.attempt = 1
        self.session_id: str | None = None  # of the current attempt
        self.skipped = 0  # stream lines of the current attempt not understood

    # -- helpers -------------------------------------------------------------

    def log(self, message: str) -> None:
        """Append one timestamped line to the run's log.  Never raises: on a full or read-only disk the line is lost."""
        data = f"{utc_now()} supervisor[{os.getpid()}]: {message}\n".encode("utf-8", "backslashreplace")
        try:
            os.write(self.log_file.fileno() if self.log_file is not None else 2, data)
        except (OSError, ValueError):
            pass

    def _on_signal(self, signum: int, _frame) -> None:
        self.stop_signal = signum

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early for a stop request."""
        deadline = time.monotonic() + seconds
        while not self.stop_signal and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    # -- the record and the files: writes that may fail -----------------------

    def _update(self, mutate: Callable[[StatusRecord], StatusRecord | None]) -> StatusRecord | None:
        """Apply ``mutate(record)`` under the lock if the record is still this run's.

        An unreadable record file is replaced from :attr:`record`, this
        supervisor's last copy of its own record.

        Returns:
            The record now stored (another run's, or None, if it is not ours anymore).

        Raises:
            StorageError: the record cannot be written (read-only or full state root).
            BadRecord: the file is unreadable and there is no copy yet (before the claim).
            OrchestratorError: its lock was not had within 30 s.
        """

        def if_ours(cur: StatusRecord | None) -> StatusRecord | None:
            if cur is None or cur.run_id != self.run_id:
                return None
            return mutate(cur)

        rec = self.store.update(self.name, if_ours, fallback=self.record)
        if rec is not None and rec.run_id == self.run_id:
            self.record = rec
        return rec

    def _change(self, key: str, change: Callable[[StatusRecord], None]) -> bool:
        """Change this run's record now, or with the next write that succeeds.

        ``change(rec)`` edits ``rec`` in place and must be idempotent (it may
        be applied to a record that has it already).  It is applied to
        :attr:`record` at once; a later change with the same ``key`` replaces
        one that is still waiting.  Returns True if it was written now.
        """
        if self.record is not None:
            change(self.record)
        self._pending.pop(key, None)
        self._pending[key] = change
        return self._flush()

    def _flush(self, final: Callable[[StatusRecord], StatusRecord | None] | None = None) -> bool:
        """Write the waiting changes, then ``final`` (a transition that returns None if not to be made), in one write.

        Returns:
            True if written (or if the record is no longer this run's: the
            changes are dropped); False if the record cannot be written now
            (logged at the first failure of a streak).
        """
        changes = list(self._pending.values())

        def mutate(cur: StatusRecord) -> StatusRecord | None:
            for change in changes:
                change(cur)
            if final is not None and final(cur) is None and not changes:
                return None
            return cur

        try:
            self._update(mutate)
        except (OrchestratorError, OSError) as exc:
            self._failed("the record", exc)
            return False
        self._pending.clear()
        self._written("the record")
        return True

    def _write_file(self, path: Path, text: str) -> bool:
        """:func:`write_atomic`, but a failure is logged and returns False instead of raising."""
        try:
            write_atomic(path, text)
        except (OrchestratorError, OSError) as exc:
            self._failed(str(path), exc)
            return False
        self._written(str(path))
        return True

    def _failed(self, what: str, exc: Exception) -> None:
        """Log that ``what`` cannot be written, once per streak of failures."""
        self._last_error = exc
        if what not in self._failing:
            self._failing.add(what)
            said = str(exc) if isinstance(exc, StorageError) else f"cannot write {what}: {exc}"  # a StorageError names its path
            self.log(f"{said}; will retry")

    def _written(self, what: str) -> None:
        """Log that ``what`` could be written again after failures."""
        if what in self._failing:
            self._failing.discard(what)
            self.log(f"written again: {what}")

    def _persist(self, writes: list[tuple[str, Callable[[], bool]]], limit_s: float) -> bool:
        """Do each write, in order, until all have succeeded, for at most ``limit_s`` seconds.

        ``writes`` are ``(what, write)``; ``write()`` returns True once done.
        Each round tries the writes not done yet; between rounds the wait
        starts at :data:`RETRY_FIRST_WAIT_S` and doubles up to
        :data:`RETRY_MAX_WAIT_S`.  A stop request does not cut this short.
        Returns True if all were written; else logs what was given up.
        """
        deadline = time.monotonic() + limit_s
        wait = RETRY_FIRST_WAIT_S
        todo = list(writes)
        while True:
            failed: dict[str, BaseException | None] = {}
            for what, write in todo:
                self._last_error = None
                if not write():
                    failed[what] = self._last_error
            todo = [(what, write) for what, write in todo if what in failed]
            if not todo:
                return True
            hopeless = [what for what, exc in failed.items() if not _may_pass(exc)]
            if hopeless:  # e.g. a folder where the result file goes: waiting would hold the agent's name for nothing
                self.log(f"gave up writing {', '.join(hopeless)}: retrying cannot cure that")
                todo = [(what, write) for what, write in todo if what not in hopeless]
                if not todo:
                    return False
            if time.monotonic() + wait > deadline:
                self.log(
                    f"gave up writing {', '.join(what for what, _ in todo)} after {limit_s:g} s; "
                    "the record will be shown lost once this supervisor has exited"
                )
                return False
            time.sleep(wait)
            wait = min(wait * 2, RETRY_MAX_WAIT_S)

    # -- the process tree ----------------------------------------------------

    def _descendants(self, thorough: bool = True) -> list[psutil.Process]:
        """Every live descendant (the CLI's tree and any orphan reparented to us).

        ``thorough=False`` (the once-a-second sample) finds them through
        :func:`procs.descendant_pids`, whose cost grows with the tree rather
        than with every process on the machine, and keeps their
        ``psutil.Process`` objects between samples; stopping a tree uses
        psutil's full scan, which misses nothing.
        """
        pids = None if thorough else procs.descendant_pids(self.me.pid)
        if pids is None:
            try:
                kids = self.me.children(recursive=True)
            except psutil.Error:
                return []
        else:
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
        out = []
        for p in kids:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
                    self.seen.setdefault(p.pid, p.create_time())
            except psutil.Error:
                pass
        return out

    def _reap(self, keep: int | None) -> None:
        """Reap exited children other than ``keep`` (orphans reparented to this subreaper)."""
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

    def _sample(self) -> float:
        """Tree RSS in MiB now; updates the peak and the memory warnings (:attr:`memory_warnings`)."""
        total = 0
        for p in self._descendants(thorough=False):
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        mb = total / (1024 * 1024)
        self.peak_mb = max(self.peak_mb, mb)
        limit = self.limits.memory_limit_mb
        if limit:
            for level, fraction in MEMORY_LEVELS:
                if mb >= limit * fraction and level not in self.warned:
                    self.warned.add(level)
                    self.memory_warnings.append({"level": level, "rss_mb": round(mb, 1), "limit_mb": limit, "at": utc_now()})
                    self.log(f"memory {level}: tree RSS {mb:.0f} MiB is {mb / limit:.0%} of the {limit:.0f} MiB limit")
        return mb

    def _grace(self) -> float:
        """The grace period: the run's, or a shorter one asked for by kill_agent."""
        if self.stop_signal:
            try:
                rec = self.store.read(self.name)
            except OrchestratorError:
                rec = None
            asked = rec.extra.get("stop_grace_s") if rec is not None and rec.run_id == self.run_id else None
            if isinstance(asked, (int, float)) and not isinstance(asked, bool) and 0 <= asked < math.inf:
                return float(asked)
        return float(self.limits.kill_grace_s)

    def _signal_tree(self, pgid: int, sig: int) -> None:
        """``sig`` to the CLI's process group and to every descendant (setsid ones too)."""
        procs.signal_group(pgid, sig)
        for p in self._descendants():
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass

    def _stop_leftovers(self, cli_pid: int) -> None:
        """Stop what the run left behind (background processes of its tools), then reap it."""
        left = self._descendants()
        if left:
            self.log(f"stopping {len(left)} leftover process(es) of the run: {[p.pid for p in left]}")
            procs.signal_group(cli_pid, signal.SIGTERM)
            procs.stop_tree(left, grace_s=self._grace())
        self._reap(None)

    def _stop_cli_tree(self) -> None:
        """Stop the running CLI's whole tree (SIGTERM, the grace period, SIGKILL), then what is left; reap it.

        Nothing to do if no CLI is running.  Used after an internal error.
        """
        proc = self.cli
        if proc is None:
            return
        if proc.poll() is None:
            grace = self._grace()
            self.log(f"stopping the CLI's tree (pid {proc.pid}): SIGTERM, SIGKILL after {grace:g} s")
            self._signal_tree(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal_tree(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10.0)
        self._stop_leftovers(proc.pid)
        self.cli = None

    # -- the run -------------------------------------------------------------

    def run(self) -> int:
        """Run the job to its end; returns 0 (the outcome is in the record)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        procs.become_subreaper()
        rec = self._claim()
        if rec is None:
            return 0
        self.limits = RunLimits.from_dict(rec.options.get("limits"))
        self._stop_orphans(rec)
        rec = self._wait_for_turn(rec)
        if rec is None:
            return 0
        options = ClaudeOptions.from_dict(rec.options.get("claude") or {})
        self.features = self._detect_features(rec)
        if self.stop_signal:  # asked to stop while the CLI was being asked what it supports
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} before the CLI started", None)
            return 0
        refused = options.permission_mode and self.features.refuse_permission_mode(options.permission_mode)
        if refused:
            self._finish_without_cli(State.FAILED, refused, None)
            return 0
        self.log(f"CLI {self.features.version or '(version unknown)'}; system prompt snapshot: {self.features.system_prompt_snapshot}")
        outcome = self._attempts(rec, options)
        if outcome is None:  # the CLI could not be started; already recorded
            return 0
        if self.slot_fd is not None:
            os.close(self.slot_fd)  # the tree is gone: let the next queued run start
            self.slot_fd = None
        self._finish(outcome)
        return 0

    def _claim(self) -> StatusRecord | None:
        """Put this supervisor's PID and start time into the record, if the run is still waiting, queued or starting.

        A record that cannot be written is retried for up to
        :data:`CLAIM_RETRY_LIMIT_S` seconds (a stop request ends that).

        Returns:
            The claimed record, or None if there is nothing to do (logged).
        """
        me_started = self.me.create_time()

        def claim(rec: StatusRecord) -> StatusRecord | None:
            if rec.state not in CLAIMABLE:
                return None
            rec.supervisor_pid, rec.supervisor_started = self.me.pid, me_started
            return rec

        deadline = time.monotonic() + CLAIM_RETRY_LIMIT_S
        wait = RETRY_FIRST_WAIT_S
        while True:
            try:
                rec = self._update(claim)
                break
            except BadRecord as exc:
                self.log(f"the record is unreadable ({exc.reason}); nothing to do")
                return None
            except (OrchestratorError, OSError) as exc:
                self._failed("the record", exc)
                if self.stop_signal or time.monotonic() + wait > deadline:
                    self.log("could not claim the run; nothing started (the record will be shown lost)")
                    return None
                time.sleep(wait)
                wait = min(wait * 2, RETRY_MAX_WAIT_S)
        self._written("the record")
        if rec is None or rec.run_id != self.run_id or rec.state not in CLAIMABLE:
            self.log("the record no longer belongs to this run or is not waiting/queued/starting; nothing to do")
            return None
        return rec

    def _stop_orphans(self, rec: StatusRecord) -> None:
        """Stop the processes a lost earlier run of this agent left running, before anything else.

        The launcher names them in the record's ``orphans`` (``[[pid, start
        time], ...]``: that run's CLI and recorded tree); each is stopped only
        if a process with that PID *and* start time still runs (SIGTERM to it,
        its descendants and its process group if it leads one; the run's grace
        period; SIGKILL).  The record then says ``orphans_stopped``: their PIDs.
        """
        if "orphans" not in rec.extra:
            return
        found = procs.find_entries(rec.extra["orphans"])
        pids = [p.pid for p in found]
        if found:
            grace = float(self.limits.kill_grace_s)
            self.log(f"stopping {len(found)} process(es) a lost earlier run left: {pids} (SIGTERM, SIGKILL after {grace:g} s)")
            for p in found:
                try:
                    if os.getpgid(p.pid) == p.pid:
                        procs.signal_group(p.pid, signal.SIGTERM)
                except OSError:
                    pass
            left = procs.stop_tree(found, grace_s=grace)
            if left:
                self.log(f"could not stop {[p.pid for p in left]}")
        else:
            self.log("no process of the lost earlier run is left")

        def note(r: StatusRecord) -> None:
            r.extra.pop("orphans", None)
            r.extra["orphans_stopped"] = pids

        self._change("orphans", note)

    def _wait_for_turn(self, rec: StatusRecord) -> StatusRecord | None:
        """Wait for the dependencies (``waiting``) and for a slot (``queued``).

        Returns the record, now ``starting``, or None if the run ended here
        (skipped, or killed by a stop request; recorded).
        """
        if rec.state is State.WAITING:
            rec = self._wait_for_dependencies(rec)
            if rec is None:
                return None
        if rec.state is State.QUEUED and not self._wait_for_slot():
            return None
        if self.stop_signal:
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} before the CLI started", None)
            return None
        return self.record or rec

    def _detect_features(self, rec: StatusRecord) -> CliFeatures:
        """What this run's CLI supports (:func:`detect_features`); unknown if that fails."""
        try:
            return detect_features(self.paths, rec.options["claude_bin"], cli_env())
        except Exception as exc:  # noqa: BLE001 - e.g. its cache cannot be written or read: the run goes on without
            self.log(f"could not detect what the CLI supports ({exc}); assuming nothing")
            return CliFeatures()

    def _dependency_states(self, deps: list[str]) -> dict[str, str]:
        """Each ``--after`` agent's state (reconciled: a run whose supervisor is gone is
        ``lost``), or ``gone`` (no record) or ``unreadable`` (a bad record file)."""
        from .control import reconcile

        states: dict[str, str] = {}
        for dep in deps:
            try:
                found = self.store.read(dep)
                states[dep] = "gone" if found is None else reconcile(self.store, found).status.value
            except BadRecord:
                states[dep] = "unreadable"
        return states

    def _wait_for_dependencies(self, rec: StatusRecord) -> StatusRecord | None:
        """Sleep until every ``--after`` agent has ended (watchdog on status/).

        Then: skip the run if one did not complete (unless ``--after-any``),
        fork ``--with-context-from``'s session, and take a slot or join the
        queue.  Returns the record, now ``starting`` or ``queued``, or None if
        the run ended here (``skipped`` or ``killed``).
        """
        from .launcher import read_session
        from .watch import DirWatcher

        deps: list[str] = rec.options.get("after") or []
        self.log(f"waiting for {', '.join(deps)}")
        states: dict[str, str] = {}
        with DirWatcher(self.paths.status_dir) as watcher:
            while not self.stop_signal:
                states = self._dependency_states(deps)
                if not _ACTIVE_NAMES.intersection(states.values()):
                    break
                watcher.wait(1.0)
        if self.stop_signal:
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} while waiting", None)
            return None
        bad = {d: s for d, s in states.items() if s != State.COMPLETED.value}
        if bad and not rec.options.get("after_any"):
            why = ", ".join(f"{d} {s}" for d, s in bad.items())
            self._finish_without_cli(State.SKIPPED, f"skipped: a dependency did not complete ({why})", None)
            return None
        source = rec.options.get("context_from")
        resumed = None
        if source:
            resumed = read_session(self.paths, source)
            if resumed is None:
                self._finish_without_cli(State.SKIPPED, f"skipped: {source} left no session to take context from", None)
                return None
        target = State.STARTING
        if self.limits.max_parallel:
            with FileLock(str(self.paths.queue_lock), timeout=30):
                if locks.queue_head(self.paths) is None:
                    self.slot_fd = locks.take_slot(self.paths, self.limits.max_parallel)
                if self.slot_fd is None:
                    locks.enqueue(self.paths, self.name, self.run_id)
                    target = State.QUEUED
        self.log(f"dependencies done ({', '.join(f'{d} {s}' for d, s in states.items())}); now {target}")

        def ready(r: StatusRecord) -> None:
            if source:
                r.resumed_from, r.forked_from = resumed, source
                r.options["fork"] = True
            if r.state is State.WAITING:
                r.transition(target, last_activity=utc_now())

        self._change("ready", ready)
        return self.record

    def _wait_for_slot(self) -> bool:
        """Wait in the FIFO queue until this run is at its head and a slot is free.

        The record then says ``starting``.  Returns False if a stop request
        came first (the record is then ``killed``).
        """
        self.log(f"queued: waiting for one of {self.limits.max_parallel} slots")
        qlock = FileLock(str(self.paths.queue_lock), timeout=30)
        while not self.stop_signal:
            with qlock:
                head = locks.queue_head(self.paths)
                if head is None or head == self.name:
                    self.slot_fd = locks.take_slot(self.paths, self.limits.max_parallel)
                    if self.slot_fd is not None:
                        locks.remove_from_queue(self.paths, self.name)
                        granted = time.time()  # stamped under the queue lock: grant order = FIFO order
            if self.slot_fd is not None:
                self.log("got a slot")

                def note(rec: StatusRecord, at: float = granted) -> None:
                    rec.extra["slot_granted_at"] = at
                    if rec.state is State.QUEUED:
                        rec.transition(State.STARTING)

                self._change("slot", note)
                return True
            time.sleep(QUEUE_POLL_S)
        locks.remove_from_queue(self.paths, self.name)
        self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} while queued", None)
        return False

    def _attempts(self, rec: StatusRecord, options: ClaudeOptions) -> Attempt | None:
        """Run the CLI; again after a retryable API error, up to the run's retries, with backoff.

        Returns how the last attempt ended, or None if the CLI could not be
        started (the run is then recorded failed).
        """
        session_id = rec.session_id or str(uuid.uuid4())
        outcome: Attempt | None = None
        for attempt in range(1, 2 + int(self.limits.retries)):
            if outcome is not None:
                backoff = self.limits.retry_backoff_s * 2 ** (attempt - 2)
                self.log(f"attempt {attempt - 1} failed with a retryable error ({outcome.error}); retrying in {backoff:.1f} s")
                self._sleep(backoff)
                if self.stop_signal:
                    break
                if not rec.resumed_from or rec.options.get("fork"):
                    session_id = str(uuid.uuid4())  # the failed attempt's session stays as it is
                self.prior_cost += float((outcome.progress.result or {}).get("total_cost_usd") or 0)

                def next_attempt(r: StatusRecord, n: int = attempt, sid: str = session_id) -> None:
                    r.attempt, r.session_id = n, sid

                self._change("attempt", next_attempt)
            self.attempt, self.session_id = attempt, session_id
            outcome = self._run_attempt(rec, options, session_id)
            if outcome is None:
                return None
            retry = (
                outcome.state is State.FAILED
                and not self.stop_signal
                and is_retryable((outcome.progress.result or {}).get("api_error_status"), outcome.error)
            )
            if not retry:
                break
        return outcome

    def _task_path(self, rec: StatusRecord) -> Path | None:
        """The file whose bytes are the task, the CLI's stdin: ``outputs/<agent>/<run_id>.task``.

        The launcher writes it; if it is missing (a record made by an older
        launcher has no ``task_file``), the record's ``task`` is written there
        first, unless that is only a preview of a longer task (it ends in "…").
        Returns None if the run ended here (recorded ``failed``).
        """
        path = self.paths.task_file(self.name, self.run_id)
        if os.path.lexists(path):
            return path
        if rec.task_file is not None and is_task_preview(rec.task):
            self._finish_without_cli(State.FAILED, f"the task file {path} is missing and the record holds only a preview of the task; launch the run again", None)
            return None
        if not self._write_file(path, rec.task):
            self._finish_without_cli(State.FAILED, f"could not write the task file {path}; see the log", None)
            return None
        self._change("task_file", lambda r: setattr(r, "task_file", str(path)))
        return path

    def _start_cli(self, rec: StatusRecord, options: ClaudeOptions, session_id: str) -> subprocess.Popen | None:
        """Start the CLI: an argument vector, its own session and process group, the task file on stdin.

        Returns the process, or None if it could not be started: the run is
        then recorded ``failed`` (exit code 127 if the executable is missing, else 126).
        """
        task = self._task_path(rec)
        if task is None:
            return None
        argv = build_argv(
            rec.options["claude_bin"], options, session_id=session_id, resume_id=rec.resumed_from,
            fork=bool(rec.options.get("fork")), features=self.features,
        )
        try:
            stdin = os.open(task, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # a fresh open per attempt
        except OSError as exc:
            self._finish_without_cli(State.FAILED, f"cannot read the task file {task}: {exc.strerror or exc}", None)
            return None
        try:
            self.log(f"starting the CLI in {rec.cwd}: {argv}; the task ({os.fstat(stdin).st_size} bytes) on stdin from {task}")
            proc = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=self.log_file,
                cwd=rec.cwd,
                env=cli_env(),
                start_new_session=True,  # its own session and process group
                close_fds=True,  # neither the life lock nor the slot leaks into it
            )
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) and not os.path.exists(argv[0]) else 126
            self._finish_without_cli(State.FAILED, f"could not start the CLI: {exc}", code)
            return None
        finally:
            os.close(stdin)
        self.cli = proc
        self.cli_pid, self.cli_pid_started, self.cli_started_at = proc.pid, procs.start_time(proc.pid), utc_now()
        return proc

    def _run_attempt(self, rec: StatusRecord, options: ClaudeOptions, session_id: str) -> Attempt | None:
        """Start the CLI once and follow it to its end.  None if it could not be started (recorded)."""
        proc = self._start_cli(rec, options, session_id)
        if proc is None:
            return None
        progress = RunProgress()
        self.skipped = 0
        # Opened before the record says running, so that a reader of a running record finds the file it names.
        transcript = _Transcript(self.paths.transcript(self.name, self.run_id), self.log)
        written = self._write_progress(progress)  # running, with the CLI's pid
        # The session ID is ours (--session-id) or the resumed one, so it is known now (the final writes retry it).
        self._write_file(self.paths.session(self.name), session_id + "\n")
        self.log(f"CLI started, pid {proc.pid}")
        try:
            reason = self._pump(proc, transcript, progress, dirty=not written)
        finally:
            transcript.close()
        exit_code = proc.wait()
        self.log(f"CLI exited with status {exit_code}; {progress.events} events")
        if self.skipped > SKIPPED_LOGGED:
            self.log(f"{self.skipped} stream lines skipped in all; {self.skipped - SKIPPED_LOGGED} of them not logged")
        if transcript.dropped:
            self.log(f"{transcript.dropped} bytes of the CLI's output could not be written to the transcript")
        self._stop_leftovers(proc.pid)
        self.cli = None
        state, error = self._judge(reason, progress, exit_code)
        return Attempt(
            state, error, exit_code, progress, progress.session_id or session_id, reason == "lingered",
            skipped_lines=self.skipped, transcript_dropped=transcript.dropped,
        )

    def _judge(self, reason: str | None, progress: RunProgress, exit_code: int) -> tuple[State, str | None]:
        """How the attempt ended: by why the tree was stopped (``reason``), else by the result and exit status."""
        if reason == "killed":
            return State.KILLED, f"stopped by request (signal {self.stop_signal})"
        if reason == "timeout":
            return State.TIMEOUT, f"no result within the {self.limits.timeout_s:g} s timeout"
        if reason == "memory":
            limit = self.limits.memory_limit_mb
            return State.MEMORY_EXCEEDED, f"the process tree's RSS reached the {limit:g} MiB limit (peak {self.peak_mb:.0f} MiB)"
        if reason == "lingered":
            return classify(progress.result, 0)  # judged by its result; the exit was ours
        return classify(progress.result, exit_code)

    def _pump(self, proc: subprocess.Popen, transcript: _Transcript, progress: RunProgress, dirty: bool) -> str | None:
        """Copy the CLI's stdout to the transcript and read its events until it ends.

        Also keeps the record's progress (``dirty``: a write is due), enforces
        the limits and forwards a stop request.  Returns why the tree was
        stopped (``killed``, ``timeout``, ``memory``, ``lingered``) or None if
        the CLI ended by itself.
        """
        fd = proc.stdout.fileno()
        lines = LineBuffer()
        watch = _Watch(started=time.monotonic())
        next_sample = 0.0
        last_write = -math.inf if dirty else time.monotonic()
        counts = (len(self.seen), len(self.memory_warnings))
        while True:
            dirty = self._read_stream(fd, watch, lines, transcript, progress) or dirty
            now = time.monotonic()
            alive = proc.poll() is None
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY_S
                mb = self._sample()
                self._reap(proc.pid)
                if (len(self.seen), len(self.memory_warnings)) != counts:
                    if len(self.memory_warnings) != counts[1]:
                        last_write = -math.inf  # a warning is written at once
                    counts, dirty = (len(self.seen), len(self.memory_warnings)), True
                limit = self.limits.memory_limit_mb
                if watch.reason is None and limit and mb >= limit:
                    watch.reason = "memory"
                    self.log(f"memory limit: tree RSS {mb:.0f} MiB >= {limit:g} MiB; stopping the tree")
            if dirty and now - last_write >= (PROGRESS_RETRY_S if "the record" in self._failing else PROGRESS_EVERY_S):
                dirty = not self._write_progress(progress)
                last_write = now
            self._enforce(watch, now, alive, proc.pid)
            if not alive and self._drained(watch, now):
                break
        out, done = lines.close()
        transcript.write(out)
        self._take_lines(done, progress)
        if watch.reason is None and self.stop_signal:
            watch.reason = "killed"  # asked to stop just as the CLI ended on its own
        return watch.reason

    def _read_stream(self, fd: int, watch: _Watch, lines: LineBuffer, transcript: _Transcript, progress: RunProgress) -> bool:
        """Wait up to 0.25 s for the CLI's output and take in what came: to the transcript, its events to ``progress``.

        Returns True if the record's progress changed.
        """
        if watch.eof:
            time.sleep(0.1)
            return False
        ready, _, _ = select.select([fd], [], [], 0.25)
        if not ready:
            return False
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            watch.eof = True
            return False
        out, done = lines.push(chunk)
        transcript.write(out)
        changed = self._take_lines(done, progress) if done else False
        if watch.result_at is None and progress.result is not None:
            watch.result_at = time.monotonic()
        return changed

    def _take_lines(self, lines: list[bytes | int], progress: RunProgress) -> bool:
        """Feed each complete stream line's event to ``progress``; log the lines skipped.

        ``lines`` as :meth:`LineBuffer.push` gives them (an int: the length of
        a line too long to parse).  The stream is untrusted: whatever a line
        holds, it is skipped, never fatal.  Returns True if the progress changed.
        """
        changed = False
        for line in lines:
            if isinstance(line, int):
                self._skip_line(None, f"a line of {line} bytes, longer than the {MAX_LINE_BYTES}-byte cap: in the transcript, not read")
                continue
            if not line or line.isspace():  # no copy of a long line
                continue
            try:
                changed = progress.feed(parse_event(line)) or changed
                problem = progress.problem
            except SkippedLine as exc:
                problem = str(exc)
            except Exception as exc:  # noqa: BLE001 - a line of the CLI's must never stop the run
                problem = f"could not be read ({exc!r})"
            if problem:
                self._skip_line(line, problem)
        return changed

    def _skip_line(self, line: bytes | None, why: str) -> None:
        """Log a stream line that was not (wholly) understood: the first :data:`SKIPPED_LOGGED` of an attempt, with a preview."""
        self.skipped += 1
        if self.skipped > SKIPPED_LOGGED:
            return
        preview = ""
        if line is not None:
            shown = line[:SKIPPED_PREVIEW_BYTES].decode("utf-8", "backslashreplace")
            preview = f": {shown!r}" + (f"… ({len(line)} bytes)" if len(line) > SKIPPED_PREVIEW_BYTES else "")
        self.log(f"stream line skipped ({why}){preview}")
        if self.skipped == SKIPPED_LOGGED:
            self.log(f"further skipped stream lines are only counted (logged: the first {SKIPPED_LOGGED})")

    def _enforce(self, watch: _Watch, now: float, alive: bool, pgid: int) -> None:
        """Decide whether the tree must stop (a stop request, the timeout, a CLI lingering
        after its result; the memory limit is decided by the sample) and send SIGTERM,
        then SIGKILL once the grace period is over."""
        limits = self.limits
        if watch.reason is None:
            linger = max(limits.kill_grace_s, LINGER_MIN_S)
            if self.stop_signal:
                watch.reason = "killed"
                self.log(f"stop requested (signal {self.stop_signal})")
            elif limits.timeout_s and now - watch.started >= limits.timeout_s and alive:
                watch.reason = "timeout"
                self.log(f"timeout: {limits.timeout_s:g} s passed; stopping the tree")
            elif watch.result_at is not None and alive and now - watch.result_at >= linger:
                watch.reason = "lingered"
                self.log(f"the CLI did not exit within {linger:g} s of its result event; stopping it")
        if watch.reason is not None and watch.term_at is None:
            watch.grace = self._grace()
            self.log(f"SIGTERM to the tree; SIGKILL in {watch.grace:g} s")
            self._signal_tree(pgid, signal.SIGTERM)
            watch.term_at = now
        if watch.term_at is not None and not watch.killed and now - watch.term_at >= watch.grace:
            self.log("grace period over: SIGKILL to the tree")
            self._signal_tree(pgid, signal.SIGKILL)
            watch.killed = True

    def _drained(self, watch: _Watch, now: float) -> bool:
        """The CLI has exited: True once its stdout has ended, or after
        :data:`DRAIN_AFTER_EXIT_S` if a leftover process still holds it open."""
        if watch.eof:
            return True
        watch.exited_at = watch.exited_at or now
        if now - watch.exited_at > DRAIN_AFTER_EXIT_S:
            self.log("the CLI exited but its stdout is still held open by another process; stop reading")
            return True
        return False

    def _write_progress(self, progress: RunProgress) -> bool:
        """Write the run's progress to the record; the first time, that it runs (``running``, the CLI's pid).

        Returns False if the record cannot be written now (the change waits
        for the next write that succeeds).
        """

        def change(rec: StatusRecord) -> None:
            if not rec.state.is_active:
                return
            if self.cli_pid is not None:
                if rec.state is State.STARTING:
                    rec.transition(State.RUNNING, started=self.cli_started_at)
                rec.pid, rec.pid_started = self.cli_pid, self.cli_pid_started
            rec.num_turns = progress.num_turns
            rec.session_id = progress.session_id or self.session_id or rec.session_id
            rec.model = progress.model or rec.model
            rec.last_tool = progress.last_tool or rec.last_tool
            rec.tokens = progress.tokens
            if progress.result is not None:
                rec.cost_usd = self._cost(progress)
            rec.peak_rss_mb = round(self.peak_mb, 1) if self.peak_mb else rec.peak_rss_mb
            rec.memory_warnings = list(self.memory_warnings)
            rec.extra["tree"] = [[pid, started] for pid, started in self.seen.items()]
            rec.last_activity = utc_now()

        return self._change("progress", change)

    def _cost(self, progress: RunProgress) -> float | None:
        """USD so far: earlier attempts plus this one's result event (None before any)."""
        cost = (progress.result or {}).get("total_cost_usd")
        if not self.prior_cost:
            return cost  # exactly what the CLI reported
        return round(self.prior_cost + float(cost or 0), 6)

    # -- the end -------------------------------------------------------------

    def _finish(self, outcome: Attempt) -> None:
        """Write the run's result, session and final record (retried while the state root cannot be written)."""
        result, progress = outcome.progress.result, outcome.progress
        state, error = outcome.state, outcome.error
        text = result.get("result") if result else None
        output = text if text is not None else f"[{state}] {error}\n"

        def final(rec: StatusRecord) -> StatusRecord | None:
            if rec.state.is_terminal:
                return None
            fields = dict(
                exit_code=outcome.exit_code,
                error=error,
                num_turns=progress.num_turns,
                last_tool=progress.last_tool or rec.last_tool,
                tokens=progress.tokens,
                session_id=outcome.session_id,
                model=progress.model or rec.model,
                peak_rss_mb=round(self.peak_mb, 1),
                memory_warnings=list(self.memory_warnings),
                last_activity=utc_now(),
                finished=outcome.ended_at,
            )
            if result is not None:
                fields.update(
                    is_error=bool(result.get("is_error")),
                    cost_usd=self._cost(progress),
                    usage=result.get("usage"),
                    result=text[:RESULT_PREVIEW_CHARS] if text is not None else None,
                )
                if result.get("api_error_status") is not None:
                    rec.extra["api_error_status"] = result.get("api_error_status")
            else:
                fields["is_error"] = state is not State.COMPLETED
            if outcome.stopped_after_result:
                rec.extra["stopped_after_result"] = True
            if outcome.skipped_lines:
                rec.extra["stream_lines_skipped"] = outcome.skipped_lines
            if outcome.transcript_dropped:
                rec.extra["transcript_bytes_lost"] = outcome.transcript_dropped
            rec.extra["tree"] = [[pid, started] for pid, started in self.seen.items()]
            rec.transition(state, **fields)
            return rec

        self._persist(
            [
                ("the result file", lambda: self._write_file(self.paths.latest_output(self.name), output)),
                ("the session file", lambda: self._write_file(self.paths.session(self.name), outcome.session_id + "\n")),
                ("the final record", lambda: self._flush(final)),
            ],
            RECORD_RETRY_LIMIT_S,
        )
        ended = self.record.status if self.record is not None else state
        self.log(f"run ended: {ended}{' (' + error + ')' if error else ''}")

    def _finish_without_cli(self, state: State, error: str, exit_code: int | None, limit_s: float = RECORD_RETRY_LIMIT_S) -> None:
        """End a run whose CLI never started, could not be started, or was stopped after an internal error.

        Writes the result file (``[state] error``) and the final record,
        retried for up to ``limit_s`` seconds; nothing if the run has ended already.
        """
        if self.record is not None and not self.record.state.is_active:
            self.log(f"the run has ended already ({self.record.status}); not recording {state} ({error})")
            return

        ended = utc_now()

        def final(rec: StatusRecord) -> StatusRecord | None:
            if rec.state.is_terminal:
                return None
            rec.transition(state, error=error, exit_code=exit_code, is_error=True, last_activity=ended, finished=ended)
            return rec

        writes = [("the final record", lambda: self._flush(final))]
        if self.record is not None:  # the run is known to be ours: its result file may be written
            writes.insert(0, ("the result file", lambda: self._write_file(self.paths.latest_output(self.name), f"[{state}] {error}\n")))
        self._persist(writes, limit_s)
        self.log(f"run ended: {state} ({error})")

    def internal_error(self, exc: Exception) -> None:
        """After an unexpected exception (a bug): stop the CLI's tree, log the traceback, record ``failed``.

        Call it from the ``except`` clause (the traceback is the one being
        handled).  The record write is retried for :data:`SHORT_RETRY_LIMIT_S`
        seconds only.  Never raises.
        """
        import traceback

        self.log(f"supervisor internal error: {exc!r}\n{traceback.format_exc()}")
        proc = self.cli
        try:
            self._stop_cli_tree()
        except Exception as again:  # noqa: BLE001 - the record must still be written
            self.log(f"could not stop the CLI's tree: {again!r}")
        what = (str(exc).splitlines() or [""])[0][:300]
        error = f"supervisor internal error: {type(exc).__name__}{': ' + what if what else ''}; see {self.paths.log(self.name, self.run_id)}"
        exit_code = proc.returncode if proc is not None else None
        try:
            self._finish_without_cli(State.FAILED, error, exit_code, limit_s=SHORT_RETRY_LIMIT_S)
        except Exception as again:  # noqa: BLE001 - nothing more can be done; readers will show it lost
            self.log(f"could not record the internal error: {again!r}")

    def run_on_complete(self) -> None:
        """Run the launch's ``--on-complete`` argument vector, once, after the run ended.

        Its environment carries ``ORCHESTRATOR_AGENT``, ``ORCHESTRATOR_STATUS``,
        ``ORCHESTRATOR_RUN_ID``, ``ORCHESTRATOR_RECORD`` and
        ``ORCHESTRATOR_OUTPUT``; its output goes to the run's log; what it
        returned (or why it could not run) is kept in the record's
        ``on_complete``.  Its failure never changes the run's status.
        """
        try:
            rec = self.store.read(self.name)
        except OrchestratorError:
            rec = self.record
        if rec is None or rec.run_id != self.run_id or not rec.state.is_terminal:
            return
        argv = rec.options.get("on_complete")
        if not argv:
            return
        env = dict(
            os.environ,
            ORCHESTRATOR_AGENT=self.name,
            ORCHESTRATOR_STATUS=str(rec.status),
            ORCHESTRATOR_RUN_ID=self.run_id,
            ORCHESTRATOR_RECORD=str(self.paths.status(self.name)),
            ORCHESTRATOR_OUTPUT=str(self.paths.latest_output(self.name)),
        )
        self.log(f"on-complete: {argv}")
        outcome: dict = {"argv": argv}
        try:
            done = subprocess.run(
                argv, env=env, cwd=rec.cwd, stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=self.log_file,
                timeout=ON_COMPLETE_TIMEOUT_S, start_new_session=True,
            )
            outcome["exit_code"] = done.returncode
            if done.returncode != 0:
                outcome["error"] = f"exited with status {done.returncode}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            outcome["exit_code"] = None
            outcome["error"] = str(exc)
        self.log(f"on-complete ended: {outcome}")

        def note(r: StatusRecord) -> None:
            r.extra["on_complete"] = outcome

        self.record = self.record or rec
        if not self._change("on_complete", note):
            self._persist([("the record", self._flush)], SHORT_RETRY_LIMIT_S)


#: OS errors that free space, a remount or time can cure: a write failing so is retried.
TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EAGAIN, errno.EINTR, errno.ENOMEM})


def _may_pass(exc: BaseException | None) -> bool:
    """True if the write that failed with ``exc`` may succeed later (a full or read-only disk, a busy lock)."""
    if isinstance(exc, StorageError):
        exc = exc.os_error
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    return True  # a lock that was not had in time, or not known: worth another try


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervisor process (started by the launcher, not by hand).

    Returns 0, or 70 (:attr:`ExitCode.INTERNAL`) after an internal error.
    """
    parser = argparse.ArgumentParser(prog="python -m claude_orchestrator.supervisor")
    parser.add_argument("--root", required=True, help="the state root")
    parser.add_argument("--alive-fd", type=int, help="an inherited descriptor holding the agent's life lock")
    parser.add_argument("--slot-fd", type=int, help="an inherited descriptor holding a parallel slot")
    parser.add_argument("name")
    parser.add_argument("run_id")
    args = parser.parse_args(argv)
    if "ORCHESTRATOR_CALLER_PYTHONPATH" in os.environ:  # see launcher.supervisor_command
        caller = os.environ.pop("ORCHESTRATOR_CALLER_PYTHONPATH")
        if caller:
            os.environ["PYTHONPATH"] = caller
        else:
            os.environ.pop("PYTHONPATH", None)
    paths = StatePaths(args.root)
    sup = Supervisor(paths, args.name, args.run_id)
    sup.slot_fd = args.slot_fd
    # The life lock is held through args.alive_fd until this process exits; it
    # must not be inherited further (Popen(close_fds=True) sees to that).
    code = ExitCode.OK
    try:
        sup.run()
    except Exception as exc:  # noqa: BLE001 - a bug: the CLI must not outlive its supervision, nor the record stay active
        sup.internal_error(exc)
        code = ExitCode.INTERNAL
    if args.alive_fd is not None:
        # The run is over: free the name now, so that a slow hook does not hold
        # up the next launch of this agent.
        os.close(args.alive_fd)
    try:
        sup.run_on_complete()
    except Exception as exc:  # noqa: BLE001 - the run has ended; only the hook failed
        import traceback

        sup.log(f"on-complete failed: {exc!r}\n{traceback.format_exc()}")
        code = ExitCode.INTERNAL
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
