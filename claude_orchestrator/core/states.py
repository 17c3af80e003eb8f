"""Run states and exit codes: the vocabulary every script shares.

Standard library only, so any module (and the launch path) can import it for
free.  Where a run *is* (:class:`State`) is kept apart from how it *ended*
(``exit_code``, ``is_error`` and ``error`` in the status record).
"""

from __future__ import annotations

import enum


class State(str, enum.Enum):
    """Where a run is in its life (docs/files.md).

    ``[waiting ->] queued -> starting -> running -> completed | failed | timeout | memory_exceeded | killed | lost``

    ``waiting``: launched with ``--after``; its dependencies have not all ended.
    ``skipped``: a dependency did not complete, so the run never started.
    """

    WAITING = "waiting"
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    MEMORY_EXCEEDED = "memory_exceeded"
    KILLED = "killed"
    SKIPPED = "skipped"
    LOST = "lost"

    def __str__(self) -> str:  # print as the bare value, e.g. "running"
        return self.value

    @property
    def is_active(self) -> bool:
        """True while a supervisor is expected to own the run."""
        return self in ACTIVE

    @property
    def is_terminal(self) -> bool:
        """True once the run has ended, however it ended."""
        return self in TERMINAL


#: States in which a supervisor is expected to be alive and owning the run.
ACTIVE = frozenset({State.WAITING, State.QUEUED, State.STARTING, State.RUNNING})
#: States a run never leaves (a new run of the same agent starts a new record).
TERMINAL = frozenset(
    {State.COMPLETED, State.FAILED, State.TIMEOUT, State.MEMORY_EXCEEDED, State.KILLED, State.SKIPPED, State.LOST}
)
#: Terminal states that count as failure for exit status 1.
UNSUCCESSFUL = TERMINAL - {State.COMPLETED}

#: Allowed transitions: target state -> states it may be entered from.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.WAITING: frozenset(),
    State.QUEUED: frozenset({State.WAITING}),
    State.STARTING: frozenset({State.WAITING, State.QUEUED}),
    State.SKIPPED: frozenset({State.WAITING}),
    State.RUNNING: frozenset({State.STARTING}),
    State.COMPLETED: frozenset({State.RUNNING}),
    State.FAILED: frozenset({State.WAITING, State.QUEUED, State.STARTING, State.RUNNING}),
    State.TIMEOUT: frozenset({State.STARTING, State.RUNNING}),
    State.MEMORY_EXCEEDED: frozenset({State.STARTING, State.RUNNING}),
    State.KILLED: frozenset({State.WAITING, State.QUEUED, State.STARTING, State.RUNNING}),
    State.LOST: frozenset({State.WAITING, State.QUEUED, State.STARTING, State.RUNNING}),
}


class ExitCode(enum.IntEnum):
    """Exit statuses of every script (docs/files.md)."""

    OK = 0
    AGENT_FAILED = 1
    USAGE = 2  # argparse's own convention for bad usage
    CONFLICT = 3
    NOT_FOUND = 4
    QUESTION = 5  # wait_agents.py: an awaited agent asks a permission question (answer_agent.py answers it)
    NOT_RUNNING = 6  # message_agent.py --no-resume: the agent's run has ended, the message was not sent
    UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE: the cluster's scheduler refused the job or could not be asked
    INTERNAL = 70  # sysexits.h EX_SOFTWARE: an unexpected error inside the toolkit (a bug)
    IO_ERROR = 74  # sysexits.h EX_IOERR: the state root cannot be written (read-only, full, not a folder)
    WAIT_TIMEOUT = 124  # as timeout(1)
    CANNOT_EXECUTE = 126  # as a shell's "found but cannot be executed" (a CLI that could not be started)
    CLI_MISSING = 127  # as a shell's "command not found"
    INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C


class StopReason(str, enum.Enum):
    """Why a supervisor stopped a CLI's process tree (before the CLI ended on its own)."""

    KILLED = "killed"  # a stop request (kill_agent.py, or SIGTERM/SIGINT/SIGHUP to the supervisor)
    TIMEOUT = "timeout"  # the run's --timeout passed
    MEMORY = "memory"  # the tree's RSS reached --memory-limit
    LINGERED = "lingered"  # the CLI did not exit after its result event

    def __str__(self) -> str:
        return self.value
