"""The CLI's stdout, taken in as it arrives: bytes to the transcript, events to a :class:`..claude.stream.RunProgress`.

The stream is untrusted: a line that is not a JSON object, or an event of an
odd shape, is logged (the first :data:`SKIPPED_LOGGED` of an attempt, with a
preview) and skipped, never fatal; a line longer than
:data:`..claude.stream.MAX_LINE_BYTES` is never held whole (it goes to the
transcript and is counted as skipped).
"""

from __future__ import annotations

from collections.abc import Callable

from ..claude.stream import MAX_LINE_BYTES, LineBuffer, RunProgress, SkippedLine, parse_event
from .transcript_file import TranscriptFile

#: Skipped stream lines logged one by one (each with a preview); later ones are only counted.
SKIPPED_LOGGED = 20
#: Bytes of a skipped line shown in the log.
SKIPPED_PREVIEW_BYTES = 200


class EventReader:
    """One attempt's stream: cut into lines, copied to the transcript, each line's event fed to :attr:`progress`.

    Args:
        transcript: where the bytes go (whatever happens to it, events are still read).
        log: the supervisor's log.

    Attributes:
        progress: what the events have said so far.
        skipped: lines not (wholly) understood.
    """

    def __init__(self, transcript: TranscriptFile, log: Callable[[str], None]) -> None:
        self.transcript, self.log = transcript, log
        self.progress = RunProgress()
        self.skipped = 0
        self._lines = LineBuffer()

    def take(self, chunk: bytes) -> bool:
        """Take in ``chunk`` of the CLI's stdout.  Returns True if the record's progress changed."""
        out, done = self._lines.push(chunk)
        self.transcript.write(out)
        return self._feed(done) if done else False

    def close(self) -> bool:
        """Take in what is held (a last line without a newline); returns True if the progress changed."""
        out, done = self._lines.close()
        self.transcript.write(out)
        return self._feed(done)

    def log_totals(self) -> None:
        """Log how many lines were skipped beyond those logged, and the bytes the transcript lost."""
        if self.skipped > SKIPPED_LOGGED:
            self.log(f"{self.skipped} stream lines skipped in all; {self.skipped - SKIPPED_LOGGED} of them not logged")
        if self.transcript.dropped:
            self.log(f"{self.transcript.dropped} bytes of the CLI's output could not be written to the transcript")

    def _feed(self, lines: list[bytes | int]) -> bool:
        """Feed each complete line's event to :attr:`progress`; log the lines skipped.

        ``lines`` as :meth:`..claude.stream.LineBuffer.push` gives them (an int: the
        length of a line too long to parse).  Returns True if the progress changed.
        """
        changed = False
        for line in lines:
            if isinstance(line, int):
                self._skip(None, f"a line of {line} bytes, longer than the {MAX_LINE_BYTES}-byte cap: in the transcript, not read")
                continue
            if not line or line.isspace():  # no copy of a long line
                continue
            try:
                changed = self.progress.feed(parse_event(line)) or changed
                problem = self.progress.problem
            except SkippedLine as exc:
                problem = str(exc)
            except Exception as exc:  # noqa: BLE001 - a line of the CLI's must never stop the run
                problem = f"could not be read ({exc!r})"
            if problem:
                self._skip(line, problem)
        return changed

    def _skip(self, line: bytes | None, why: str) -> None:
        """Count a line not (wholly) understood; log the first :data:`SKIPPED_LOGGED`, with a preview."""
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
