"""``check_status.py [NAME...]``: the agents' records as a table, a summary or JSON, once or live."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from ..core.errors import BadRecord
from ..core.paths import StatePaths
from ..core.programs import command, program_name
from ..core.states import ExitCode
from ..records.status_record import RecordStore, StatusRecord
from . import parsing, render
from .guard import guarded

SCRIPT = "check_status"

EPILOG = """\
examples:
  python3 agents/check_status.py               every agent, as a table
  python3 agents/check_status.py agent1 agent2
  python3 agents/check_status.py --json        per agent: status, error, result preview, turns, cost, output file
  python3 agents/check_status.py --full NAME   the whole record (JSON)
  python3 agents/check_status.py --summary     totals, parallel speed-up, per-agent cost and memory
  python3 agents/check_status.py --watch       a live table, redrawn on every change and each second while any is active

A record left queued/starting/running whose supervisor is gone is stored as `lost`.
A queued agent shows its place in the queue: "queued #2".
An agent waiting on a permission question (--ask-permission) shows as
"running (asks)", and a line under the table says what it asks and how to
answer: "NAME asks: Bash `rm -rf build` (question q...; answer:
answer_agent.py NAME allow|deny)"; --json gives it as waiting_for. A run whose
turn has ended and that waits for a message (--keep-open) shows as "running (idle)".
An agent whose status file cannot be read is shown as `unreadable` (stderr says why).
exit status: 0 ok, 4 a named agent has no record, 70 an internal error.
"""

#: Seconds between check_status --watch's quiet re-checks for lost agents.
WATCH_RECHECK_S = 5.0
#: Seconds between check_status --watch's redraws while an agent is active (its times move).
WATCH_TICK_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    """check_status.py's parser: NAMEs, ``--json``, ``--full``, ``--summary``, ``--watch``."""
    p = parsing.new_parser(program_name(SCRIPT), "Show the status of background Claude Code agents.", EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to show (default: all)")
    p.add_argument("--json", action="store_true", help="a JSON list: per agent the fields to act on (status, error, result preview, ...)")
    p.add_argument("--full", action="store_true", help="with --json (implied): the whole records")
    p.add_argument(
        "--summary",
        action="store_true",
        help="an execution summary: totals, parallel speed-up (sum of run times / wall time while any ran), per-agent figures",
    )
    p.add_argument(
        "--watch", action="store_true", help="redraw on every record change, and each second while an agent is active (Ctrl-C to stop)",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (``--full`` implies ``--json``); exits 2 on bad usage."""
    p = build_parser()
    args = parsing.parse(p, argv, "names")
    args.json = args.json or args.full
    if args.watch and args.json:
        p.error("--watch draws for people; use wait_agents.py --follow --json for a stream of changes")
    return args


def run(args: argparse.Namespace) -> ExitCode:
    """Print the records (stderr: agents newly marked lost, unreadable records).

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    # here: --help and usage errors load no use case (control brings executors and filelock)
    from ..usecases.control import read_records

    paths = StatePaths()
    store = RecordStore(paths)
    if args.watch:
        return watch(store, args.names or None, args.summary)
    newly_lost: list[StatusRecord] = []
    bad: list[BadRecord] = []
    recs = read_records(store, args.names or None, newly_lost, unreadable=bad)
    order = {n: i for i, n in enumerate(args.names or sorted([r.agent for r in recs] + [b.name for b in bad]))}
    positions = {}
    if any(str(r.status) == "queued" for r in recs):
        from ..core.locks import queue_positions  # here: filelock stays off the parser path (as control above)

        positions = queue_positions(paths)
    if args.json:
        items = [(r.agent, render.full(r, positions) if args.full else render.brief(r, positions)) for r in recs]
        items += [(b.name, render.unreadable_item(b)) for b in bad]
        items.sort(key=lambda item: order.get(item[0], 0))
        objs = [obj for _, obj in items]
        print(json.dumps(objs, indent=2) if args.full else render.json_list(objs))
        return ExitCode.OK
    if not recs and not bad:
        print(f"no agents yet; start one with: {command('launch_agent')} agent1 \"TASK\"")
        return ExitCode.OK
    if recs:
        print(render.summary(recs) if args.summary else render.table(recs, positions, bad, order))
        for line in render.question_lines(sorted(recs, key=lambda r: order.get(r.agent, 0))):
            print(line)
    elif not args.summary:
        print(render.table([], positions, bad, order))
    for r in newly_lost:
        print(f"{r.agent}: marked lost: {r.error}", file=sys.stderr)
    for b in bad:
        print(f"{b.name}: {b}", file=sys.stderr)
    return ExitCode.OK


def watch(store: RecordStore, names: list[str] | None, summary: bool) -> ExitCode:
    """Redraw the table (or summary) on every record change, and every :data:`WATCH_TICK_S` while an
    agent is active (waiting, queued, starting, running) so that its times move; until Ctrl-C (then OK).

    A redraw re-reads only the records the watcher saw change; every :data:`WATCH_RECHECK_S` all are
    re-read quietly, for a supervisor that died without touching its record (redrawn if what is shown changed).
    """
    # here: filelock (locks, control) off the parser path; watchdog only for --watch
    from ..core.locks import queue_positions
    from ..usecases.watch import DirWatcher

    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    with DirWatcher(store.paths.status_dir) as watcher:
        try:
            known = _refresh(store, names, {}, None)
            recheck_at = time.monotonic() + WATCH_RECHECK_S
            changed: set[str] = set()
            drawn = None  # what the last redraw showed (:func:`_shown`)
            while True:
                recs = [v for v in known.values() if isinstance(v, StatusRecord)]
                bad = [v for v in known.values() if isinstance(v, BadRecord)]
                active = any(r.state.is_active for r in recs)
                if changed or active or _shown(recs) != drawn:
                    now = time.time()  # one instant for the times shown and the "updated" line
                    positions = queue_positions(store.paths) if any(str(r.status) == "queued" for r in recs) else {}
                    if recs or bad:
                        body = render.summary(recs, now) if summary and recs else render.table(recs, positions, bad, now=now)
                    else:
                        body = "no agents yet"
                    body = "\n".join([body, *render.question_lines(recs)])
                    stamp = time.strftime("%H:%M:%S", time.localtime(now))
                    sys.stdout.write(f"{clear}{body}\n\nupdated {stamp}; Ctrl-C to stop\n")
                    sys.stdout.flush()
                    drawn = _shown(recs)
                left = recheck_at - time.monotonic()
                if watcher.wait(max(0.0, min(left, WATCH_TICK_S) if active else left)):
                    watcher.wait(0.05)  # let a burst of writes settle into one redraw
                changed = {base.removesuffix(".json") for base in watcher.take_changed()}
                if names:
                    changed &= set(names)
                if time.monotonic() >= recheck_at:
                    known, recheck_at = _refresh(store, names, known, None), time.monotonic() + WATCH_RECHECK_S
                elif changed:
                    known = _refresh(store, names, known, changed)
        except KeyboardInterrupt:
            return ExitCode.OK


def _refresh(
    store: RecordStore, names: list[str] | None, known: dict[str, StatusRecord | BadRecord], changed: set[str] | None,
) -> dict[str, StatusRecord | BadRecord]:
    """``known`` brought up to date, in the order shown: agent -> its record (reconciled), or why it cannot be read.

    Only the agents in ``changed`` (None: all) and those not known yet are read; an agent whose
    record is gone is dropped (with NAMEs, read_records' NotFound: exit 4).
    """
    from ..core.errors import NotFound
    from ..usecases.control import read_records  # here: as in run

    tries = 3
    while True:
        tries -= 1
        wanted = names or store.paths.known_agents()
        which = [n for n in wanted if changed is None or n in changed or n not in known]
        bad: list[BadRecord] = []
        fresh: dict[str, StatusRecord | BadRecord] = {}
        try:
            if which:  # read_records reads every agent when given none
                fresh.update((r.agent, r) for r in read_records(store, which, unreadable=bad))
                fresh.update((b.name, b) for b in bad)
        except NotFound:
            if names or not tries:
                raise
            continue  # a record removed (clear_outputs.py) between the listing and the read: list again
        return {n: fresh[n] if n in fresh else known[n] for n in wanted if n in fresh or n in known}


def _shown(recs: list[StatusRecord]) -> list[tuple[str, str, str | None]]:
    """What a --watch redraw shows that a quiet re-check compares: each agent's status and pending question."""
    return [(r.agent, str(r.status), (render.question(r) or {}).get("id")) for r in recs]


def main(argv: Sequence[str] | None = None) -> int:
    """Run check_status.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-status`` and ``agents/check_status.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
