"""The one error type the scripts catch in ``main`` and print as one line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .states import ExitCode


class OrchestratorError(Exception):
    """A failure to report to the caller as one line on stderr.

    Args:
        message: what went wrong and what to do next, one line.
        exit_code: the script's exit status (an :class:`ExitCode`).
    """

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.exit_code = ExitCode(exit_code)


class BadInput(OrchestratorError):
    """Bad usage or input: exit status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


class Conflict(OrchestratorError):
    """The agent is already queued, starting or running: exit status 3."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.CONFLICT)


class NotFound(OrchestratorError):
    """No such agent, run or session: exit status 4."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.NOT_FOUND)


class CliMissing(OrchestratorError):
    """The Claude CLI executable was not found: exit status 127."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.CLI_MISSING)


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command's ``body`` and return its exit status, turning the expected failures into one stderr line.

    An :class:`OrchestratorError` prints ``PROG: error: MESSAGE`` and returns its
    code; Ctrl-C prints ``PROG: interrupted`` and returns 130 (as a shell
    does); a closed stdout (``... | head``) ends quietly with 0.
    """
    try:
        return body()
    except OrchestratorError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away: nothing more to say, and no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
