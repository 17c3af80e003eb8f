"""Who may read and write the state root: its files are their owner's alone, or a group's.

An answer file is a permission grant, an inbox line an instruction to an
agent, a transcript the whole conversation with every tool's output: every
file the toolkit makes under the state root is 0600 and every folder 0700,
unless ``ORCHESTRATOR_SHARE=group`` asks for 0660 and 0770 (a team sharing a
state root; docs/files.md, "Who can read the files").

How: the toolkit's own processes run with the umask that gives those modes
(:func:`adopt_private_umask`): every command (:func:`..commands.guard.guarded`)
and every supervisor (:func:`..supervisor.entry.main`); the few files opened
with an explicit mode use :func:`file_mode`.  The processes the toolkit starts
*for the user* (the Claude CLI, ``--on-complete`` hooks, git) get the caller's
own umask back (``Popen(umask=user_umask())``), so what an agent writes in the
user's project has the modes the user's own tools would give it.

The caller's umask travels in ``$ORCHESTRATOR_CALLER_UMASK`` (octal), set by
:func:`adopt_private_umask`: a supervisor starts with its launcher's private
umask already (a local one inherits it; a Slurm job's is the submitting
process's, which sbatch passes as ``SLURM_UMASK``), and with its launcher's
environment (sbatch exports it by default), ``ORCHESTRATOR_SHARE`` included.

Standard library only: every command and supervisor imports it first.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .errors import BadInput

#: The setting: unset, empty or ``private`` (0600/0700), or ``group`` (0660/0770).
SHARE_ENV = "ORCHESTRATOR_SHARE"
#: The umask of the process that ran the toolkit, in octal (e.g. ``0022``), for what it starts for the user.
CALLER_UMASK_ENV = "ORCHESTRATOR_CALLER_UMASK"
#: The toolkit's own umask for each value of :data:`SHARE_ENV`.
UMASKS = {"private": 0o077, "group": 0o007}

_caller: int | None = None  # the caller's umask, once adopt_private_umask has run in this process


def share(*, strict: bool = True) -> str:
    """``"private"`` or ``"group"``: the value of ``$ORCHESTRATOR_SHARE`` (unset or empty: private).

    Raises:
        BadInput: another value (exit 2), naming the two it may take; with
            ``strict=False`` an unknown value means private (the safe side).
    """
    raw = os.environ.get(SHARE_ENV, "").strip()
    if raw == "":
        return "private"
    if raw in UMASKS:
        return raw
    if strict:
        raise BadInput(
            f"{SHARE_ENV}={raw!r} is not a setting: use private (files 0600, folders 0700, the default) "
            "or group (0660 and 0770, for a team sharing the state root)"
        )
    return "private"


def private_umask(*, strict: bool = True) -> int:
    """The umask of the toolkit's own processes: 0o077, or 0o007 with ``ORCHESTRATOR_SHARE=group``.

    Raises:
        BadInput: as :func:`share`.
    """
    return UMASKS[share(strict=strict)]


def file_mode() -> int:
    """The mode of a file the toolkit makes (0o600, or 0o660 for a group), for an ``os.open`` that names one."""
    return 0o666 & ~private_umask(strict=False)


def dir_mode() -> int:
    """The mode of a folder the toolkit makes (0o700, or 0o770 for a group)."""
    return 0o777 & ~private_umask(strict=False)


def current_umask() -> int:
    """This process's umask, read without changing it (Linux's ``/proc/self/status``; elsewhere set and put back)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # for an instant, a stricter one: a file made meanwhile by another thread is private
    os.umask(mask)
    return mask


def _umask_from_env() -> int | None:
    """``$ORCHESTRATOR_CALLER_UMASK`` as a number, or None if unset or not an octal umask."""
    raw = os.environ.get(CALLER_UMASK_ENV, "")
    try:
        mask = int(raw, 8)
    except ValueError:
        return None
    return mask if 0 <= mask <= 0o777 else None


def adopt_private_umask(*, launched: bool = False) -> Callable[[], None]:
    """Give this process the toolkit's umask (:func:`private_umask`) and remember the caller's.

    Args:
        launched: True in a process the toolkit launched (the supervisor): the
            caller's umask is the one its launcher passed in
            ``$ORCHESTRATOR_CALLER_UMASK`` (else this process's own), and an
            unknown ``ORCHESTRATOR_SHARE`` (the launcher refused it already)
            means private.  False in a command: the caller is whoever ran it,
            its umask the one this process has now.

    Returns:
        A function that puts the umask and ``$ORCHESTRATOR_CALLER_UMASK`` back as
        they were (a command run in-process, e.g. by a test, leaves no trace).

    Raises:
        BadInput: ``ORCHESTRATOR_SHARE`` has an unknown value (not when
            ``launched``); nothing has changed then.
    """
    global _caller
    mask = private_umask(strict=not launched)
    before_env, before_caller = os.environ.get(CALLER_UMASK_ENV), _caller
    before = os.umask(mask)
    passed = _umask_from_env() if launched else None
    _caller = before if passed is None else passed
    os.environ[CALLER_UMASK_ENV] = f"{_caller:04o}"  # for a supervisor this process starts, and its CLI

    def undo() -> None:
        global _caller
        os.umask(before)
        _caller = before_caller
        if before_env is None:
            os.environ.pop(CALLER_UMASK_ENV, None)
        else:
            os.environ[CALLER_UMASK_ENV] = before_env

    return undo


def user_umask() -> int:
    """The caller's own umask, for a process the toolkit starts for the user (``Popen(umask=user_umask())``).

    The one :func:`adopt_private_umask` remembered; else ``$ORCHESTRATOR_CALLER_UMASK``;
    else (the toolkit used as a library) this process's umask, which is then the caller's.
    """
    if _caller is not None:
        return _caller
    passed = _umask_from_env()
    return passed if passed is not None else current_umask()
