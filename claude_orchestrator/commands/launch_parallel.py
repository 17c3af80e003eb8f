"""``launch_parallel.py T1 T2 ...``: one background agent per task, or per delegation in a PM's text."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadInput
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from ..records.spec import RunSpec
from . import options, parsing, render
from .endings import finish_wait
from .guard import guarded
from .task_input import read_source, word_text

SCRIPT = "launch_parallel"

EPILOG = """\
examples:
  python3 agents/launch_parallel.py "Check x.py for bugs" "Review x.py style" "Profile x.py"
  python3 agents/launch_parallel.py --names bugs,style "Find bugs in api/" "Check style in api/"
  python3 agents/launch_parallel.py --wait --allowed-tools Bash "Run unit tests" "Run lint"
  python3 agents/launch_parallel.py --from-delegations pm_reply.md --dry-run
  python3 agents/launch_parallel.py --total-budget-usd 3 "T1" "T2" "T3"      $1 each (--max-budget-usd)
  pbpaste | python3 agents/launch_parallel.py --from-delegations - --cwd ~/src/app
  python3 agents/launch_parallel.py --executor slurm --slurm-arg=--licenses=agents:1 "T1" "T2"   Slurm jobs

--from-delegations reads a PM-style text and launches one agent per delegation:
  **Engineer Agent**: task    **QA**: task    Task(Engineer: task)
  Task Tool → Documentation Agent: task    Delegate to X: task    → X: task    [X] task
A task may run over several lines and ends at a blank line or the next
delegation. A role that matches a profile (case-insensitive, "Agent" dropped,
or an alias) gets that profile; others get --profile if given. Agents are named
after their roles: engineer, engineer-2, qa, ...

Agents are named agent1..agentN unless --names is given. It returns at once.
exit status: 0 all launched (with --wait: all completed), 1 one failed (--wait),
2 bad input, 3 a named agent is already running (nothing is launched), 69 sbatch
refused a job (recorded failed; the others were launched; the line names both), 74 the state root cannot be
written, 127 no CLI, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """launch_parallel.py's parser: TASKs, ``--names``, ``--from-delegations``, budgets and the shared run options."""
    p = parsing.new_parser(program_name(SCRIPT), "Launch one background Claude Code agent per task, all at once.", EPILOG)
    p.add_argument("tasks", metavar="TASK", nargs="*", help="one task per agent")
    p.add_argument("--names", metavar="A,B,C", help="comma-separated agent names, one per task (default agent1..agentN)")
    p.add_argument("--from-delegations", metavar="FILE", help="launch the delegations found in FILE ('-' = stdin)")
    p.add_argument("--dry-run", action="store_true", help="show what would be launched (JSON with --json) and launch nothing")
    p.add_argument(
        "--total-budget-usd",
        metavar="USD",
        type=float,
        help="split USD evenly across the agents as each one's --max-budget-usd",
    )
    p.add_argument(
        "--split-tasks",
        metavar="WORDS",
        help="more tasks from one string split as a shell splits words (shlex; nothing is run), e.g. '\"task one\" \"task two\"'",
    )
    options.add_run_options(p)
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line, ``--split-tasks`` added to the TASKs; exits 2 on bad usage."""
    p = build_parser()
    args = parsing.parse(p, argv, "tasks")
    if args.split_tasks:
        try:
            args.tasks += options.split_words(args.split_tasks, "--split-tasks")
        except BadInput as exc:
            p.error(str(exc))
    if args.from_delegations and args.tasks:
        p.error("give TASKs or --from-delegations, not both")
    if not args.tasks and not args.from_delegations:
        p.error("give at least one TASK, or --from-delegations FILE")
    return args


def read_delegations(source: str) -> tuple[list[str | None], list[str]]:
    """Roles and tasks of the delegations in file ``source`` ('-' = stdin); a role a profile knows is matched by it.

    Raises:
        BadInput: unreadable, not UTF-8 text, or no delegation found (exit 2).
    """
    # here: only --from-delegations reads delegations; profiles stay off the parser path (as in options.choose_profile)
    from ..usecases.delegation import parse_delegations
    from ..usecases.profiles import load_profiles, role_key

    text = read_source(source, "--from-delegations", "the delegations on stdin")
    known = set()
    for name, prof in load_profiles().items():
        known |= {role_key(name), *(role_key(a) for a in prof.get("aliases", []))}
    found = parse_delegations(text, known)
    if not found:
        raise BadInput(
            f"no delegations found in {'stdin' if source == '-' else source}; "
            "write them as **Engineer Agent**: task, Task(QA: task), Delegate to Docs: task, → Research: task or [Reviewer] task"
        )
    return [d.role for d in found], [d.task for d in found]


def agent_names(args: argparse.Namespace, roles: list[str | None], count: int) -> list[str]:
    """``--names``, else names after the delegations' roles (engineer, engineer-2, ...), else agent1..agentN.

    Raises:
        BadInput: ``--names`` does not give one name per task (exit 2).
    """
    if args.names:
        names = [n.strip() for n in args.names.split(",")]
        if len(names) != count:
            raise BadInput(f"--names gives {len(names)} names for {count} tasks; give one name per task")
        return names
    if args.from_delegations:
        from ..usecases.delegation import agent_names as role_names  # here: only --from-delegations needs it

        return role_names([r or "agent" for r in roles])
    return [f"agent{i}" for i in range(1, count + 1)]


def budget_share(total_usd: float | None, each_usd: float | None, count: int) -> float | None:
    """Each agent's ``--max-budget-usd`` from ``--total-budget-usd``: an even split to 6 decimals (None: no total).

    Raises:
        BadInput: both a total and a per-agent budget, or a total of 0 or less (exit 2).
    """
    if total_usd is None:
        return None
    if each_usd is not None:
        raise BadInput("give --total-budget-usd (split across the agents) or --max-budget-usd (each), not both")
    if total_usd <= 0:
        raise BadInput("--total-budget-usd must be more than 0")
    return round(total_usd / count, 6)


def plan(names: list[str], roles: list[str | None], tasks: list[str], runs: list[RunSpec]) -> list[dict[str, Any]]:
    """``--dry-run``'s plan: per agent its name, role, profile, task, CLI options and limits."""
    return [
        {"agent": name, "role": role, "profile": s.profile, "task": task, "options": s.claude.to_dict(),
         "limits": s.limits.to_dict()}
        for name, role, task, s in zip(names, roles, tasks, runs, strict=True)
    ]


def run(args: argparse.Namespace) -> ExitCode:
    """Launch one agent per task (or print the plan with ``--dry-run``), then the launched lines or ``--wait``.

    Raises:
        OrchestratorError: bad input, a name already active (nothing launched), no CLI, storage.
    """
    from ..usecases.launch import launch_many  # here: --help and usage errors load no use case

    paths = StatePaths()
    roles: list[str | None] = [None] * len(args.tasks)
    tasks = [word_text(t, f"task {i}") for i, t in enumerate(args.tasks, 1)]
    if args.from_delegations:
        roles, tasks = read_delegations(args.from_delegations)
    names = agent_names(args, roles, len(tasks))
    share = budget_share(args.total_budget_usd, args.max_budget_usd, len(tasks))
    runs = [options.run_spec(args, *options.choose_profile(args, role), budget_usd=share) for role in roles]
    if args.dry_run:
        steps = plan(names, roles, tasks, runs)
        print(json.dumps(steps, indent=2) if args.json else render.plan_table(steps))
        return ExitCode.OK
    recs = launch_many(paths, list(zip(names, tasks, runs, strict=True)))
    if args.wait:
        return finish_wait(paths, names, args.json, as_list=True)
    if args.json:
        print(render.json_list([render.launched_brief(r) for r in recs]))
    else:
        print("\n".join([line for r in recs for line in (render.launched_line(r), *render.worktree_lines(r))] + [render.layout_line(paths)]))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run launch_parallel.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-parallel`` and ``agents/launch_parallel.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
