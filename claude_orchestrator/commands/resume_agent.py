"""``resume_agent.py NAME TASK``: continue an agent's session (or fork another's) in the background."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..core.errors import BadInput
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from . import options, parsing
from .endings import finish_launch
from .guard import guarded
from .task_input import read_task

SCRIPT = "resume_agent"

EPILOG = """\
examples:
  python3 agents/resume_agent.py agent1 "Now write tests for what you found"
  python3 agents/resume_agent.py impl --session-from analyst "Implement the plan you made"

Without --session-from, NAME continues its own session (claude -r). With it, NAME
starts from a fork of OTHER's session (--fork-session); OTHER is left untouched.
It runs in the folder where the session is (NAME's, or OTHER's), unless --cwd:
CLIs from 2.1.330 find a session from any folder; older ones (2.1.197) fail with
"No conversation found", and a resume elsewhere that fails leaves NAME's folder as it was.
exit status: 0 launched (--wait: completed), 1 failed (--wait), 2 bad input,
3 NAME is running, 4 no session to resume, 69 sbatch refused the job (--executor
slurm), 74 the state root cannot be written, 127 no CLI, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """resume_agent.py's parser: NAME, TASK words, ``--task-file``, ``--session-from`` and the shared run options."""
    p = parsing.new_parser(program_name(SCRIPT), "Continue a Claude Code agent's session with a new task, in the background.", EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent to run")
    p.add_argument("task", metavar="TASK", nargs="*", help="the follow-up task")
    p.add_argument("--task-file", metavar="FILE", help="read the task from FILE ('-' = stdin)")
    p.add_argument("--session-from", metavar="OTHER", help="start NAME from a fork of OTHER's session")
    options.add_run_options(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (``sys.argv[1:]`` if ``argv`` is None); exits 2 on bad usage."""
    return parsing.parse(build_parser(), argv, "task")


def refuse_launch_only(args: argparse.Namespace) -> None:
    """Refuse the run options that only a new launch takes.

    Raises:
        BadInput: ``--with-context-from``, ``--after``/``--after-any``, or an
            ``--isolation`` other than none (a session lives in its directory) (exit 2).
    """
    if args.with_context_from:
        raise BadInput("resume_agent.py continues a session; to fork another's use --session-from OTHER")
    if args.after or args.after_any:
        raise BadInput("--after is for launches; to continue NAME after OTHER ends, run wait_agents.py OTHER first")
    if args.isolation not in (None, "none"):
        raise BadInput(
            "a resumed run works where its session was made (the CLI keeps sessions per directory); "
            "drop --isolation, or launch a new agent with it"
        )


def run(args: argparse.Namespace) -> ExitCode:
    """Resume the agent; print where its files are, or (``--wait``) how it ended.

    Raises:
        OrchestratorError: bad input, conflict, no session, no CLI, storage (see the epilog).
    """
    from ..usecases.launch import resume  # here: --help and usage errors load no use case

    paths = StatePaths()
    profile_name, profile = options.choose_profile(args)
    refuse_launch_only(args)
    task = read_task(args.task, args.task_file)
    # A resumed run works where its session is: no isolation (a resume keeps the run's own workspace), no dependencies.
    spec = options.run_spec(args, profile_name, profile).replace(isolation="none", after=(), after_any=False, context_from=None)
    spec = options.where_it_ran(spec, args, profile, paths, args.session_from or args.name)
    rec = resume(paths, args.name, task, spec, session_from=args.session_from, waits=args.wait)
    return finish_launch(paths, rec, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run resume_agent.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-resume`` and ``agents/resume_agent.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
