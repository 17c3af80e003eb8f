"""The detached supervisor: one process per run that owns a ``claude -p`` job.

Started by the launcher in a new session with stdin from /dev/null and its
stdout/stderr on the run's log, it:

1. holds the agent's life lock (``status/<agent>.supervisor.lock``), handed
   over by the launcher as an open descriptor, until it exits: that lock is
   how every other script knows it is alive;
2. if the run is ``queued``, waits for its turn (FIFO) and a free slot;
3. starts the CLI (argument vector, never a shell) in its own process group,
   in the agent's cwd, with ``CLAUDECODE``/``CLAUDE_CODE_ENTRYPOINT`` stripped;
4. appends every stream-json line to ``outputs/<agent>/<run_id>.jsonl`` as it
   arrives and keeps the record's progress (turns, last tool, last activity);
5. samples the RSS of the whole process tree once a second (it is a child
   subreaper, so even descendants that called setsid and lost their parent
   stay in its tree), warns at 50 % and 80 % of the memory limit and stops
   the tree at 100 %; stops it at the timeout; stops a CLI that lingers after
   its result event;
6. retries a run that failed with a retryable API error, with backoff;
7. at the end stops whatever is left of the tree and writes the result text,
   the session ID and the final record.

Stopping a tree: SIGTERM to the CLI's process group and to every descendant,
the grace period, then SIGKILL.  SIGTERM, SIGINT or SIGHUP to the supervisor
stop the run that way; the status becomes ``killed``.

Run as ``python -m claude_orchestrator.supervisor --root ROOT [--alive-fd N]
[--slot-fd N] NAME RUN_ID``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import select
import signal
import subprocess
import sys
import time
import uuid

import psutil
from filelock import FileLock

from . import locks, procs
from .claude_cli import ClaudeOptions, build_argv, cli_env
from .cli_features import CliFeatures, detect_features
from .limits import MEMORY_LEVELS, RunLimits, is_retryable
from .paths import StatePaths
from .record import RESULT_PREVIEW_CHARS, RecordStore, StatusRecord, utc_now, write_atomic
from .states import State
from .stream import RunProgress, classify, parse_line

#: Seconds between RSS samples of the process tree (at least one a second, as issue 3 asks).
SAMPLE_EVERY_S = 1.0
#: Minimum seconds between progress writes of the record (state changes are written at once).
PROGRESS_EVERY_S = 0.25
#: After the CLI exits, seconds to keep reading a pipe a leftover process still holds.
DRAIN_AFTER_EXIT_S = 1.0
#: However short the grace, a CLI gets this long (s) after its result event to
#: finish on its own (it still writes its session then).
LINGER_MIN_S = 1.0
#: Seconds an --on-complete command may run before it is given up on.
ON_COMPLETE_TIMEOUT_S = 120.0
#: How often a queued run looks for its turn, in seconds.
QUEUE_POLL_S = 0.1


@dataclasses.dataclass
class Attempt:
    """How one attempt (one CLI process) ended."""

    state: State
    error: str | None
    exit_code: int | None
    progress: RunProgress
    session_id: str
    stopped_after_result: bool = False


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
        self.log_file = open(paths.log(name, run_id), "a", encoding="utf-8", buffering=1)
        self.me = psutil.Process()
        self.limits = RunLimits()
        self.peak_mb = 0.0
        self.warned: set[str] = set()
        self.seen: dict[int, float] = {}  # descendant pid -> its start time
        self._known: dict[int, psutil.Process] = {}  # descendants found by the last sample
        self.slot_fd: int | None = None  # a held --max-parallel slot
        self.prior_cost = 0.0  # cost of earlier attempts (retries)
        self.features = CliFeatures()  # what the CLI supports, detected when the run starts

    # -- helpers -------------------------------------------------------------

    def log(self, message: str) -> None:
        """Append one timestamped line to the run's log."""
        self.log_file.write(f"{utc_now()} supervisor[{os.getpid()}]: {message}\n")

    def _update(self, mutate) -> StatusRecord | None:
        """Apply ``mutate(record)`` under the lock if the record is still this run's."""

        def guarded(cur: StatusRecord | None) -> StatusRecord | None:
            if cur is None or cur.run_id != self.run_id:
                return None
            return mutate(cur)

        return self.store.update(self.name, guarded)

    def _on_signal(self, signum: int, _frame) -> None:
        self.stop_signal = signum

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early for a stop request."""
        deadline = time.monotonic() + seconds
        while not self.stop_signal and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

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
        """Tree RSS in MiB now; updates the peak and the memory warnings."""
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
                    warning = {"level": level, "rss_mb": round(mb, 1), "limit_mb": limit, "at": utc_now()}
                    self.log(f"memory {level}: tree RSS {mb:.0f} MiB is {mb / limit:.0%} of the {limit:.0f} MiB limit")

                    def add(rec: StatusRecord, w=warning) -> StatusRecord:
                        rec.memory_warnings.append(w)
                        return rec

                    self._update(add)
        return mb

    # -- the run -------------------------------------------------------------

    def run(self) -> int:
        """Run the job to its end; returns 0 (the outcome is in the record)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        procs.become_subreaper()
        me_started = self.me.create_time()

        def claim(rec: StatusRecord) -> StatusRecord | None:
            if rec.state not in (State.WAITING, State.QUEUED, State.STARTING):
                return None
            rec.supervisor_pid, rec.supervisor_started = self.me.pid, me_started
            return rec

        rec = self._update(claim)
        if rec is None or rec.run_id != self.run_id or rec.state not in (State.WAITING, State.QUEUED, State.STARTING):
            self.log("the record no longer belongs to this run or is not waiting/queued/starting; nothing to do")
            return 0
        self.limits = RunLimits.from_dict(rec.options.get("limits"))
        if rec.state is State.WAITING:
            rec = self._wait_for_dependencies(rec)
            if rec is None:
                return 0
        if rec.state is State.QUEUED:
            if not self._wait_for_slot():
                return 0
            rec = self._update(lambda r: (r.transition(State.STARTING), r)[1]) or rec
        if self.stop_signal:
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} before the CLI started", None)
            return 0

        options = ClaudeOptions.from_dict(rec.options.get("claude", {}))
        self.features = detect_features(self.paths, rec.options["claude_bin"], cli_env())
        if self.stop_signal:  # asked to stop while the CLI was being asked what it supports
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} before the CLI started", None)
            return 0
        refused = options.permission_mode and self.features.refuse_permission_mode(options.permission_mode)
        if refused:
            self._finish_without_cli(State.FAILED, refused, None)
            return 0
        self.log(f"CLI {self.features.version or '(version unknown)'}; system prompt snapshot: {self.features.system_prompt_snapshot}")
        session_id = rec.session_id
        attempts = 1 + int(self.limits.retries)
        outcome: Attempt | None = None
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                backoff = self.limits.retry_backoff_s * 2 ** (attempt - 2)
                self.log(f"attempt {attempt - 1} failed with a retryable error ({outcome.error}); retrying in {backoff:.1f} s")
                self._sleep(backoff)
                if self.stop_signal:
                    break
                if not rec.resumed_from or rec.options.get("fork"):
                    session_id = str(uuid.uuid4())  # the failed attempt's session stays as it is

                def next_attempt(r: StatusRecord, n=attempt, sid=session_id) -> StatusRecord:
                    r.attempt, r.session_id = n, sid
                    return r

                self._update(next_attempt)
            if outcome is not None:
                self.prior_cost += float((outcome.progress.result or {}).get("total_cost_usd") or 0)
            outcome = self._run_attempt(rec, options, session_id)
            if outcome is None:  # the CLI could not be started; already recorded
                return 0
            retry = (
                outcome.state is State.FAILED
                and not self.stop_signal
                and is_retryable((outcome.progress.result or {}).get("api_error_status"), outcome.error)
            )
            if not retry:
                break
        assert outcome is not None
        if self.slot_fd is not None:
            os.close(self.slot_fd)  # the tree is gone: let the next queued run start
            self.slot_fd = None
        self._finish(outcome)
        return 0

    def _wait_for_dependencies(self, rec: StatusRecord) -> StatusRecord | None:
        """Sleep until every ``--after`` agent has ended (watchdog on status/).

        Then: skip the run if one did not complete (unless ``--after-any``),
        fork ``--with-context-from``'s session, and take a slot or join the
        queue.  Returns the record, now ``starting`` or ``queued``, or None if
        the run ended here (``skipped`` or ``killed``).
        """
        from .control import reconcile
        from .launcher import read_session
        from .watch import DirWatcher

        deps: list[str] = rec.options.get("after") or []
        self.log(f"waiting for {', '.join(deps)}")
        with DirWatcher(self.paths.status_dir) as watcher:
            while not self.stop_signal:
                found = {d: self.store.read(d) for d in deps}
                found = {d: (reconcile(self.store, r) if r is not None else None) for d, r in found.items()}
                if all(r is None or r.state.is_terminal for r in found.values()):
                    break
                watcher.wait(1.0)
        if self.stop_signal:
            self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} while waiting", None)
            return None
        bad = {d: ("gone" if r is None else str(r.status)) for d, r in found.items() if r is None or r.state is not State.COMPLETED}
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
        self.log(f"dependencies done ({', '.join(f'{d} {r.status if r else None}' for d, r in found.items())}); now {target}")

        def ready(r: StatusRecord) -> StatusRecord:
            if source:
                r.resumed_from, r.forked_from = resumed, source
                r.options["fork"] = True
            r.transition(target, last_activity=utc_now())
            return r

        return self._update(ready)

    def _wait_for_slot(self) -> bool:
        """Wait in the FIFO queue until this run is at its head and a slot is free.

        Returns False if a stop request came first (the record is then ``killed``).
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

                def note(rec: StatusRecord, at: float = granted) -> StatusRecord:
                    rec.extra["slot_granted_at"] = at
                    return rec

                self._update(note)
                return True
            time.sleep(QUEUE_POLL_S)
        locks.remove_from_queue(self.paths, self.name)
        self._finish_without_cli(State.KILLED, f"stopped by signal {self.stop_signal} while queued", None)
        return False

    def _run_attempt(self, rec: StatusRecord, options: ClaudeOptions, session_id: str) -> Attempt | None:
        """Start the CLI once and follow it to its end."""
        argv = build_argv(
            rec.options["claude_bin"],
            options,
            rec.task,
            session_id,
            resume_id=rec.resumed_from,
            fork=bool(rec.options.get("fork")),
            features=self.features,
        )
        shown = argv[:-1] + [f"<task: {len(rec.task)} chars>"]
        self.log(f"starting the CLI in {rec.cwd}: {shown}")
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
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
        pid_started = procs.start_time(proc.pid)

        def running(r: StatusRecord) -> StatusRecord:
            if r.state is State.STARTING:
                r.transition(State.RUNNING, started=utc_now())
            r.pid, r.pid_started = proc.pid, pid_started
            r.last_activity = utc_now()
            return r

        # Opened before the record says running, so that a reader of a running record finds the file it names.
        transcript = open(self.paths.transcript(self.name, self.run_id), "ab")
        self._update(running)
        # The session ID is ours (--session-id) or the resumed one, so it is known now.
        write_atomic(self.paths.session(self.name), session_id + "\n")
        self.log(f"CLI started, pid {proc.pid}")
        try:
            progress = RunProgress()
            reason = self._pump(proc, transcript, progress)
        finally:
            transcript.close()
        exit_code = proc.wait()
        self.log(f"CLI exited with status {exit_code}; {progress.events} events")
        self._stop_leftovers(proc.pid)
        if reason == "killed":
            state, error = State.KILLED, f"stopped by request (signal {self.stop_signal})"
        elif reason == "timeout":
            state, error = State.TIMEOUT, f"no result within the {self.limits.timeout_s:g} s timeout"
        elif reason == "memory":
            state, error = (
                State.MEMORY_EXCEEDED,
                f"the process tree's RSS reached the {self.limits.memory_limit_mb:g} MiB limit (peak {self.peak_mb:.0f} MiB)",
            )
        elif reason == "lingered":
            state, error = classify(progress.result, 0)  # judged by its result; the exit was ours
        else:
            state, error = classify(progress.result, exit_code)
        return Attempt(state, error, exit_code, progress, progress.session_id or session_id, reason == "lingered")

    def _pump(self, proc: subprocess.Popen, transcript, progress: RunProgress) -> str | None:
        """Copy the CLI's stdout to the transcript line by line until it ends.

        Also enforces the limits and forwards a stop request.  Returns why the
        tree was stopped (``killed``, ``timeout``, ``memory``, ``lingered``) or
        None if the CLI ended by itself.
        """
        fd = proc.stdout.fileno()
        limits = self.limits
        started = time.monotonic()
        buf = b""
        next_sample = 0.0
        last_write = 0.0
        dirty = False
        reason: str | None = None
        term_at: float | None = None
        grace = limits.kill_grace_s
        killed = False
        eof = False
        exited_at: float | None = None
        result_at: float | None = None
        tree_size = 0
        while True:
            if eof:
                time.sleep(0.1)
                ready = []
            else:
                ready, _, _ = select.select([fd], [], [], 0.25)
            now = time.monotonic()
            if ready:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    eof = True
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if lines:
                    transcript.write(b"".join(line + b"\n" for line in lines))
                    transcript.flush()
                    for line in lines:
                        event = parse_line(line)
                        if event is not None and progress.feed(event):
                            dirty = True
                            if event.get("type") == "result" and result_at is None:
                                result_at = now
            alive = proc.poll() is None
            if now >= next_sample:
                mb = self._sample()
                next_sample = now + SAMPLE_EVERY_S
                self._reap(proc.pid)
                if len(self.seen) != tree_size:
                    tree_size, dirty = len(self.seen), True
                if reason is None and limits.memory_limit_mb and mb >= limits.memory_limit_mb:
                    reason = "memory"
                    self.log(f"memory limit: tree RSS {mb:.0f} MiB >= {limits.memory_limit_mb:g} MiB; stopping the tree")
            if dirty and now - last_write >= PROGRESS_EVERY_S:
                self._write_progress(progress)
                last_write, dirty = now, False
            if reason is None:
                if self.stop_signal:
                    reason = "killed"
                    self.log(f"stop requested (signal {self.stop_signal})")
                elif limits.timeout_s and now - started >= limits.timeout_s and alive:
                    reason = "timeout"
                    self.log(f"timeout: {limits.timeout_s:g} s passed; stopping the tree")
                elif result_at is not None and alive and now - result_at >= max(limits.kill_grace_s, LINGER_MIN_S):
                    reason = "lingered"
                    self.log(f"the CLI did not exit within {max(limits.kill_grace_s, LINGER_MIN_S):g} s of its result event; stopping it")
            if reason is not None and term_at is None:
                grace = self._grace()
                self.log(f"SIGTERM to the tree; SIGKILL in {grace:g} s")
                self._signal_tree(proc.pid, signal.SIGTERM)
                term_at = now
            if term_at is not None and not killed and now - term_at >= grace:
                self.log("grace period over: SIGKILL to the tree")
                self._signal_tree(proc.pid, signal.SIGKILL)
                killed = True
            if not alive:
                if eof:
                    break
                exited_at = exited_at or now
                if now - exited_at > DRAIN_AFTER_EXIT_S:
                    self.log("the CLI exited but its stdout is still held open by another process; stop reading")
                    break
        if buf:
            transcript.write(buf + b"\n")
            event = parse_line(buf)
            if event is not None:
                progress.feed(event)
        if reason is None and self.stop_signal:
            reason = "killed"  # asked to stop just as the CLI ended on its own
        return reason

    def _grace(self) -> float:
        """The grace period: the run's, or a shorter one asked for by kill_agent."""
        if self.stop_signal:
            rec = self.store.read(self.name)
            asked = rec.extra.get("stop_grace_s") if rec is not None and rec.run_id == self.run_id else None
            if isinstance(asked, (int, float)) and asked >= 0:
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

    def _write_progress(self, progress: RunProgress) -> None:
        def mutate(rec: StatusRecord) -> StatusRecord | None:
            if not rec.state.is_active:
                return None
            rec.num_turns = progress.num_turns
            rec.session_id = progress.session_id or rec.session_id
            rec.model = progress.model or rec.model
            rec.last_tool = progress.last_tool or rec.last_tool
            rec.tokens = progress.tokens
            if progress.result is not None:
                rec.cost_usd = self._cost(progress)
            rec.peak_rss_mb = round(self.peak_mb, 1) if self.peak_mb else rec.peak_rss_mb
            rec.extra["tree"] = [[pid, started] for pid, started in self.seen.items()]
            rec.last_activity = utc_now()
            return rec

        self._update(mutate)

    def _cost(self, progress: RunProgress) -> float | None:
        """USD so far: earlier attempts plus this one's result event (None before any)."""
        cost = (progress.result or {}).get("total_cost_usd")
        if not self.prior_cost:
            return cost  # exactly what the CLI reported
        return round(self.prior_cost + float(cost or 0), 6)

    def _finish(self, outcome: Attempt) -> None:
        """Write the run's result, session and final record."""
        result, progress = outcome.progress.result, outcome.progress
        state, error = outcome.state, outcome.error
        text = result.get("result") if result and isinstance(result.get("result"), str) else None
        output = text if text is not None else f"[{state}] {error}\n"
        write_atomic(self.paths.latest_output(self.name), output)
        write_atomic(self.paths.session(self.name), outcome.session_id + "\n")

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
                last_activity=utc_now(),
            )
            if result is not None:
                fields.update(
                    is_error=bool(result.get("is_error")),
                    cost_usd=self._cost(progress),
                    usage=result.get("usage"),
                    result=(text or "")[:RESULT_PREVIEW_CHARS] if text is not None else None,
                )
                if result.get("api_error_status") is not None:
                    rec.extra["api_error_status"] = result.get("api_error_status")
            else:
                fields["is_error"] = state is not State.COMPLETED
            if outcome.stopped_after_result:
                rec.extra["stopped_after_result"] = True
            rec.extra["tree"] = [[pid, started] for pid, started in self.seen.items()]
            rec.transition(state, **fields)
            return rec

        rec = self._update(final)
        self.log(f"run ended: {rec.status if rec else state}{' (' + error + ')' if error else ''}")

    def run_on_complete(self) -> None:
        """Run the launch's ``--on-complete`` argument vector, once, after the run ended.

        Its environment carries ``ORCHESTRATOR_AGENT``, ``ORCHESTRATOR_STATUS``,
        ``ORCHESTRATOR_RUN_ID``, ``ORCHESTRATOR_RECORD`` and
        ``ORCHESTRATOR_OUTPUT``; its output goes to the run's log; what it
        returned (or why it could not run) is kept in the record's
        ``on_complete``.  Its failure never changes the run's status.
        """
        rec = self.store.read(self.name)
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

        def note(r: StatusRecord) -> StatusRecord:
            r.extra["on_complete"] = outcome
            return r

        self._update(note)

    def _finish_without_cli(self, state: State, error: str, exit_code: int | None) -> None:
        """End a run whose CLI never started (or could not be started)."""
        write_atomic(self.paths.latest_output(self.name), f"[{state}] {error}\n")

        def final(rec: StatusRecord) -> StatusRecord | None:
            if rec.state.is_terminal:
                return None
            rec.transition(state, error=error, exit_code=exit_code, is_error=True, last_activity=utc_now())
            return rec

        self._update(final)
        self.log(f"run ended: {state} ({error})")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the supervisor process (started by the launcher, not by hand)."""
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
    code = 0
    try:
        sup.run()
    except Exception as exc:  # the record must not stay "running" on a bug
        import traceback

        sup.log(f"supervisor crashed: {exc!r}\n{traceback.format_exc()}")
        try:
            sup._finish_without_cli(State.FAILED, f"supervisor crashed: {exc!r}; see {sup.paths.log(args.name, args.run_id)}", None)
        except Exception:
            pass
        code = 1
    if args.alive_fd is not None:
        # The run is over: free the name now, so that a slow hook does not hold
        # up the next launch of this agent.
        os.close(args.alive_fd)
    sup.run_on_complete()
    return code


if __name__ == "__main__":
    sys.exit(main())
