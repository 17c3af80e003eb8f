"""``tail_agent.py NAME [-f] [--run RUN_ID]``: an agent's stream-json transcript, readable, and live."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..claude import transcript_view
from ..core.errors import BadInput, NotFound
from ..core.paths import StatePaths, validate_name
from ..core.programs import command, program_name
from ..core.states import ExitCode
from ..records.status_record import RecordStore, StatusRecord
from . import parsing
from .guard import guarded

SCRIPT = "tail_agent"

EPILOG = """\
examples:
  python3 agents/tail_agent.py agent1              the latest run's transcript, readable
  python3 agents/tail_agent.py agent1 -f           follow it live until the run ends
  python3 agents/tail_agent.py agent1 --run 20261120T230301Z-3fa9c1

Shows assistant text, tool calls with their inputs, tool results (shortened),
API retries and the final result with turns, time and cost.
exit status: 0 ok, 2 bad input, 4 no such agent or run.
"""


def build_parser() -> argparse.ArgumentParser:
    """tail_agent.py's parser: NAME, ``-f``, ``--run``, ``--raw``."""
    p = parsing.new_parser(program_name(SCRIPT), "Show an agent's stream-json transcript readably, and follow it live.", EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent")
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("-f", "--follow", action="store_true", help="keep showing new events until the run ends")
    p.add_argument("--run", metavar="RUN_ID", help="a run other than the latest (see outputs/NAME/)")
    p.add_argument("--raw", action="store_true", help="print the stream-json lines as they are")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (one NAME only); exits 2 on bad usage."""
    p = build_parser()
    args = parsing.parse(p, argv, "extra")
    if args.extra:
        p.error(f"unexpected arguments: {' '.join(args.extra)}")
    return args


def _runs(paths: StatePaths, name: str) -> list[Path]:
    """The agent's transcripts (``outputs/NAME/*.jsonl``), oldest run first (run ids sort by time)."""
    return sorted(paths.run_dir(name).glob("*.jsonl")) if paths.run_dir(name).is_dir() else []


def find_transcript(paths: StatePaths, name: str, rec: StatusRecord | None, run_id: str | None) -> tuple[Path, str]:
    """The transcript to show and its run id: run ``run_id`` if given, else the record's run, else the newest file.

    The path may not exist yet (a queued run's CLI has not started).

    Raises:
        BadInput: ``run_id`` is not a run id (a path) (exit 2).
        NotFound: no such run, or the agent has no transcript at all (exit 4).
    """
    if run_id:
        if "/" in run_id or run_id.startswith("."):
            raise BadInput(f"invalid run id {run_id!r}")
        path = paths.transcript(name, run_id)
        if not path.exists():
            runs = sorted(q.stem for q in _runs(paths, name))
            raise NotFound(f"no run {run_id} of {name}; runs: {', '.join(runs) or 'none'}")
        return path, run_id
    if rec is not None and rec.transcript_file:
        return Path(rec.transcript_file), rec.run_id
    runs = _runs(paths, name)
    if not runs:
        raise NotFound(f"agent {name!r} has no transcript; see {command('check_status')}")
    return runs[-1], runs[-1].stem


def run(args: argparse.Namespace) -> ExitCode:
    """Print the transcript (rendered, or ``--raw``), and with ``-f`` follow it until the run ends or Ctrl-C.

    Raises:
        BadInput: a bad NAME or run id (exit 2).
        NotFound: no such agent, run or transcript (exit 4).
    """
    paths = StatePaths()
    store = RecordStore(paths)
    name = validate_name(args.name)
    path, run_id = find_transcript(paths, name, store.read(name), args.run)

    def still_running() -> bool:
        cur = store.read(name)
        if cur is None or cur.run_id != run_id or not cur.state.is_active:
            return False
        from ..usecases.control import reconcile  # here: only -f asks; control brings executors and filelock

        return reconcile(store, cur).state.is_active

    follow = still_running if args.follow else None
    while args.follow and not path.exists() and still_running():
        time.sleep(0.1)  # queued: the transcript appears when the CLI starts
    if not path.exists():
        raise NotFound(f"run {run_id} of {name} has no transcript yet")
    try:
        if args.raw:
            for line in transcript_view.iter_lines(path, follow):
                print(line, flush=True)
        else:
            transcript_view.render(path, sys.stdout, follow)
    except KeyboardInterrupt:
        return ExitCode.OK
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run tail_agent.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-tail`` and ``agents/tail_agent.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
