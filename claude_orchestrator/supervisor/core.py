"""The supervisor of one run: the order of its life, with the parts doing the work.

:class:`Supervisor` claims the run, stops what a lost earlier run left
(:mod:`.tree`), waits for its dependencies and a slot (:mod:`.waits`), runs
the CLI once or again after a retryable API error (:mod:`.attempt`), and
writes the end (:mod:`.writer`).  Every state change is made through
:mod:`..records.lifecycle`, on the supervisor's own copy of its record first, so no
decision here waits for a write.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ..claude.features import CliFeatures, detect_features, forget, same_version
from ..claude.invocation import build_argv, cli_env
from ..claude.stream import RunProgress
from ..core import procs
from ..core.errors import BadRecord, OrchestratorError
from ..core.limits import RunLimits, is_retryable
from ..core.paths import StatePaths
from ..core.states import State
from ..records import channel, lifecycle
from ..records.lifecycle import move_from
from ..records.shape import utc_now
from ..records.status_record import RESULT_PREVIEW_CHARS, RecordStore, StatusRecord, is_task_preview, read_session
from . import report
from .attempt import Attempt, AttemptEnd, CliNotStarted, StopRequest, read_task, spawn
from .conversation import Conversation, question_env, start_hook
from .hooks import run_on_complete
from .transcript_file import TranscriptFile
from .tree import ProcessTree
from .writer import (
    CLAIM_RETRY_LIMIT_S,
    RECORD_RETRY_LIMIT_S,
    RETRY_FIRST_WAIT_S,
    RETRY_MAX_WAIT_S,
    SHORT_RETRY_LIMIT_S,
    RecordWriter,
)

#: The states in which a supervisor may claim its run.
CLAIMABLE = lifecycle.INITIAL
#: Seconds between looks at a stop request during a sleep.
SLEEP_STEP_S = 0.05
#: Bytes at the end of what the CLI's attempt added to the log that are searched for its last stderr line.
STDERR_TAIL_BYTES = 64 * 1024
#: The supervisor's own lines in the log (:meth:`Supervisor.log`), left out of the CLI's stderr.
OWN_LOG_LINE = re.compile(r"\S+ supervisor\[\d+\]: ")


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
        self.stop_request: StopRequest | None = None  # the first signal that asked it to stop
        try:
            self.log_file = open(paths.log(name, run_id), "ab", buffering=0)
        except OSError:
            self.log_file = None  # the launcher pointed our stderr at the same log: lines go there
        self.tree = ProcessTree(self.log)
        self.writer = RecordWriter(self.store, name, run_id, self.log)
        self.limits = RunLimits()
        self.slot_fd: int | None = None  # a held --max-parallel slot
        self.time_limit_signal: int | None = None  # --time-limit-signal: the executor's "the job's time limit is near"
        self.ref_from_env: str | None = None  # --ref-from-env: the variable holding the executor's reference for the run
        self.prior_cost = 0.0  # cost of earlier attempts (retries)
        self.features = CliFeatures()  # what the CLI supports, detected when the run starts
        self.cli: subprocess.Popen | None = None  # the running CLI, until its tree is stopped
        self.cli_pid: int | None = None
        self.cli_pid_started: float | None = None
        self.cli_started_at: str | None = None
        self.session_id: str | None = None  # of the current attempt
        self.talk: Conversation | None = None  # the CLI's stdin and the run's channel, from the first attempt on
        self.question_hooks: list[subprocess.Popen] = []  # --on-question commands started (reaped as they end)
        self.undelivered: list[dict] = []  # messages the CLI never got, known once the run's end is written

    # -- helpers -------------------------------------------------------------

    def log(self, message: str) -> None:
        """Append one timestamped line to the run's log.  Never raises: on a full or read-only disk the line is lost."""
        data = f"{utc_now()} supervisor[{os.getpid()}]: {message}\n".encode("utf-8", "backslashreplace")
        try:
            os.write(self.log_file.fileno() if self.log_file is not None else 2, data)
        except (OSError, ValueError):
            pass

    def _on_signal(self, signum: int, _frame) -> None:
        if self.stop_request is None:  # the first cause is the one recorded (a scheduler's SIGTERM may follow its time-limit signal)
            self.stop_request = StopRequest(signum, signum == self.time_limit_signal)

    @property
    def stopped_by(self) -> str:
        """Who asked this supervisor to stop, in words (:attr:`.attempt.StopRequest.words`)."""
        return self.stop_request.words if self.stop_request else "nobody"

    def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early for a stop request."""
        deadline = time.monotonic() + seconds
        while not self.stop_request and time.monotonic() < deadline:
            time.sleep(min(SLEEP_STEP_S, max(0.0, deadline - time.monotonic())))

    def _grace(self) -> float:
        """The grace period in seconds: the run's, or a shorter one a stop request asked for (``stop_grace_s``)."""
        if self.stop_request:
            try:
                rec = self.store.read(self.name)
            except OrchestratorError:
                rec = None
            asked = rec.stop_grace_s if rec is not None and rec.run_id == self.run_id else None
            if isinstance(asked, (int, float)) and not isinstance(asked, bool) and 0 <= asked < math.inf:
                return float(asked)
        return float(self.limits.kill_grace_s)

    # -- the run -------------------------------------------------------------

    def run(self) -> int:
        """Run the job to its end; returns 0 (the outcome is in the record)."""
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        if self.time_limit_signal:  # the executor's "time limit near" signal; without it the signal keeps its default
            signal.signal(self.time_limit_signal, self._on_signal)
        procs.become_subreaper()
        rec = self._claim()
        if rec is None:
            return 0
        self.limits = rec.spec.limits
        self._stop_orphans(rec)
        rec = self._wait_for_turn(rec)
        if rec is None:
            return 0
        self.features = self._detect_features(rec)
        if self.stop_request:  # asked to stop while the CLI was being asked what it supports
            self._finish_without_cli(State.KILLED, f"stopped by {self.stopped_by} before the CLI started", None)
            return 0
        mode = rec.spec.claude.permission_mode
        refused = mode and self.features.refuse_permission_mode(mode)
        if refused:
            self._finish_without_cli(State.FAILED, refused, None)
            return 0
        self.log(f"CLI {self.features.version or '(version unknown)'}; system prompt snapshot: {self.features.system_prompt_snapshot}")
        outcome = self._attempts(rec)
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
        :data:`.writer.CLAIM_RETRY_LIMIT_S` seconds (a stop request ends that).

        Returns:
            The claimed record, or None if there is nothing to do (logged).
        """
        me, me_started = self.tree.me.pid, self.tree.me.create_time()
        ref = os.environ.get(self.ref_from_env) if self.ref_from_env else None  # e.g. a job ID the scheduler set

        def claim(rec: StatusRecord) -> StatusRecord | None:
            if rec.state not in CLAIMABLE:
                return None
            rec.supervisor_pid, rec.supervisor_started = me, me_started
            if ref and not rec.executor_ref:  # the launcher died before it could write it
                rec.executor_ref = ref
            return rec

        deadline = time.monotonic() + CLAIM_RETRY_LIMIT_S
        wait = RETRY_FIRST_WAIT_S
        while True:
            try:
                rec = self.writer.update(claim)
                break
            except BadRecord as exc:
                self.log(f"the record is unreadable ({exc.reason}); nothing to do")
                return None
            except (OrchestratorError, OSError) as exc:
                self.writer.failed("the record", exc)
                if self.stop_request or time.monotonic() + wait > deadline:
                    self.log("could not claim the run; nothing started (the record will be shown lost)")
                    return None
                time.sleep(wait)
                wait = min(wait * 2, RETRY_MAX_WAIT_S)
        self.writer.written("the record")
        if rec is None or rec.run_id != self.run_id or rec.state not in CLAIMABLE:
            self.log("the record no longer belongs to this run or is not waiting/queued/starting; nothing to do")
            return None
        return rec

    def _stop_orphans(self, rec: StatusRecord) -> None:
        """Stop the processes a lost earlier run of this agent left running (the record's ``orphans``), before anything else.

        The record then says ``orphans_stopped``: the PIDs found (:meth:`.tree.ProcessTree.stop_orphans`).
        """
        if rec.orphans is None:
            return
        pids = self.tree.stop_orphans(rec.orphans, float(self.limits.kill_grace_s))

        def note(r: StatusRecord) -> None:
            r.orphans, r.orphans_stopped = None, pids

        self.writer.change("orphans", note)

    def _detect_features(self, rec: StatusRecord) -> CliFeatures:
        """What this run's CLI supports (:func:`..claude.features.detect_features`); unknown if that fails."""
        try:
            return detect_features(self.paths, rec.spec.claude_bin, cli_env())
        except Exception as exc:  # noqa: BLE001 - e.g. its cache cannot be written or read: the run goes on without
            self.log(f"could not detect what the CLI supports ({exc}); assuming nothing")
            return CliFeatures()

    def _check_cached_version(self, rec: StatusRecord, reported: str | None) -> None:
        """Drop the CLI's cached features if its init event reports another version than they were read from
        (a version manager switched what the same file runs): the next run reads ``--version`` and ``--help`` again."""
        if not same_version(self.features.version, reported):
            self.log(f"the CLI says it is {reported}, its cached features are of {self.features.version}; "
                     "the next run asks it again")
            forget(self.paths, rec.spec.claude_bin)

    # -- scheduling ------------------------------------------------------------

    def _wait_for_turn(self, rec: StatusRecord) -> StatusRecord | None:
        """Wait for the dependencies (``waiting``) and for a slot (``queued``).

        Returns the record, now ``starting``, or None if the run ended here
        (skipped, or killed by a stop request; recorded).
        """
        if rec.state is State.WAITING:
            rec = self._wait_for_dependencies(rec)
            if rec is None:
                return None
        if rec.state is State.QUEUED and not self._leave_queue(rec):
            return None
        if self.stop_request:
            self._finish_without_cli(State.KILLED, f"stopped by {self.stopped_by} before the CLI started", None)
            return None
        return self.writer.record or rec

    def _wait_for_dependencies(self, rec: StatusRecord) -> StatusRecord | None:
        """Sleep until every ``--after`` agent has ended (:func:`.waits.await_dependencies`).

        Then: skip the run if one did not complete (unless ``--after-any``),
        take ``--with-context-from``'s session to fork, and take a slot or
        join the queue (:func:`..usecases.scheduling.take_slot_or_enqueue`).  Returns
        the record, now ``starting`` or ``queued``, or None if the run ended
        here (``skipped`` or ``killed``).
        """
        deps = list(rec.spec.after)
        self.log(f"waiting for {', '.join(deps)}")
        from ..executors.registry import executor_of
        from ..usecases.scheduling import take_slot_or_enqueue
        from . import waits  # only a run that waits pays for these (a supervisor's memory is a bench figure)

        judge_local = executor_of(rec).host_bound  # a cluster job's host is not the launcher's: host-bound runs are read as they are
        states = waits.await_dependencies(self.paths, self.store, deps, lambda: bool(self.stop_request), judge_local)
        if self.stop_request:
            self._finish_without_cli(State.KILLED, f"stopped by {self.stopped_by} while waiting", None)
            return None
        why = waits.unmet(states, rec.spec.after_any)
        if why:
            self._finish_without_cli(State.SKIPPED, f"skipped: a dependency did not complete ({why})", None)
            return None
        source = rec.spec.context_from
        resumed = read_session(self.paths, source) if source else None
        if source and resumed is None:
            self._finish_without_cli(State.SKIPPED, f"skipped: {source} left no session to take context from", None)
            return None
        target, granted = State.STARTING, None
        if self.limits.max_parallel and executor_of(rec).keeps_queue:
            self.slot_fd, granted = take_slot_or_enqueue(self.paths, self.name, self.run_id, self.limits.max_parallel)
            target = State.STARTING if self.slot_fd is not None else State.QUEUED
        self.log(f"dependencies done ({', '.join(f'{d} {s}' for d, s in states.items())}); now {target}")

        def ready(r: StatusRecord) -> None:
            if source:
                r.resumed_from, r.forked_from = resumed, source
            if granted is not None:
                r.slot_granted_at = granted
            move_from(r, State.WAITING, target)

        self.writer.change("ready", ready)
        return self.writer.record

    def _leave_queue(self, rec: StatusRecord) -> bool:
        """A ``queued`` run goes on: at once if its executor's scheduler kept the queue
        (the scheduler has started this job), else once it has a slot (:meth:`_wait_for_slot`)."""
        from ..executors.registry import executor_of  # only a queued run pays for the registry

        if executor_of(rec).keeps_queue:
            return self._wait_for_slot()
        self.writer.change("started by the scheduler", lambda r: move_from(r, State.QUEUED, State.STARTING))
        return True

    def _wait_for_slot(self) -> bool:
        """Wait in the FIFO queue until this run is at its head and a slot is free (:func:`.waits.await_slot`).

        The record then says ``starting``.  Returns False if a stop request
        came first (the record is then ``killed``).
        """
        self.log(f"queued: waiting for one of {self.limits.max_parallel} slots")
        from . import waits  # only a queued run pays for the waits (and their watchdog)

        got = waits.await_slot(self.paths, self.name, self.limits.max_parallel, lambda: bool(self.stop_request))
        if got is None:
            self._finish_without_cli(State.KILLED, f"stopped by {self.stopped_by} while queued", None)
            return False
        self.slot_fd, granted = got
        self.log("got a slot")

        def note(r: StatusRecord) -> None:
            r.slot_granted_at = granted
            move_from(r, State.QUEUED, State.STARTING)

        self.writer.change("slot", note)
        return True

    # -- the attempts ------------------------------------------------------------

    def _fork(self, rec: StatusRecord) -> bool:
        """True if the run starts from a fork of the session it resumes (``--fork-session``): asked for, or ``--with-context-from``."""
        return rec.spec.fork or bool(rec.spec.context_from)

    def _attempts(self, rec: StatusRecord) -> AttemptEnd | None:
        """Run the CLI; again after a retryable API error, up to the run's retries, with backoff.

        Returns how the last attempt ended, or None if the CLI could not be
        started (the run is then recorded failed).
        """
        session_id = rec.session_id or str(uuid.uuid4())
        outcome: AttemptEnd | None = None
        self.talk = Conversation(self.paths, self.name, self.run_id, keep_open_s=rec.spec.keep_open_s, log=self.log,
                                 on_question=lambda q: self._on_question(rec, q))
        self.talk.open()
        for attempt in range(1, 2 + int(self.limits.retries)):
            if outcome is not None:
                backoff = self.limits.retry_backoff_s * 2 ** (attempt - 2)
                self.log(f"attempt {attempt - 1} failed with a retryable error ({outcome.error}); retrying in {backoff:.1f} s")
                self._sleep(backoff)
                if self.stop_request:
                    break
                if not rec.resumed_from or self._fork(rec):
                    session_id = str(uuid.uuid4())  # the failed attempt's session stays as it is
                self.prior_cost += float((outcome.progress.result or {}).get("total_cost_usd") or 0)

                def next_attempt(r: StatusRecord, n: int = attempt, sid: str = session_id) -> None:
                    r.attempt, r.session_id = n, sid

                self.writer.change("attempt", next_attempt)
            self.session_id = session_id
            outcome = self._run_attempt(rec, session_id)
            if outcome is None:
                return None
            self._check_cached_version(rec, outcome.progress.cli_version)
            retry = (
                outcome.state is State.FAILED
                and not self.stop_request
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
        if not self.writer.write_file(path, rec.task):
            self._finish_without_cli(State.FAILED, f"could not write the task file {path}; see the log", None)
            return None
        self.writer.change("task_file", lambda r: setattr(r, "task_file", str(path)))
        return path

    def _start_cli(self, rec: StatusRecord, session_id: str) -> subprocess.Popen | None:
        """Start the CLI (:func:`.attempt.spawn`) in the run's cwd, the task and any message received on its stdin.

        Returns the process, or None if it could not be started: the run is
        then recorded ``failed`` (exit code 127 if the executable is missing, else 126).
        """
        task_path = self._task_path(rec)
        if task_path is None:
            return None
        try:
            task = read_task(task_path)
            prompt_tool = self._permission_prompt(rec) if rec.spec.ask_permission else None
        except CliNotStarted as exc:
            self._finish_without_cli(State.FAILED, exc.error, exc.exit_code)
            return None
        argv = build_argv(
            rec.spec.claude_bin, rec.spec.claude, session_id=session_id, resume_id=rec.resumed_from,
            fork=self._fork(rec), features=self.features, permission_prompt=prompt_tool,
        )
        try:
            proc = spawn(argv, rec.cwd, self.log_file, self.log)
        except CliNotStarted as exc:
            self._finish_without_cli(State.FAILED, exc.error, exc.exit_code)
            return None
        stdin = os.dup(proc.stdin.fileno())  # the conversation's own descriptor: it closes it when the last turn has ended
        proc.stdin.close()
        self.talk.start(stdin, task, await_ready=prompt_tool is not None)
        self.talk.watch()  # after the CLI's start: watchdog's import is not on its way
        self.log(f"the task ({len(task)} characters) and {self.talk.received} messages queued for the CLI's stdin")
        self.cli = proc
        self.cli_pid, self.cli_pid_started, self.cli_started_at = proc.pid, procs.start_time(proc.pid), utc_now()
        return proc

    def _permission_prompt(self, rec: StatusRecord) -> tuple[str, str]:
        """``--ask-permission``: write the channel's ``mcp.json`` (the toolkit's permission server,
        :mod:`.permission_server`) and return ``(its path, the tool the CLI asks)``.

        Raises:
            CliNotStarted: the ``mcp`` package is missing, or the file cannot be written.
        """
        from . import permission_server  # only a run that asks pays for it

        missing = permission_server.available()
        if missing:
            raise CliNotStarted(missing, None)
        path = self.paths.channel(self.name, self.run_id) / channel.MCP_CONFIG
        config = permission_server.mcp_config(path.parent, rec.spec.question_timeout_s, sys.executable, self.run_id)
        try:
            os.unlink(path.parent / channel.MCP_READY)  # a retry's server says it anew
        except OSError:
            pass
        if not self.writer.write_file(path, json.dumps(config, indent=1) + "\n"):
            raise CliNotStarted(f"could not write {path}; see the log", None)
        return str(path), channel.PERMISSION_TOOL

    def _on_question(self, rec: StatusRecord, question: dict) -> None:
        """A new permission question: start ``--on-question`` (not waited for), if the launch gave one."""
        self.question_hooks = [p for p in self.question_hooks if p.poll() is None]
        if not rec.spec.on_question:
            return
        env = question_env(cli_env(), question, self.name, self.run_id, self.paths.status(self.name))
        proc = start_hook(list(rec.spec.on_question), env, rec.cwd, self.log_file)
        self.log(f"on-question: {list(rec.spec.on_question)}" + ("" if proc else " could not be started"))
        if proc is not None:
            self.question_hooks.append(proc)

    def _log_size(self) -> int:
        """The run log's size in bytes now (0 if it cannot be read): where what comes next starts."""
        try:
            return os.stat(self.paths.log(self.name, self.run_id)).st_size
        except OSError:
            return 0

    def _stderr_since(self, offset: int) -> list[str]:
        """The lines the CLI wrote to its stderr (the run's log) since ``offset``, at most the last
        :data:`STDERR_TAIL_BYTES` of them, the supervisor's own lines left out; [] if the log cannot be read.
        Untrusted text: :func:`..claude.stream.last_stderr_line` makes it plain."""
        try:
            with open(self.paths.log(self.name, self.run_id), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                f.seek(max(offset, size - STDERR_TAIL_BYTES))
                data = f.read(STDERR_TAIL_BYTES)
        except OSError:
            return []
        return [line for line in data.decode("utf-8", "replace").split("\n") if not OWN_LOG_LINE.match(line)]

    def _run_attempt(self, rec: StatusRecord, session_id: str) -> AttemptEnd | None:
        """Start the CLI once and follow it to its end.  None if it could not be started (recorded)."""
        log_start = self._log_size()  # what the CLI writes to its stderr (the log) comes after this
        proc = self._start_cli(rec, session_id)
        if proc is None:
            return None
        # Opened before the record says running, so that a reader of a running record finds the file it names.
        transcript = TranscriptFile(self.paths.transcript(self.name, self.run_id), self.log)
        attempt = Attempt(proc, tree=self.tree, limits=self.limits, transcript=transcript, log=self.log,
                          stop_request=lambda: self.stop_request, grace=self._grace,
                          talk=self.talk, record_talk=self._record_talk,
                          turn_ended=lambda: self._turn_ended(attempt.progress))
        written = self._write_progress(attempt.progress)  # running, with the CLI's pid
        # The session ID is ours (--session-id) or the resumed one, so it is known now (the final writes retry it).
        self.writer.write_file(self.paths.session(self.name), session_id + "\n")
        self.log(f"CLI started, pid {proc.pid}")
        try:
            attempt.pump(lambda: self._write_progress(attempt.progress), lambda: self.writer.failing("the record"), dirty=not written)
        finally:
            transcript.close()
        outcome = attempt.end(session_id, lambda: self._stderr_since(log_start))
        self.cli = None
        return outcome

    def _turn_ended(self, progress: RunProgress) -> None:
        """A turn has ended: its result becomes ``outputs/<agent>_latest.txt`` now (every turn's stays in
        the transcript), so a sender waiting for an answer reads it while the run goes on."""
        if progress.results > 1 or self.talk.received or self.talk.keep_open_s:  # a one-turn run writes it once, at its end
            text = report.result_text(progress)
            if text is not None:
                self.writer.write_file(self.paths.latest_output(self.name), text)
                preview = text.rstrip("\n")[:RESULT_PREVIEW_CHARS]
                self.writer.change("turn", lambda r: setattr(r, "result", preview))  # the record's preview follows
        self._write_progress(progress)

    def _record_talk(self) -> None:
        """Write the conversation's news (messages, a question, a keep-open wait) to the record."""
        self.writer.change("talk", self.talk.change())

    def _write_progress(self, progress: RunProgress) -> bool:
        """Write the run's progress to the record; the first time, that it runs (``running``, the CLI's pid).

        Returns False if the record cannot be written now (the change waits
        for the next write that succeeds).
        """
        cli = (self.cli_pid, self.cli_pid_started, self.cli_started_at) if self.cli_pid is not None else None
        change = report.progress_change(progress, self.tree, cli=cli, session_id=self.session_id, prior_cost=self.prior_cost)
        return self.writer.change("progress", change)

    # -- the end -------------------------------------------------------------

    def _finish(self, outcome: AttemptEnd) -> None:
        """Write the run's result, session and final record (retried while the state root cannot be written)."""
        output = report.output_text(outcome)
        fields = report.final_fields(outcome, self.tree, self.prior_cost)
        edit, closing = report.final_edit(outcome, self.tree), self._closing()

        def final(rec: StatusRecord) -> None:
            edit(rec)
            closing(rec)

        self.writer.persist(
            [
                ("the result file", lambda: self.writer.write_file(self.paths.latest_output(self.name), output)),
                ("the session file", lambda: self.writer.write_file(self.paths.session(self.name), outcome.session_id + "\n")),
                ("the final record", lambda: self.writer.end(outcome.state, edit=final, **fields)),
            ],
            RECORD_RETRY_LIMIT_S,
        )
        ended = self.writer.record.status if self.writer.record is not None else outcome.state
        self.log(f"run ended: {ended}{' (' + outcome.error + ')' if outcome.error else ''}")

    def _finish_without_cli(self, state: State, error: str, exit_code: int | None, limit_s: float = RECORD_RETRY_LIMIT_S) -> None:
        """End a run whose CLI never started, could not be started, or was stopped after an internal error.

        Writes the result file (``[state] error``) and the final record,
        retried for up to ``limit_s`` seconds; nothing if the run has ended already.
        """
        own = self.writer.record
        if own is not None and not own.state.is_active:
            self.log(f"the run has ended already ({own.status}); not recording {state} ({error})")
            return
        ended = utc_now()
        closing = self._closing()
        writes = [("the final record", lambda: self.writer.end(
            state, edit=closing, error=error, exit_code=exit_code, is_error=True, last_activity=ended, finished=ended))]
        if own is not None:  # the run is known to be ours: its result file may be written
            writes.insert(0, ("the result file", lambda: self.writer.write_file(self.paths.latest_output(self.name), f"[{state}] {error}\n")))
        self.writer.persist(writes, limit_s)
        self.log(f"run ended: {state} ({error})")

    def _closing(self) -> Callable[[StatusRecord], None]:
        """The final write's last change: the conversation's end (no question pending, no keep-open wait)
        and the messages the CLI never got (``messages.undelivered``), read under the record's lock:
        a sender either appended before it, or sees the run ended and continues the session itself."""
        talk = self.talk
        if talk is not None:
            talk.close()
        ended = talk.change(final=True) if talk is not None else None

        def closing(rec: StatusRecord) -> None:
            if ended is not None:
                ended(rec)
                self.undelivered = talk.undelivered()
            else:  # the CLI never started: every message sent while it waited is undelivered
                self.undelivered, _, _ = channel.read_messages(self.paths.inbox(self.name, self.run_id))
            if self.undelivered or rec.messages:
                counts = rec.messages or {"received": len(self.undelivered), "delivered": 0, "answered": 0, "skipped": 0}
                rec.messages = {**counts, "undelivered": len(self.undelivered)}

        return closing

    def continue_conversation(self) -> None:
        """The supervisor's last step, once the agent's name is free: the messages the CLI never got
        continue its session (:func:`..usecases.talk.send`), unless the run was killed or skipped
        (they stay in its inbox, counted in ``messages.undelivered``).  Never raises."""
        if not self.undelivered:
            return
        texts = [m["text"] for m in self.undelivered]
        rec = self.writer.record
        state = rec.state if rec is not None else None
        inbox = self.paths.inbox(self.name, self.run_id)
        from ..usecases import talk  # only a run that ends with messages pending pays for the launch path

        if state not in talk.CONTINUED_AFTER:
            self.log(f"{len(texts)} messages were never delivered; the run ended {state}, so they do not continue it (see {inbox})")
            return
        try:
            sent = talk.send(self.paths, self.name, texts)
        except Exception as exc:  # noqa: BLE001 - the run has ended; the messages stay in the inbox, counted
            self.log(f"{len(texts)} messages never delivered could not continue the session: {exc}")
            return
        self.log(f"{len(texts)} messages never delivered continue the session: {sent.how} in run {sent.record.run_id}")

    def internal_error(self, exc: Exception) -> None:
        """After an unexpected exception (a bug): stop the CLI's tree, log the traceback, record ``failed``.

        Call it from the ``except`` clause (the traceback is the one being
        handled).  The record write is retried for
        :data:`.writer.SHORT_RETRY_LIMIT_S` seconds only.  Never raises.
        """
        import traceback  # only after a bug: the supervisor's memory is a bench figure

        self.log(f"supervisor internal error: {exc!r}\n{traceback.format_exc()}")
        proc = self.cli
        try:
            if proc is not None:
                self.tree.stop_cli(proc, self._grace())
                self.cli = None
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
        """Run the launch's ``--on-complete`` hook once, after the run ended (:func:`.hooks.run_on_complete`).

        A stop request that came before is the run's, already obeyed: only a new one
        (SIGTERM, SIGINT or SIGHUP, e.g. ``kill_agent.py``) stops the hook, with the run's grace.
        """
        self.stop_request = None
        run_on_complete(self.paths, self.writer, self.log_file,
                        stop=lambda: self.stopped_by if self.stop_request else None, grace=self._grace)
