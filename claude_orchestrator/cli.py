"""The scripts' entry points: ``*_main(argv=None) -> int`` for each script in ``agents/``, and :func:`entry`.

A thin face over :mod:`.commands`, one module per script: each name here
imports its command only when called, so a script loads only what it runs.
``agents/_bootstrap.py`` calls ``cli.entry(cli.<script>_main)``; the console
scripts (``orch-launch``, ...) point at these names too.  Errors are
:class:`.errors.OrchestratorError`s printed as one line on stderr; exit
statuses are :class:`.states.ExitCode`s; ``--json`` prints only JSON on stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import guarded


def launch_agent_main(argv: Sequence[str] | None = None) -> int:
    """``launch_agent.py NAME TASK``: start one background agent (:mod:`.commands.launch_agent`)."""
    from .commands import launch_agent

    return launch_agent.main(argv)


def launch_parallel_main(argv: Sequence[str] | None = None) -> int:
    """``launch_parallel.py T1 T2 ...``: one background agent per task (:mod:`.commands.launch_parallel`)."""
    from .commands import launch_parallel

    return launch_parallel.main(argv)


def check_status_main(argv: Sequence[str] | None = None) -> int:
    """``check_status.py [NAME...]``: the agents' records as a table or JSON (:mod:`.commands.check_status`)."""
    from .commands import check_status

    return check_status.main(argv)


def resume_agent_main(argv: Sequence[str] | None = None) -> int:
    """``resume_agent.py NAME TASK``: continue an agent's session in the background (:mod:`.commands.resume_agent`)."""
    from .commands import resume_agent

    return resume_agent.main(argv)


def clear_outputs_main(argv: Sequence[str] | None = None) -> int:
    """``clear_outputs.py NAME... | --all``: archive or delete agents' files (:mod:`.commands.clear_outputs`)."""
    from .commands import clear_outputs

    return clear_outputs.main(argv)


def kill_agent_main(argv: Sequence[str] | None = None) -> int:
    """``kill_agent.py NAME... | --all``: stop agents' runs (:mod:`.commands.kill_agent`)."""
    from .commands import kill_agent

    return kill_agent.main(argv)


def wait_agents_main(argv: Sequence[str] | None = None) -> int:
    """``wait_agents.py [NAME...] [--any] [--timeout S] | --follow`` (:mod:`.commands.wait_agents`)."""
    from .commands import wait_agents

    return wait_agents.main(argv)


def tail_agent_main(argv: Sequence[str] | None = None) -> int:
    """``tail_agent.py NAME [-f] [--run RUN_ID]``: render an agent's transcript (:mod:`.commands.tail_agent`)."""
    from .commands import tail_agent

    return tail_agent.main(argv)


def entry(main: Callable[[Sequence[str] | None], int]) -> None:
    """``sys.exit(main())`` for the scripts and console entry points.

    The outermost guard (:func:`.errors.guarded`): even a failure while the
    arguments are parsed ends as one line and exit 70, never a traceback.
    """
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "orchestrator"
    sys.exit(guarded(prog, lambda: main(None)))


__all__ = [
    "check_status_main",
    "clear_outputs_main",
    "entry",
    "kill_agent_main",
    "tail_agent_main",
    "wait_agents_main",
    "launch_agent_main",
    "launch_parallel_main",
    "resume_agent_main",
]
