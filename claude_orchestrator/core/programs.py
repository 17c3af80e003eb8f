"""The toolkit's commands by name, and how to spell one in a usage line or a hint.

Each command can be invoked two ways: ``python3 agents/<script>.py`` (the
scripts in ``agents/``) or its console command (``orch-launch``, ...; pyproject's
``[project.scripts]``).  A message should name the command the way the user
invoked the one they ran: a user of ``orch-status`` is told ``orch-launch``,
not ``python3 agents/launch_agent.py``.  Standard library only.
"""

from __future__ import annotations

import os
import sys

#: Script name (the module of :mod:`..commands`, and ``agents/<name>.py``) -> console command.
CONSOLE_COMMANDS = {
    "launch_agent": "orch-launch",
    "launch_parallel": "orch-parallel",
    "check_status": "orch-status",
    "resume_agent": "orch-resume",
    "clear_outputs": "orch-clear",
    "kill_agent": "orch-kill",
    "wait_agents": "orch-wait",
    "tail_agent": "orch-tail",
    "message_agent": "orch-message",
    "answer_agent": "orch-answer",
    "web_console": "orch-web",
    "report_agents": "orch-report",
}


def _invoked() -> str:
    """The basename of the running program (``sys.argv[0]``), or ``""``."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""


def program_name(script: str) -> str:
    """The name command ``script`` was invoked as: ``orch-status`` or ``check_status.py``.

    ``sys.argv[0]`` when it is one of the command's two names; else (run
    in-process, by ``python -m`` or from a test) the script's file name.

    Raises:
        KeyError: ``script`` is not a key of :data:`CONSOLE_COMMANDS`.
    """
    console = CONSOLE_COMMANDS[script]
    invoked = _invoked()
    return console if invoked == console else f"{script}.py"


def command(script: str) -> str:
    """How a hint spells running ``script``: its console command when the running
    program is a console command (``orch-*``), else ``python3 agents/<script>.py``.

    Raises:
        KeyError: ``script`` is not a key of :data:`CONSOLE_COMMANDS`.
    """
    console = CONSOLE_COMMANDS[script]
    return console if _invoked().startswith("orch-") else f"python3 agents/{script}.py"
