"""``clear_outputs.py NAME... | --all``: archive or delete agents' files."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from . import parsing, render
from .guard import guarded

SCRIPT = "clear_outputs"

EPILOG = """\
examples:
  python3 agents/clear_outputs.py agent1 agent2     archive two agents' files
  python3 agents/clear_outputs.py --all             archive every agent's files
  python3 agents/clear_outputs.py --all --purge     delete instead of archiving
  python3 agents/clear_outputs.py agent1 --force    stop agent1 first if it runs

Files move to outputs/archive/<timestamp>/, keeping their layout.
A symlink is moved or removed as a link; what it points to is never touched.
exit status: 0 cleared, 2 bad input, 3 an agent is running (no --force), 4 no such
agent, 69 Slurm could not stop a Slurm run (--force; nothing is cleared), 74 the
state root cannot be written, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """clear_outputs.py's parser: NAMEs or ``--all``, ``--purge``, ``--force``, ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Archive (or delete) agents' status, session and output files.", EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to clear")
    p.add_argument("--all", action="store_true", help="clear every agent")
    p.add_argument("--purge", action="store_true", help="delete the files instead of archiving them")
    p.add_argument("--force", action="store_true", help="stop active agents first (SIGTERM, grace, SIGKILL), and remove their git worktrees even with changes")
    p.add_argument("--json", action="store_true", help="print JSON only")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line: NAMEs or ``--all``, not both; exits 2 on bad usage."""
    return parsing.names_or_all(build_parser(), argv, "clear")


def run(args: argparse.Namespace) -> ExitCode:
    """Clear the agents' files and say what was stopped, archived or deleted.

    Raises:
        OrchestratorError: an agent is running without ``--force`` (3), no such agent (4), storage (74).
    """
    # here: --help and usage errors load no use case (cleanup brings control, executors, filelock)
    from ..usecases.cleanup import clear

    outcome = clear(StatePaths(), None if args.all else args.names, purge=args.purge, force=args.force)
    if args.json:
        print(json.dumps(outcome, indent=2))
    else:
        print("\n".join(render.clear_lines(outcome, args.purge)))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run clear_outputs.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-clear`` and ``agents/clear_outputs.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
