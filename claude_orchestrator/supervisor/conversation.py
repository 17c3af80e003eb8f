"""The CLI's stdin for one run: the task, then every message of the run's inbox, and its permission questions.

Every run's CLI reads user messages on stdin (``--input-format stream-json``,
one JSON line each, :func:`..records.channel.stream_json_message`) and echoes
each one back as it takes it (``--replay-user-messages``).  The first message
is the task.  :class:`Conversation` writes them (non-blocking: a stuck CLI
never stops the supervisor's loop), watches the run's channel folder
(:mod:`..records.channel`; watchdog, with a look every
:data:`RECHECK_S` for a network filesystem) and writes each new inbox line
to stdin the moment it arrives.

When a turn has ended (a result event after the last message the CLI took)
and no message is pending, stdin is closed and the CLI exits as a ``-p`` run
always did; with ``--keep-open S`` the turn first waits up to S seconds for
another message (the record's ``keep_open_until``).  A run without messages
thus behaves and costs as before: one turn, then exit.

The run's permission questions (``q-<id>.json``, written by
:mod:`.permission_server`) are reflected into the record: the pending one as
``waiting_for``, the settled ones counted in ``questions``; each new question
starts the run's ``--on-question`` command (not waited for).
"""

from __future__ import annotations

import collections
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..claude.stream import RunProgress
from ..core.files import close_quietly
from ..core.modes import dir_mode, user_umask
from ..core.paths import StatePaths
from ..records import channel
from ..records.shape import utc_now
from ..records.status_record import StatusRecord

#: Seconds between looks at the channel folder without an event (a network filesystem's writes from another host raise none).
RECHECK_S = 1.0
#: Bytes written to the CLI's stdin per call (the pipe takes 64 KiB; a big task goes in pieces between reads of its output).
WRITE_CHUNK = 1 << 16
#: Characters of a question's input kept in the record's ``waiting_for`` (the whole input is in its q-<id>.json).
QUESTION_INPUT_CHARS = 2000


#: Seconds the task is held back for the permission server to be ready (``--ask-permission``); then it is sent anyway.
READY_WAIT_S = 60.0


def _wanted(basename: str) -> bool:
    """The channel files whose changes matter: the inbox, the question files, the permission server's readiness."""
    return basename in (channel.INBOX, channel.MCP_READY) or basename.startswith((channel.QUESTION_PREFIX, channel.DONE_PREFIX))


class Conversation:
    """One run's side of its channel: what goes to the CLI's stdin, and what the record says about it.

    Times are ``time.monotonic()`` seconds unless they are ISO-8601 strings.

    Args:
        paths, name, run_id: the run.
        keep_open_s: ``--keep-open``: seconds an ended turn waits for another message.
        log: the supervisor's log.
        on_question: called with each new question (a dict of its file) to start ``--on-question``.

    Attributes:
        received, delivered, answered, skipped: messages read from the inbox; taken by the
            CLI (its echo; a CLI that does not echo: written whole to its stdin); taken by a
            turn that has ended; and inbox lines that were not messages.
        closed_at: when stdin was closed after a turn (None while open): the CLI should exit soon after.
        dirty: the record should learn of a change (:meth:`change`).
    """

    def __init__(self, paths: StatePaths, name: str, run_id: str, *, keep_open_s: float,
                 log: Callable[[str], None], on_question: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.folder = paths.channel(name, run_id)
        self.inbox = self.folder / channel.INBOX
        self.keep_open_s, self.log, self.on_question = keep_open_s, log, on_question
        self.offset = 0  # inbox bytes read
        self.messages: list[dict[str, Any]] = []  # every message received, in order
        self.received = self.delivered = self.answered = self.skipped = 0
        self.last_received_at: str | None = None
        self.last_delivered_at: str | None = None
        self.fd: int | None = None  # the CLI's stdin (write end), while open
        self.closed_at: float | None = None
        self.keep_open_until: float | None = None
        self.keep_open_iso: str | None = None
        self._out = bytearray()  # bytes not written yet
        self._ends: collections.deque[tuple[int, int, str]] = collections.deque()  # (bytes written when message n is whole, n, its text)
        self._unechoed: collections.deque[tuple[int, str]] = collections.deque()  # (n, text) written whole, not yet echoed
        self._marks: list[tuple[int, int]] = []  # (delivered after an echo, result events before it): not yet answered
        self._last_echo_results = 0  # result events before the latest echo
        self._written_max = 0  # the highest message number written whole to this attempt's stdin
        self._written = 0  # bytes written to this attempt's stdin
        self._queued_total = 0  # bytes queued for this attempt's stdin
        self._results_at_delivery = 0  # results seen when the latest message was written whole
        self._results_seen = 0
        self.questions: dict[str, dict[str, Any]] = {}  # id -> pending question
        self.settled: set[str] = set()
        self.counts = {"asked": 0, "allowed": 0, "denied": 0, "timed_out": 0}
        self.dirty = False
        self._next_look = 0.0
        self._hold_until: float | None = None  # the task waits for the permission server until then
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.watcher = None
        self._watch_failed = False

    # -- the channel folder -------------------------------------------------------

    def open(self) -> None:
        """Make the channel folder (0700, or 0770 for a group: :mod:`..core.modes`) and look at it once.
        The watch starts later (:meth:`watch`), once the CLI runs."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=dir_mode())
        except OSError as exc:
            self.log(f"cannot make the channel folder {self.folder} ({exc})")
        self.look()

    def watch(self) -> None:
        """Start watching the channel folder (once), then look at it again: a message that came before the
        watch began is not missed.  Called when the CLI has been started and given its task, so that
        watchdog's import and its observer thread are not on the way to the CLI's start.  A watch that
        cannot start leaves the periodic look."""
        if self.watcher is not None or self._watch_failed:
            return
        from ..usecases.watch import DirWatcher  # watchdog: the supervisor's only use of it

        try:
            self.watcher = DirWatcher(self.folder, _wanted, wake_fd=self.wake_w).__enter__()
        except OSError as exc:
            self.log(f"cannot watch the channel folder {self.folder} ({exc}); looking at it every {RECHECK_S:g} s")
            self.watcher, self._watch_failed = None, True
        self.look()

    def close(self) -> None:
        """Stop watching and close the pipes (stdin included).  Never raises."""
        if self.watcher is not None:
            try:
                self.watcher.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - stopping a watcher thread must not fail the run's end
                pass
            self.watcher = None
        self._close_stdin()
        close_quietly(self.wake_r)
        close_quietly(self.wake_w)

    def woken(self) -> None:
        """The wake pipe is readable: empty it and look at the channel folder."""
        try:
            while os.read(self.wake_r, 4096):
                pass
        except OSError:
            pass
        self.look()

    def look(self, now: float | None = None) -> None:
        """Read the inbox's new lines and the question files (on every wake, and every :data:`RECHECK_S`)."""
        self._next_look = (now if now is not None else time.monotonic()) + RECHECK_S
        self._read_inbox()
        self._look_at_questions()

    def _read_inbox(self) -> None:
        """Take the inbox's new lines: counted, and queued for stdin while it is open."""
        found, self.offset, skipped = channel.read_messages(self.inbox, self.offset)
        if skipped:
            self.skipped += skipped
            self.log(f"{skipped} inbox lines were not messages; skipped")
            self.dirty = True
        for msg in found:
            self.messages.append(msg)
            self.received += 1
            self.last_received_at = utc_now()
            self.dirty = True
            self.log(f"message {msg['id'] or '(no id)'} received ({len(msg['text'])} characters)")
            if self.fd is not None:
                self._queue(self.received, msg["text"])
                self.keep_open_until = self.keep_open_iso = None

    def due(self, now: float) -> bool:
        """True if the periodic look is due."""
        return now >= self._next_look

    # -- stdin -----------------------------------------------------------------------

    def start(self, fd: int, task: str, *, await_ready: bool = False) -> None:
        """A new attempt's CLI: its stdin is ``fd`` (made non-blocking); the task, then every message received so far, are queued.

        Args:
            await_ready: hold the task back until the permission server says it is ready
                (``mcp-ready.json``), at most :data:`READY_WAIT_S`: 2.1.197 asks for the permission
                tool without waiting for its MCP servers, and fails if it is not there yet.
        """
        os.set_blocking(fd, False)
        self.fd, self.closed_at = fd, None
        self._hold_until = time.monotonic() + READY_WAIT_S if await_ready else None
        self.keep_open_until = self.keep_open_iso = None
        self._out.clear()
        self._ends.clear()
        self._unechoed.clear()
        self._marks.clear()
        self._written = self._queued_total = self._results_at_delivery = self._results_seen = 0
        self._last_echo_results = self._written_max = 0
        self._queue(0, task)
        for n, msg in enumerate(self.messages, 1):  # sent while queued, or to an attempt that failed
            self._queue(n, msg["text"])

    def _queue(self, number: int, text: str) -> None:
        """Queue message ``number`` (0: the task) for the CLI's stdin, as one stream-json line."""
        data = channel.stream_json_message(text)
        self._out += data
        self._queued_total += len(data)
        self._ends.append((self._queued_total, number, text))

    @property
    def wants_write(self) -> bool:
        """True while bytes wait for the CLI's stdin (and the permission server is ready, if it is awaited)."""
        if self.fd is None or not self._out:
            return False
        if self._hold_until is not None:
            ready = (self.folder / channel.MCP_READY).exists()
            if not ready and time.monotonic() < self._hold_until:
                return False
            self.log("the permission server is ready" if ready
                     else f"the permission server did not say it was ready within {READY_WAIT_S:g} s; sending the task anyway")
            self._hold_until = None
        return True

    def write(self) -> None:
        """Write what the pipe takes now (non-blocking); a CLI that has closed its stdin ends the writing (logged)."""
        while self.wants_write:
            try:
                n = os.write(self.fd, self._out[:WRITE_CHUNK])
            except BlockingIOError:
                return
            except OSError as exc:
                self.log(f"the CLI's stdin is closed ({exc.strerror or exc}); {len(self._ends)} messages not written")
                self._close_stdin()
                return
            del self._out[:n]
            self._written += n
            while self._ends and self._ends[0][0] <= self._written:
                _, number, text = self._ends.popleft()
                self._unechoed.append((number, text))
                self._written_max = max(self._written_max, number)
                self._results_at_delivery = self._results_seen
                if number:  # 0 is the task
                    self.log(f"message {number} written to the CLI's stdin")

    def after_events(self, progress: RunProgress, now: float) -> None:
        """After the CLI's output was read: count what its turns took, and close stdin when a turn has ended with nothing pending.

        A message is delivered when the CLI echoes it, answered once a result event
        comes after that echo; a turn has ended with nothing pending when every message
        written has been echoed and a result came after the latest echo.  One echo may
        take several messages (:meth:`..claude.stream.RunProgress.take_echoes`).  A CLI
        that does not echo (:attr:`..claude.stream.RunProgress.replays` stays 0) is judged
        by a result after the last message written.
        """
        self._results_seen = progress.results
        for text, results_before in progress.take_echoes():
            took = [self._unechoed.popleft() for _ in range(self._echo_count(text))]
            top = max((n for n, _ in took), default=0)
            if top > self.delivered:
                self._deliver(top)
            self._marks.append((self.delivered, results_before))
            self._last_echo_results = results_before
        if progress.replays:
            done = [d for d, before in self._marks if before < progress.results]
            answered = max(done, default=self.answered)
            self._marks = [(d, before) for d, before in self._marks if before >= progress.results]
            idle = not self._unechoed and progress.results > self._last_echo_results
        else:
            if progress.results and self._written_max > self.delivered:
                self._deliver(self._written_max)
            answered = self.delivered if progress.results > self._results_at_delivery else self.answered
            idle = progress.results > self._results_at_delivery
        if answered > self.answered:
            self.answered, self.dirty = answered, True
        if self.fd is None or self._out or not progress.results or not idle:
            return
        if self.keep_open_s > 0 and self.keep_open_until is None:
            self.keep_open_until = now + self.keep_open_s
            self.keep_open_iso = utc_now(time.time() + self.keep_open_s)
            self.dirty = True
            self.log(f"turn {progress.results} ended; stdin kept open for another message until {self.keep_open_iso}")
            return
        if self.keep_open_until is not None and now < self.keep_open_until:
            return
        self.log(f"turn {progress.results} ended and no message is pending: closing the CLI's stdin")
        self._close_stdin()
        self.closed_at = now
        if self.keep_open_iso is not None:
            self.keep_open_until = self.keep_open_iso = None
            self.dirty = True

    def _echo_count(self, text: str) -> int:
        """How many of the messages written and not yet echoed one echo of ``text`` took (1 or more; 0 if none waits).

        The next k messages' texts joined by newlines, as the CLI joins messages that queued up
        during a turn; failing that, how many of them appear in ``text`` in order (at least 1).
        """
        texts = [t for _, t in self._unechoed]
        if not texts:
            return 0
        for k in range(1, len(texts) + 1):
            if "\n".join(texts[:k]) == text:
                return k
        found, at = 0, 0
        for t in texts:
            at = text.find(t, at)
            if at < 0:
                break
            found, at = found + 1, at + len(t)
        return max(found, 1)

    def _deliver(self, number: int) -> None:
        """Messages up to ``number`` have reached the CLI."""
        self.delivered = number
        self.last_delivered_at = utc_now()
        self.dirty = True
        self.log(f"message {number} taken by the CLI")

    def _close_stdin(self) -> None:
        close_quietly(self.fd)
        self.fd = None

    def undelivered(self) -> list[dict[str, Any]]:
        """The messages received or waiting in the inbox that the CLI did not take (:attr:`delivered`), in order."""
        self._read_inbox()
        return self.messages[self.delivered:]

    # -- questions -------------------------------------------------------------------

    def _look_at_questions(self) -> None:
        try:
            names = sorted(e.name for e in os.scandir(self.folder) if e.name.endswith(".json"))
        except OSError:
            return
        for base in names:
            if base.startswith(channel.DONE_PREFIX):
                qid = base[len(channel.DONE_PREFIX):-5]
                if qid in self.settled or not channel.QUESTION_ID_RE.fullmatch(qid):
                    continue
                done = channel.read_json(self.folder / base) or {}
                self.settled.add(qid)
                if self.questions.pop(qid, None) is None:  # settled before it was seen pending (--always: at once)
                    self.counts["asked"] += 1
                outcome = done.get("outcome")
                key = {"allow": "allowed", "deny": "denied", "timeout": "timed_out"}.get(outcome if isinstance(outcome, str) else "")
                if key:
                    self.counts[key] += 1
                self.dirty = True
                self.log(f"question {qid} settled: {outcome}")
        for base in names:
            if not base.startswith(channel.QUESTION_PREFIX):
                continue
            qid = base[len(channel.QUESTION_PREFIX):-5]
            if qid in self.questions or qid in self.settled or not channel.QUESTION_ID_RE.fullmatch(qid):
                continue
            q = channel.read_json(self.folder / base)
            if q is None:
                continue  # being written, or garbled: looked at again on the next change
            self.questions[qid] = q
            self.counts["asked"] += 1
            self.dirty = True
            self.log(f"question {qid}: may the model use {str(q.get('tool_name'))[:100]!r}?")
            if self.on_question is not None:
                self.on_question(q)

    @property
    def waits_on_the_master(self) -> bool:
        """True while the run waits for the one who launched it: idle after a turn (``--keep-open``) or a
        permission question pending.  The run's ``--timeout`` does not count such time."""
        return self.keep_open_until is not None or bool(self.questions)

    @property
    def waiting_for(self) -> dict[str, Any] | None:
        """The record's ``waiting_for``: the oldest pending question, or None."""
        if not self.questions:
            return None
        q = min(self.questions.values(), key=lambda q: str(q.get("asked_at") or ""))
        tool_input = q.get("input")
        shown = tool_input if isinstance(tool_input, dict) and len(repr(tool_input)) <= QUESTION_INPUT_CHARS else (
            {"preview": repr(tool_input)[:QUESTION_INPUT_CHARS]})
        return {
            "id": q.get("id"), "tool_name": str(q.get("tool_name"))[:200], "input": shown,
            "asked_at": q.get("asked_at"), "timeout_at": q.get("timeout_at"),
        }

    # -- the record --------------------------------------------------------------------

    def change(self, final: bool = False) -> Callable[[StatusRecord], None]:
        """The record change for what is known now (idempotent); clears :attr:`dirty`.

        ``final``: the run has ended: no question is pending any more, nor a keep-open wait.
        """
        self.dirty = False
        messages = None
        if self.received or self.skipped:
            messages = {
                "received": self.received, "delivered": self.delivered, "answered": self.answered, "skipped": self.skipped,
                "last_received_at": self.last_received_at, "last_delivered_at": self.last_delivered_at,
            }
        asked = any(self.counts.values())
        counts = dict(self.counts) if asked else None
        waiting = None if final else self.waiting_for
        keep = None if final else self.keep_open_iso

        def change(rec: StatusRecord) -> None:
            if messages is not None:
                rec.messages = {**(rec.messages or {}), **messages}
            if counts is not None:
                rec.questions = counts
            rec.waiting_for = waiting
            rec.keep_open_until = keep

        return change


def start_hook(argv: list[str], env: dict[str, str], cwd: str | None, output: Any) -> subprocess.Popen | None:
    """Start ``--on-question``'s command in its own session, not waited for (the supervisor reaps it); None if it cannot start."""
    try:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                start_new_session=True, close_fds=True, umask=user_umask())
    except OSError:
        return None


def question_env(base: dict[str, str], question: dict[str, Any], agent: str, run_id: str, record: Path) -> dict[str, str]:
    """``--on-question``'s environment: ``base`` plus ``ORCHESTRATOR_AGENT``, ``_RUN_ID``, ``_RECORD``,
    ``_QUESTION_ID`` and ``_TOOL`` (the tool the model asks to use)."""
    return dict(base, ORCHESTRATOR_AGENT=agent, ORCHESTRATOR_RUN_ID=run_id, ORCHESTRATOR_RECORD=str(record),
                ORCHESTRATOR_QUESTION_ID=str(question.get("id") or ""), ORCHESTRATOR_TOOL=str(question.get("tool_name") or "")[:200])
