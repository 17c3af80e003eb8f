"""``launch_agent.py NAME TASK``: start one background agent."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from . import options, parsing
from .endings import finish_launch
from .guard import guarded
from .task_input import read_task

SCRIPT = "launch_agent"

EPILOG = """\
examples:
  python3 agents/launch_agent.py agent1 "Summarise README.md in 5 bullets"
  python3 agents/launch_agent.py reviewer --cwd ../api --allowed-tools "Read,Grep" "Review src/ for bugs"
  python3 agents/launch_agent.py agent2 --task-file task.md --model sonnet
  python3 agents/launch_agent.py agent3 --wait "Run the tests and report failures"
  python3 agents/launch_agent.py agent4 -- "-a task that starts with a dash"
  python3 agents/launch_agent.py impl --with-context-from analyst "Implement the plan you made"
  python3 agents/launch_agent.py deploy --after build,test "Deploy what build made"
  python3 agents/launch_agent.py big --executor slurm --slurm-arg=--partition=cpu "..."   a Slurm job

It returns at once; a detached supervisor owns the run (with --executor slurm,
a Slurm batch job runs it: docs/slurm.md). Read back:
  status/NAME.json   outputs/NAME_latest.txt   sessions/NAME_session.txt
exit status: 0 launched (with --wait: completed), 1 failed (--wait), 2 bad input,
3 NAME is already running, 69 sbatch refused the job (its message is shown),
74 the state root cannot be written, 127 the Claude CLI was not found, 70 an
internal error (the traceback's file is named).
"""


def build_parser() -> argparse.ArgumentParser:
    """launch_agent.py's parser: NAME, TASK words, ``--task-file`` and the shared run options."""
    p = parsing.new_parser(program_name(SCRIPT), "Launch one Claude Code agent (`claude -p`) in the background.", EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent's name, e.g. agent1 ([A-Za-z0-9][A-Za-z0-9_.-]{0,63})")
    p.add_argument("task", metavar="TASK", nargs="*", help="the task (prompt); words are joined by spaces")
    p.add_argument("--task-file", metavar="FILE", help="read the task from FILE ('-' = stdin)")
    options.add_run_options(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (``sys.argv[1:]`` if ``argv`` is None); exits 2 on bad usage."""
    return parsing.parse(build_parser(), argv, "task")


def run(args: argparse.Namespace) -> ExitCode:
    """Launch the agent; print where its files are, or (``--wait``) how it ended.

    Raises:
        OrchestratorError: bad input, conflict, no CLI, storage (see the epilog's exit statuses).
    """
    from ..usecases.launch import launch  # here: --help and usage errors load no use case

    paths = StatePaths()
    profile_name, profile = options.choose_profile(args)
    task = read_task(args.task, args.task_file)
    rec = launch(paths, args.name, task, options.run_spec(args, profile_name, profile), waits=args.wait)
    return finish_launch(paths, rec, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run launch_agent.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-launch`` and ``agents/launch_agent.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
