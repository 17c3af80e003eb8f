"""``message_agent.py NAME TEXT``: send a message to a running agent, or continue an ended one's session with it."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ..core.errors import BadInput
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import UNSUCCESSFUL, ExitCode
from . import parsing, render
from .endings import finish_launch
from .guard import guarded
from .task_input import read_task

SCRIPT = "message_agent"

EPILOG = """\
examples:
  python3 agents/message_agent.py agent1 "Also check the tests in tests/api/"
  python3 agents/message_agent.py agent1 "Stop there; focus on the parser" --wait
  python3 agents/message_agent.py agent1 --task-file notes.md
  python3 agents/message_agent.py agent1 "Anything else?" --no-resume

A running agent gets the message on its CLI's stdin the moment it arrives:
written while the model answers, it is the next turn; while a tool runs, 2.1.332
gives it to the model in the same turn. A waiting or queued run gets it right
after its task. An agent whose run has ended (or ends before the message is
delivered) continues its session with it, as resume_agent.py would, with the
same options and executor; --no-resume refuses that instead. Nothing is lost:
messages go into the run's inbox (outputs/NAME/RUN_ID.channel/inbox.jsonl) and
the record counts them (messages: received, delivered, answered).
--wait: wait until the turn that took the message has ended, then print its result.
exit status: 0 sent (--wait: answered), 1 --wait: the run ended unsuccessfully,
2 bad input (empty, NUL, over 16 MiB, not UTF-8), 3 its --on-complete hook still runs,
4 no such agent or no session to continue, 6 --no-resume and the run has ended,
74 the state root cannot be written, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """message_agent.py's parser: NAME, TEXT words, ``--task-file``, ``--no-resume``, ``--wait``, ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Send a message to a background Claude Code agent.", EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent")
    p.add_argument("text", metavar="TEXT", nargs="*", help="the message")
    p.add_argument("--task-file", metavar="FILE", help="read the message from FILE ('-' = stdin)")
    p.add_argument("--no-resume", action="store_true", help="if the agent's run has ended, do not continue its session (exit 6)")
    p.add_argument("--wait", action="store_true", help="wait until the turn that took the message has ended; print its result")
    p.add_argument("--json", action="store_true", help="print JSON only")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (``sys.argv[1:]`` if ``argv`` is None); exits 2 on bad usage."""
    args = parsing.parse(build_parser(), argv, "text")
    if not args.name:
        raise BadInput("give the agent's NAME and the message: message_agent.py NAME \"TEXT\"")
    return args


def run(args: argparse.Namespace) -> ExitCode:
    """Send the message; print where it went, or (``--wait``) the answer.

    Raises:
        OrchestratorError: see the epilog's exit statuses.
    """
    from ..usecases.talk import send  # here: --help and usage errors load no use case

    text = read_task(args.text, args.task_file, "message")
    paths = StatePaths()
    sent = send(paths, args.name, [text], resume=not args.no_resume)
    rec = sent.record
    if sent.how == "resumed" and not args.wait:
        if not args.json:
            before = sent.previous
            print(f"{rec.agent}: its run {before.run_id} had ended ({before.status}); the message continues its session in a new run"
                  if before is not None else f"{rec.agent}: the message continues its session in a new run")
        return finish_launch(paths, rec, args)
    number = sent.numbers[0] if sent.how == "queued" else 0  # 0: the message is the new run's task
    if args.wait:
        return _wait(paths, rec.agent, rec.run_id, number, args.json)
    if args.json:
        print(json.dumps({"agent": rec.agent, "run_id": rec.run_id, "how": "queued", "message_id": sent.message_ids[0],
                          "number": number, "status": rec.status.value}, indent=2))
    else:
        print(f"{rec.agent}: message {number} queued for run {rec.run_id} ({rec.status}); "
              f"its CLI gets it {'as it arrives' if rec.status.value == 'running' else 'after its task'}")
    return ExitCode.OK


def _wait(paths: StatePaths, name: str, run_id: str, number: int, as_json: bool) -> ExitCode:
    """Wait until message ``number`` of run ``run_id`` is answered (or the run ends); print the latest result."""
    from ..usecases.talk import wait_answered

    rec, answered = wait_answered(paths, name, run_id, number)
    text = ""
    try:
        text = paths.latest_output(name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    failed = not answered and rec is not None and rec.state in UNSUCCESSFUL
    if as_json:
        brief = render.brief(rec) if rec is not None else {"agent": name}
        print(render.compact({**brief, "message": number, "answered": answered}))
    elif answered:
        print(text, end="" if text.endswith("\n") or not text else "\n")
    else:
        print(render.ended_line(rec) if rec is not None else f"{name}: the record is gone")
    return ExitCode.AGENT_FAILED if failed else ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run message_agent.py with ``argv`` inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-message`` and ``agents/message_agent.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
