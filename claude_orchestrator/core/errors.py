"""The errors the scripts report: one type, :class:`OrchestratorError`, with its exit status.

The guard that turns any failure into one line and an exit status is
:func:`..commands.guard.guarded`.
"""

from __future__ import annotations

import errno
import os

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
