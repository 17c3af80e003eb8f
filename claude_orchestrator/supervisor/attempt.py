"""One attempt: one CLI process, from its start to how it ended.

:func:`spawn` starts the CLI (an argument vector, never a shell) in its own
session and process group, the task file on its stdin.  :class:`Attempt`
follows it: :meth:`Attempt.pump` copies its stdout to the transcript and its
events to a :class:`..claude.stream.RunProgress`, samples the tree's RSS once a
second, keeps the record's progress, and calls :meth:`Attempt.tick`, which
decides whether the tree must stop (a :class:`..core.states.StopReason`) and stops
it: SIGTERM to the tree, the grace period, SIGKILL.  :func:`judge` says how
the attempt ended, from that reason or else from the result event and the
exit status.
"""

from __future__ import annotations

import dataclasses
import math
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, NamedTuple

from ..claude.invocation import cli_env
from ..claude.stream import RunProgress, classify, last_stderr_line
from ..core.limits import RunLimits
from ..core.modes import user_umask
from ..core.states import ExitCode, State, StopReason
from ..records.shape import utc_now
from ..records.spec import Outcome
from .conversation import Conversation
from .events import EventReader
from .transcript_file import TranscriptFile
from .tree import ProcessTree

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
#: Longest wait for the CLI's output in one turn of the pump, in seconds; and the pause once its stdout has ended.
READ_WAIT_S = 0.25
EOF_PAUSE_S = 0.1


class CliNotStarted(Exception):
    """The CLI could not be started.

    Attributes:
        error: why, in a sentence (the record's ``error``).
        exit_code: 127 (:attr:`ExitCode.CLI_MISSING`) if the executable is
            missing, 126 (:attr:`ExitCode.CANNOT_EXECUTE`) if it cannot be
            run, None if its task file could not be read.
    """

    def __init__(self, error: str, exit_code: int | None) -> None:
        super().__init__(error)
        self.error, self.exit_code = error, exit_code


def read_task(task: Path) -> str:
    """The run's task, from its task file (UTF-8, checked by the launcher).

    Raises:
        CliNotStarted: the file cannot be read.
    """
    try:
        fd = os.open(task, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError as exc:
        raise CliNotStarted(f"cannot read the task file {task}: {exc.strerror or exc}", None) from exc


def spawn(argv: list[str], cwd: str | None, stderr: IO[bytes] | None, log: Callable[[str], None]) -> subprocess.Popen:
    """Start the CLI: ``argv``, its own session and process group, stdin and stdout pipes.

    The task and the messages go to its stdin (:class:`.conversation.Conversation`).
    ``stderr``: the run's log (None: this process's stderr, which is the log
    too).  The environment is :func:`..claude.invocation.cli_env`'s; no descriptor
    of ours (the life lock, a slot) is inherited.

    Raises:
        CliNotStarted: the CLI cannot be started.
    """
    try:
        log(f"starting the CLI in {cwd}: {argv}")
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=cwd,
            env=cli_env(),
            umask=user_umask(),  # the files the agent writes in the user's project get the caller's modes, not the state root's
            start_new_session=True,  # its own session and process group
            close_fds=True,  # neither the life lock nor the slot leaks into it
        )
    except OSError as exc:
        missing = isinstance(exc, FileNotFoundError) and not os.path.exists(argv[0])
        raise CliNotStarted(f"could not start the CLI: {exc}", int(ExitCode.CLI_MISSING if missing else ExitCode.CANNOT_EXECUTE)) from exc


@dataclasses.dataclass
class AttemptEnd:
    """How one attempt (one CLI process) ended."""

    state: State
    error: str | None
    exit_code: int | None
    progress: RunProgress
    session_id: str
    stop_reason: StopReason | None = None
    skipped_lines: int = 0  # stream lines not understood
    transcript_dropped: int = 0  # bytes of output the transcript could not take
    ended_at: str = dataclasses.field(default_factory=utc_now)  # when the outcome was decided: the record's ``finished``, however late it is written

    @property
    def stopped_after_result(self) -> bool:
        """True if the CLI lingered after its result event and its tree was stopped."""
        return self.stop_reason is StopReason.LINGERED

    @property
    def outcome(self) -> Outcome:
        """How the run ended, as the record keeps it: ``is_error`` is the result event's, else "not completed"."""
        result = self.progress.result
        is_error = bool(result.get("is_error")) if result is not None else self.state is not State.COMPLETED
        return Outcome(self.state, self.error, self.exit_code, is_error, self.stop_reason)


class StopRequest(NamedTuple):
    """A signal that asked the supervisor to stop, and what it means.

    Attributes:
        signum: the signal.
        time_limit: True if it is the signal the executor said means "the job's time limit
            is near" (``--time-limit-signal``): the run then ends ``timeout``, not ``killed``.
    """

    signum: int
    time_limit: bool = False

    @property
    def reason(self) -> StopReason:
        """Why the tree is stopped: TIMEOUT for the time-limit signal, else KILLED."""
        return StopReason.TIMEOUT if self.time_limit else StopReason.KILLED

    @property
    def words(self) -> str:
        """Who asked, in words: ``signal 15``, or ``the job's time limit (SIGUSR1)``."""
        if not self.time_limit:
            return f"signal {self.signum}"
        try:
            name = signal.Signals(self.signum).name
        except ValueError:
            name = f"signal {self.signum}"
        return f"the job's time limit ({name})"


#: Seconds the supervisor waits, after its CLI died of a signal it did not send, for the same signal to reach it.
SIBLING_SIGNAL_WAIT_S = 1.0


def judge(reason: StopReason | None, result: dict | None, exit_code: int, *, stop: StopRequest | None,
          limits: RunLimits, peak_mb: float, stderr: Callable[[], list[str]] | None = None) -> tuple[State, str | None]:
    """How an attempt ended: ``(state, error)``.

    By why the supervisor stopped the tree (``reason``), else by the result
    event and the exit status (:func:`..claude.stream.classify`); a CLI stopped for
    lingering after its result is judged by that result, the exit was ours.
    A CLI that ended by itself without a result event is judged with its last
    stderr line (``stderr()``: the lines it wrote there, asked only then), which says why.
    """
    if reason is StopReason.KILLED:
        return State.KILLED, f"stopped by request (signal {stop.signum if stop else None})"
    if reason is StopReason.TIMEOUT and stop is not None and stop.time_limit:
        return State.TIMEOUT, "no result before the job's time limit (the scheduler's limit came before the run's --timeout)"
    if reason is StopReason.TIMEOUT:
        return State.TIMEOUT, f"no result within the {limits.timeout_s:g} s timeout"
    if reason is StopReason.MEMORY:
        return State.MEMORY_EXCEEDED, f"the process tree's RSS reached the {limits.memory_limit_mb:g} MiB limit (peak {peak_mb:.0f} MiB)"
    if reason is StopReason.LINGERED:
        return classify(result, 0)
    said = last_stderr_line(stderr()) if result is None and stderr is not None else None
    return classify(result, exit_code, said)


class Attempt:
    """A running CLI, followed to its end.

    Times are ``time.monotonic()`` seconds.

    Args:
        proc: the CLI (:func:`spawn`).
        tree: the supervisor's process tree (sampled, signalled).
        limits: the run's limits.
        transcript: the run's transcript.
        log: the supervisor's log.
        stop_request: the stop request so far (:class:`StopRequest`), or None.
        grace: the grace period now, in seconds (a stop request may shorten it).
        talk: the run's conversation: what goes to the CLI's stdin (started by the caller).
        record_talk: writes the conversation's news to the record (when :attr:`.conversation.Conversation.dirty`).
        turn_ended: called once per result event (a turn of the conversation has ended).
    """

    def __init__(self, proc: subprocess.Popen, *, tree: ProcessTree, limits: RunLimits, transcript: TranscriptFile,
                 log: Callable[[str], None], stop_request: Callable[[], StopRequest | None], grace: Callable[[], float],
                 talk: Conversation, record_talk: Callable[[], None], turn_ended: Callable[[], None]) -> None:
        self.proc, self.tree, self.limits, self.log = proc, tree, limits, log
        self.talk, self.record_talk, self.turn_ended = talk, record_talk, turn_ended
        self._turns_seen = 0  # result events handed to turn_ended
        self.stop_request, self.grace = stop_request, grace
        self.events = EventReader(transcript, log)
        self.progress = self.events.progress
        self.started = 0.0  # when the pump began: the timeout counts from there
        self.paused_s = 0.0  # seconds the run waited on the master (idle after a turn, a question pending): not counted
        self._paused_at: float | None = None  # since when it waits on the master, while it does
        self.alive = True
        self.reason: StopReason | None = None  # why the tree is being stopped
        self.grace_s = 0.0  # seconds from SIGTERM to SIGKILL
        self.term_at: float | None = None  # when SIGTERM was sent
        self.killed = False  # SIGKILL sent
        self.exited_at: float | None = None  # when the CLI was first seen exited
        self.eof = False  # its stdout has ended
        self.rss_mb = 0.0  # the tree's RSS at the last sample
        self._next_sample = 0.0
        self._last_write = 0.0
        self._counts = (len(tree.seen), len(tree.memory_warnings))  # what the record was last told of

    def pump(self, save: Callable[[], bool], retrying: Callable[[], bool], dirty: bool) -> StopReason | None:
        """Follow the CLI until it has exited and its stdout is drained.

        Args:
            save: writes the record's progress; False if it could not be written now.
            retrying: True while the record cannot be written (progress is then tried less often).
            dirty: a progress write is due now.

        Returns:
            Why the tree was stopped, or None if the CLI ended by itself.
        """
        self.started = time.monotonic()
        self._last_write = -math.inf if dirty else self.started
        while True:
            dirty = self._read() or dirty
            now = time.monotonic()
            talk = self.talk
            if talk.due(now):
                talk.look(now)
            if self.progress.results > self._turns_seen:
                self._turns_seen = self.progress.results
                self._next_sample = 0.0  # a sample now, at the turn's end: a run shorter than a second has its peak too
                self.turn_ended()
            talk.after_events(self.progress, now)
            self._pause(talk.waits_on_the_master, now)
            if talk.dirty:
                self.record_talk()
            self.alive = self.proc.poll() is None
            dirty = self._sample(now) or dirty
            every = PROGRESS_RETRY_S if retrying() else PROGRESS_EVERY_S
            if dirty and now - self._last_write >= every:
                dirty, self._last_write = not save(), now
            self.tick(now)
            if not self.alive and self._drained(now):
                break
        self.events.close()
        asked = self.stop_request()
        if self.reason is None and asked:  # asked to stop just as the CLI ended on its own
            self.reason = asked.reason
        return self.reason

    def tick(self, now: float) -> StopReason | None:
        """Decide whether the tree must stop, and stop it: SIGTERM at once, SIGKILL when the grace period is over.

        Returns:
            Why the tree is being stopped, or None while it may run.
        """
        if self.reason is None:
            self.reason = self._decide(now)
            if self.reason is not None:
                self.grace_s = self.grace()
                self.log(f"SIGTERM to the tree; SIGKILL in {self.grace_s:g} s")
                self.tree.signal(self.proc.pid, signal.SIGTERM)
                self.term_at = now
        if self.term_at is not None and not self.killed and now - self.term_at >= self.grace_s:
            self.log("grace period over: SIGKILL to the tree")
            self.tree.signal(self.proc.pid, signal.SIGKILL)
            self.killed = True
        return self.reason

    def _decide(self, now: float) -> StopReason | None:
        """Why the tree must stop now (logged), or None: the memory limit, a stop request, the timeout, lingering."""
        limits = self.limits
        if limits.memory_limit_mb and self.rss_mb >= limits.memory_limit_mb:
            self.log(f"memory limit: tree RSS {self.rss_mb:.0f} MiB >= {limits.memory_limit_mb:g} MiB; stopping the tree")
            return StopReason.MEMORY
        asked = self.stop_request()
        if asked is not None and asked.time_limit:
            self.log(f"{asked.words} is near; stopping the tree")
            return asked.reason
        if asked:
            self.log(f"stop requested ({asked.words})")
            return asked.reason
        if limits.timeout_s and self.working_s(now) >= limits.timeout_s and self.alive:
            self.log(f"timeout: {limits.timeout_s:g} s passed (of work: {self.paused_s:.0f} s waiting on the master not counted); stopping the tree")
            return StopReason.TIMEOUT
        linger = max(limits.kill_grace_s, LINGER_MIN_S)
        closed = self.talk.closed_at
        if closed is not None and self.alive and now - closed >= linger:
            self.log(f"the CLI did not exit within {linger:g} s of its last result and the end of its stdin; stopping it")
            return StopReason.LINGERED
        return None

    def _pause(self, waiting: bool, now: float) -> None:
        """Start or stop the timeout's pause: time the run waits on the master is not the run's work."""
        if waiting and self._paused_at is None:
            self._paused_at = now
        elif not waiting and self._paused_at is not None:
            self.paused_s += now - self._paused_at
            self._paused_at = None

    def working_s(self, now: float) -> float:
        """Seconds since the CLI started, less the time it waited on the master (what ``--timeout`` limits)."""
        waiting = now - self._paused_at if self._paused_at is not None else 0.0
        return now - self.started - self.paused_s - waiting

    def _read(self) -> bool:
        """Wait up to :data:`READ_WAIT_S` for the CLI's output, a change in the channel folder or room in
        its stdin; take in what came, write what waits.  True if the progress changed."""
        talk = self.talk
        readers = [talk.wake_r] if self.eof else [self.proc.stdout.fileno(), talk.wake_r]
        writers = [talk.fd] if talk.wants_write else []
        try:
            ready, can_write, _ = select.select(readers, writers, [], EOF_PAUSE_S if self.eof else READ_WAIT_S)
        except (OSError, ValueError):  # a descriptor closed under us: looked at again next turn
            return False
        if can_write:
            talk.write()
        if talk.wake_r in ready:
            talk.woken()
            if talk.wants_write:  # a message just came: to the CLI now, before anything else is done
                talk.write()
        if self.eof or self.proc.stdout.fileno() not in ready:
            return False
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        return self.events.take(chunk)

    def _sample(self, now: float) -> bool:
        """Sample the tree's RSS and reap exited orphans, once every :data:`SAMPLE_EVERY_S`.

        Returns True if the record should learn of it (a new process, a
        memory warning; a warning is also written at once).
        """
        if now < self._next_sample:
            return False
        self._next_sample = now + SAMPLE_EVERY_S
        self.rss_mb = self.tree.sample(self.limits.memory_limit_mb)
        self.tree.reap(self.proc.pid)
        counts = (len(self.tree.seen), len(self.tree.memory_warnings))
        if counts == self._counts:
            return False
        if counts[1] != self._counts[1]:
            self._last_write = -math.inf  # a warning is written at once
        self._counts = counts
        return True

    def _drained(self, now: float) -> bool:
        """The CLI has exited: True once its stdout has ended, or after
        :data:`DRAIN_AFTER_EXIT_S` if a leftover process still holds it open."""
        if self.eof:
            return True
        self.exited_at = self.exited_at or now
        if now - self.exited_at > DRAIN_AFTER_EXIT_S:
            self.log("the CLI exited but its stdout is still held open by another process; stop reading")
            return True
        return False

    def _take_a_signal_to_us_too(self) -> None:
        """The CLI was ended by a signal the supervisor did not send: if the same signal reaches the
        supervisor (a whole job or process group signalled: ``scancel``, a time limit, a terminal's
        Ctrl-C), the run was stopped, not failed.  Such signals reach the processes one after another,
        so wait for ours at most :data:`SIBLING_SIGNAL_WAIT_S`, then judge by the stop request."""
        deadline = time.monotonic() + SIBLING_SIGNAL_WAIT_S
        while self.stop_request() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # the signal handler sets the request; only in this rare case
        request = self.stop_request()
        if request is not None:
            self.reason = request.reason
            self.log(f"the CLI's signal reached the supervisor too ({request.words}): the run was stopped")

    def end(self, session_id: str, stderr: Callable[[], list[str]] | None = None) -> AttemptEnd:
        """After :meth:`pump`: reap the CLI, stop what it left behind, and judge how the attempt ended.

        ``session_id``: the attempt's, unless its events named another.  ``stderr``: the
        lines the CLI wrote to its stderr (the run's log), read only if it ended without a result (:func:`judge`).
        """
        exit_code = self.proc.wait()
        self.log(f"CLI exited with status {exit_code}; {self.progress.events} events")
        if self.reason is None and self.progress.result is None and exit_code < 0:
            self._take_a_signal_to_us_too()
        self.events.log_totals()
        self.tree.stop_leftovers(self.proc.pid, self.grace())
        state, error = judge(self.reason, self.progress.result, exit_code, stop=self.stop_request(),
                             limits=self.limits, peak_mb=self.tree.peak_mb, stderr=stderr)
        return AttemptEnd(
            state, error, exit_code, self.progress, self.progress.session_id or session_id, self.reason,
            skipped_lines=self.events.skipped, transcript_dropped=self.events.transcript.dropped,
        )
