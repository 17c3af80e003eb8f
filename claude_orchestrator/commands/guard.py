"""The one guard of every command: any failure becomes one line on stderr and an exit status.

:func:`guarded` runs a command's body; :func:`log_traceback` keeps the
traceback of a bug in a file under the state root.  Every command's
``main(argv=None)`` parses and runs inside the guard (:func:`guarded`), so a
failure while the arguments are parsed is caught too.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from ..core.errors import OrchestratorError, storage_error
from ..core.modes import adopt_private_umask
from ..core.paths import StatePaths
from ..core.states import ExitCode


def log_traceback(prog: str) -> str:
    """Write the exception being handled, with its traceback, to a new file and return its path.

    The file is ``<state root>/status/.errors/<prog>-<UTC time>-<pid>.txt``, or
    under ``$TMPDIR/claude-orchestrator-errors/`` if the state root cannot be
    written; ``"(not written)"`` if neither can.
    """
    # here: only a bug needs these; every command imports this module
    import tempfile
    import traceback

    text = traceback.format_exc()
    stem = f"{os.path.basename(prog).removesuffix('.py')}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.txt"
    folders = []
    try:
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
    escape in a record) is printed as a backslash escape.  The body runs with
    the toolkit's umask (:func:`..core.modes.adopt_private_umask`: what it
    makes under the state root is the owner's alone, or a group's with
    ``ORCHESTRATOR_SHARE=group``); the caller's umask is put back afterwards.
    """
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    undo = None
    try:
        undo = adopt_private_umask()
        return int(body())
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
    finally:
        if undo is not None:
            undo()
