"""``kill_agent.py NAME... | --all``: stop agents' runs and their whole process trees."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ..core.errors import BadRecord, OrchestratorError
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode, State
from ..records.status_record import RecordStore, StatusRecord
from . import parsing, render
from .guard import guarded

SCRIPT = "kill_agent"

EPILOG = """\
examples:
  python3 agents/kill_agent.py agent2              stop one agent
  python3 agents/kill_agent.py --all               stop every active agent
  python3 agents/kill_agent.py slow --grace 2      SIGKILL 2 s after SIGTERM

The run's whole process tree is stopped: SIGTERM, the grace period, SIGKILL
(the CLI's process group and every descendant, including ones that called
setsid). Its status becomes `killed`. A queued agent is taken off the queue.
A lost agent's orphaned processes are stopped too. Stopping an agent that has
already ended does nothing and exits 0.
exit status: 0 stopped or nothing to stop, 2 bad input (or a named agent's status
file is unreadable and nothing of it runs), 4 no such agent, 69 Slurm could not
stop a Slurm run (scancel failed or did not answer), or the run's executor is
not one this toolkit knows (a newer toolkit's run): nothing more is recorded
for it, the others are stopped; 74 the state root cannot be written, 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """kill_agent.py's parser: NAMEs or ``--all``, ``--grace``, ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Stop background Claude Code agents and their whole process trees.", EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to stop")
    p.add_argument("--all", action="store_true", help="stop every active agent, every --on-complete hook still running, and lost agents' orphaned processes")
    p.add_argument("--grace", metavar="S", type=float, help="seconds between SIGTERM and SIGKILL (default: the run's --kill-grace)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line: NAMEs or ``--all``, a ``--grace`` of 0 or more; exits 2 on bad usage."""
    p = build_parser()
    args = parsing.names_or_all(p, argv, "stop")
    if args.grace is not None and args.grace < 0:
        p.error("--grace must be 0 or more")
    return args


def select_all(store: RecordStore, recs: list[StatusRecord]) -> list[str]:
    """``--all``'s agents: every active run, every ended run whose ``--on-complete`` hook still runs, and
    every lost run whose orphaned processes still live."""
    from ..usecases.control import has_leftovers, hook_running  # the use cases: off --help and usage errors

    return [
        r.agent
        for r in recs
        if r.state.is_active
        or (r.state is State.LOST and has_leftovers(store, r))
        or (r.state is not State.LOST and hook_running(store, r))  # ended, its hook still running
    ]


def stop_together(
    store: RecordStore, names: list[str], bad: list[BadRecord], grace_s: float | None
) -> tuple[list[tuple[str, StatusRecord | None | OrchestratorError]], list[str | OrchestratorError]]:
    """Stop the readable agents ``names`` and the unreadable ones ``bad``, all at once.

    The readable ones by :func:`..usecases.control.stop_many` (each executor asked once for
    all its runs: one ``scancel`` for Slurm's jobs; the rest in up to 16 threads; one agent in
    place, as :func:`..usecases.control.stop` does); the unreadable ones meanwhile, one thread each (up to 16).

    Returns:
        :func:`..usecases.control.stop`'s ``(action, record)`` per name, or ``("error", the
        OrchestratorError)`` for one that could not be stopped (e.g. scancel failed:
        the others are still stopped), and :func:`..usecases.control.stop_unreadable`'s action
        per bad record (or its OrchestratorError).
    """
    from concurrent.futures import ThreadPoolExecutor  # threads: only a stop of several agents

    from ..usecases.control import stop_many, stop_unreadable  # the use cases: off --help and usage errors

    def stop_bad(b: BadRecord) -> str | OrchestratorError:
        try:
            return stop_unreadable(store, b, grace_s=grace_s)
        except OrchestratorError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(bad)))) as pool:
        stopping_bad = pool.map(stop_bad, bad)  # meanwhile
        return stop_many(store, names, grace_s=grace_s), list(stopping_bad)


def run(args: argparse.Namespace) -> ExitCode:
    """Stop the agents; print what happened to each (stderr: unreadable records).

    Returns:
        OK, or USAGE if a named agent's record is unreadable and nothing of it ran.

    Raises:
        NotFound: a named agent has no record, before anything is stopped (exit 4).
    """
    from ..usecases.control import read_records  # the use cases: off --help and usage errors

    store = RecordStore(StatePaths())
    bad: list[BadRecord] = []
    if args.all:
        names = select_all(store, read_records(store, unreadable=bad))
    else:
        wanted = list(dict.fromkeys(args.names))
        names = [r.agent for r in read_records(store, wanted, unreadable=bad)]  # NotFound (exit 4) before stopping anything
    results, bad_results = stop_together(store, names, bad, args.grace)
    errors = [rec for what, rec in results if what == "error"] + [w for w in bad_results if isinstance(w, OrchestratorError)]
    if errors and len(names) + len(bad) == 1:
        raise errors[0]  # one agent: its one error line
    out: list[dict[str, Any]] = []
    for name, (what, rec) in zip(names, results, strict=True):
        if what == "error":
            out.append({"agent": name, "action": "error", "error": str(rec)})
            print(f"{name}: {rec}", file=sys.stderr)
            continue
        out.append({"agent": name, "action": what, "status": str(rec.status) if rec else "cleared"})
        if not args.json:
            print(f"{name}: {render.kill_message(what, rec)}")
    for b, what in zip(bad, bad_results, strict=True):
        if isinstance(what, OrchestratorError):
            out.append({"agent": b.name, "action": "error", "error": str(what), "status_file": b.path})
            print(f"{b.name}: {what}", file=sys.stderr)
            continue
        out.append({"agent": b.name, "action": what, "status": render.UNREADABLE, "status_file": b.path})
        said = "stopped its supervisor; " if what == "stopped" else ""
        print(f"{b.name}: {said}{b}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2))
    elif not names and not bad:
        print("no active agents")
    if errors:
        return errors[0].exit_code  # e.g. 69: Slurm could not stop one of them (each is named on stderr)
    # A named agent whose record is unreadable and that runs nothing is bad input; --all acts on the rest.
    return ExitCode.USAGE if not args.all and any(w == "not-running" for w in bad_results) else ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run kill_agent.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-kill`` and ``agents/kill_agent.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
