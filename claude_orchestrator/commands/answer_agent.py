"""``answer_agent.py NAME allow|deny [--message TEXT] [--always] [--id QID]``: answer an agent's permission question."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from . import parsing
from .guard import guarded

SCRIPT = "answer_agent"

EPILOG = """\
examples:
  python3 agents/answer_agent.py agent1 allow                let the tool run
  python3 agents/answer_agent.py agent1 allow --always       and that tool for the rest of the run
  python3 agents/answer_agent.py agent1 deny --message "Do not push; commit locally"
  python3 agents/answer_agent.py agent1 deny --id q0123456789ab --json

An agent launched with --ask-permission asks before a tool outside its allowed
tools runs; wait_agents.py exits 5 and check_status.py shows the question. This
answers the question pending in the agent's current run: the one --id names, else
the one its record shows, else the only one not yet answered. allow runs the tool
as it was asked; deny gives the model a tool error carrying --message (default: that
you denied it). --message goes with deny only (to tell the agent more, send it a
message); --always with allow only. A question is answered once; one nobody
answers within the run's --question-timeout (default 600 s) is denied.
exit status: 0 answered, 2 bad input (a bad name or id, --always with deny,
--message with allow, several questions pending and no --id, an unreadable status
file), 3 the question was already answered or settled (timed out), 4 no such agent,
no question pending in its current run, or --id is no question of that run (an
earlier run's, or unknown), 74 the state root cannot be written, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """answer_agent.py's parser: NAME, allow|deny, ``--message``, ``--always``, ``--id``, ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Answer a background Claude Code agent's permission question.", EPILOG)
    p.add_argument("name", metavar="NAME", help="the agent that asks")
    p.add_argument("behavior", metavar="allow|deny", choices=("allow", "deny"), help="let the tool run, or not")
    p.add_argument("--message", metavar="TEXT", help="with deny: what the model is told (e.g. what to do instead)")
    p.add_argument("--always", action="store_true", help="with allow: allow that tool for the rest of the run, without asking")
    p.add_argument("--id", metavar="QID", dest="qid", help="the question to answer (default: the one pending)")
    p.add_argument("--json", action="store_true", help="print what was answered as JSON")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; exits 2 on bad usage."""
    return build_parser().parse_args(argv)


def describe(done: dict[str, Any]) -> str:
    """The line printed for an answer: ``agent1: allowed Bash (echo hi) [q0123456789ab]``."""
    shown = json.dumps(done.get("input"), ensure_ascii=False) if done.get("input") is not None else ""
    command = done["input"].get("command") if isinstance(done.get("input"), dict) else None
    if isinstance(command, str):
        shown = command
    if len(shown) > 120:
        shown = shown[:119] + "…"
    tool = done.get("tool_name") or "the tool"
    what = f"allowed {tool}" if done["behavior"] == "allow" else f"denied {tool}"
    line = f"{done['agent']}: {what}" + (f" ({shown})" if shown else "") + f" [{done['id']}]"
    if done["always"]:
        line += f"; {tool} is allowed for the rest of run {done['run_id']}"
    if done["message"]:
        line += f"; told: {done['message']}"
    return line


def run(args: argparse.Namespace) -> ExitCode:
    """Answer the question; print what was answered.

    Raises:
        OrchestratorError: bad input (2), already answered (3), nothing to answer (4), storage (74).
    """
    from ..usecases.answer import answer  # here: --help and usage errors load no use case

    done = answer(StatePaths(), args.name, args.behavior, message=args.message, always=args.always, qid=args.qid)
    print(json.dumps(done, indent=2, ensure_ascii=False) if args.json else describe(done))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run answer_agent.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-answer`` and ``agents/answer_agent.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
