"""``report_agents.py (--html FILE | --json) [NAME...]``: a fan-out as one shareable HTML file, or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import BadInput, storage_error
from ..core.files import write_atomic
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from . import parsing
from .guard import guarded

SCRIPT = "report_agents"

EPILOG = """\
examples:
  python3 agents/report_agents.py --html report.html          every agent, one file to share
  python3 agents/report_agents.py --html review.html api-review docs-fix
  python3 agents/report_agents.py --json > fanout.json         the same data for other programs

The HTML file holds the overview (states, runs, times, cost, tokens, turns,
the fan-out's totals and speed-up), the timeline of every run (waiting,
queued and running time apart), and each agent's result and transcript (its
last 256 KiB), with its style and script inline: it opens offline, from a
file, and fetches nothing. What agents wrote shows as text; a
Content-Security-Policy in the page lets only the page's own script run.
--json prints the data the page is drawn from (docs/web.md says its keys).
exit status: 0 written, 2 bad input (FILE's folder does not exist), 4 a named agent has no record,
74 FILE cannot be written, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """report_agents.py's parser: NAMEs, ``--html FILE`` or ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Write a shareable report of the background Claude Code agents.", EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents in the report (default: all)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--html", metavar="FILE", help="write one self-contained HTML file ('-': stdout)")
    how.add_argument("--json", action="store_true", help="print the report's data as JSON")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; exits 2 on bad usage."""
    args = parsing.parse(build_parser(), argv, "names")
    if not args.html and not args.json:
        raise BadInput("say what to write: report_agents.py --html FILE (a page to share) or --json (data)")
    return args


def run(args: argparse.Namespace) -> ExitCode:
    """Write the report.

    Raises:
        NotFound: a named agent has no record (exit 4). StorageError: FILE cannot be written (exit 74).
    """
    from ..records.status_record import RecordStore
    from ..web import share  # here: --help and usage errors read nothing

    store = RecordStore(StatePaths())
    data = share.report_data(store, args.names or None)
    if args.json:
        print(json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False))
        return ExitCode.OK
    page = share.build_html(data)
    if args.html == "-":
        sys.stdout.write(page)
        return ExitCode.OK
    folder = Path(args.html).parent
    if not folder.is_dir():  # write_atomic would make it: a typo would become a tree of folders
        raise BadInput(f"no folder {folder}: make it first, or name a file in an existing one")
    try:
        write_atomic(Path(args.html), page.encode("utf-8"), durable=False)
    except OSError as e:
        raise storage_error(e, args.html) from None
    n = len(data["agents"])
    print(f"{args.html}: a report of {n} agent{'' if n == 1 else 's'} ({len(page.encode()) // 1024 + 1} KiB); open it in a browser")
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run report_agents.py with ``argv`` inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-report`` and ``agents/report_agents.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
