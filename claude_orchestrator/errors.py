"""The errors the scripts report, and the one guard that turns any failure into one line and an exit status."""

from __future__ import annotations

import errno
import os
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


class BadRecord(OrchestratorError):
    """A status record that cannot be read: not UTF-8, not JSON, or not a record's shape (exit status 2).

    Attributes:
        name: the agent whose ``status/<name>.json`` it is.
        path: the file.
        reason: what is wrong with it, in a few words.
    """

    def __init__(self, name: str, path: os.PathLike | str, reason: str) -> None:
        self.name, self.path, self.reason = name, str(path), reason
        super().__init__(f"{path} is unreadable ({reason}); {bad_record_advice(name)}", ExitCode.USAGE)


def bad_record_advice(name: str) -> str:
    """What to do about an unreadable record of agent ``name``."""
    return f"move it aside, or run clear_outputs.py {name} --purge to remove it"


#: What to do about a state root that cannot be written, by ``errno``.
_STORAGE_ADVICE = {
    errno.EROFS: "remount it read-write, or set ORCHESTRATOR_HOME to a writable folder",
    errno.ENOSPC: "free some space there",
    errno.EDQUOT: "free some space there (a disk quota is full)",
    errno.ENOTDIR: "a part of that path is a file, not a folder; set ORCHESTRATOR_HOME to a folder",
    errno.EACCES: "make it writable for this user, or set ORCHESTRATOR_HOME to a folder that is",
    errno.EPERM: "make it writable for this user, or set ORCHESTRATOR_HOME to a folder that is",
    errno.EISDIR: "a folder is where a file goes; move it away",
    errno.ELOOP: "it is a symlink, which the toolkit never writes through; remove it",
}


class StorageError(OrchestratorError):
    """The state root cannot be written (read-only, full, a path part that is a file): exit status 74.

    Attributes:
        path: the file or folder that could not be written.
        os_error: the :class:`OSError` behind it (its ``errno`` and ``strerror``).
    """

    def __init__(self, path: os.PathLike | str, os_error: OSError) -> None:
        self.path, self.os_error = str(path), os_error
        advice = _STORAGE_ADVICE.get(os_error.errno or 0, "check the state root (ORCHESTRATOR_HOME)")
        super().__init__(f"cannot write {path}: {os_error.strerror or os_error}; {advice}", ExitCode.IO_ERROR)


def storage_error(exc: OSError, path: os.PathLike | str | None = None) -> StorageError:
    """``exc`` as a :class:`StorageError` naming ``path`` (default: the path the OS error names)."""
    return StorageError(path if path is not None else (exc.filename or "the state root"), exc)


def log_traceback(prog: str) -> str:
    """Write the exception being handled, with its traceback, to a new file and return its path.

    The file is ``<state root>/status/.errors/<prog>-<UTC time>-<pid>.txt``, or
    under ``$TMPDIR/claude-orchestrator-errors/`` if the state root cannot be
    written; ``"(not written)"`` if neither can.
    """
    import tempfile
    import time
    import traceback

    text = traceback.format_exc()
    stem = f"{os.path.basename(prog).removesuffix('.py')}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.txt"
    folders = []
    try:
        from .paths import StatePaths

        folders.append(StatePaths().errors_dir)
    except Exception:  # noqa: BLE001 - the state root itself may be what failed
        pass
    folders.append(os.path.join(tempfile.gettempdir(), "claude-orchestrator-errors"))
    for folder in folders:
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, stem)
            with open(path, "x", encoding="utf-8") as f:
                f.write(f"{prog} {sys.argv[1:]!r}\n{text}")
            return path
        except OSError:
            continue
    return "(not written)"


def guarded(prog: str, body: Callable[[], int]) -> int:
    """Run a command's ``body`` and return its exit status; whatever goes wrong becomes one stderr line.

    - :class:`OrchestratorError`: ``PROG: error: MESSAGE``, its own exit status;
    - an :class:`OSError` (a file the state root could not give or take):
      ``PROG: error: cannot write PATH: STRERROR; ADVICE``, exit 74;
    - Ctrl-C: ``PROG: interrupted``, 130 (as a shell does);
    - a closed stdout (``... | head``): quietly 0;
    - any other exception (a bug): ``PROG: internal error: EXC; the traceback is in FILE``
      (:func:`log_traceback`), exit 70.  A traceback never reaches the terminal.

    Text that stdout's encoding cannot show (a lone surrogate from a JSON
    escape in a record) is printed as a backslash escape.
    """
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return body()
    except OrchestratorError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # the reader went away: nothing more to say, and no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    except OSError as exc:
        print(f"{prog}: error: {storage_error(exc)}", file=sys.stderr)
        return int(ExitCode.IO_ERROR)
    except Exception as exc:  # noqa: BLE001 - the one top-level guard
        where = log_traceback(prog)
        print(f"{prog}: internal error: {exc!r}; the traceback is in {where}", file=sys.stderr)
        return int(ExitCode.INTERNAL)
