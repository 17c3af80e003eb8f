"""``wait_agents.py [NAME...] [--any] [--timeout S] | --follow``: sleep until agents end, or follow every change."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence

from ..core.errors import BadRecord
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import UNSUCCESSFUL, ExitCode, State
from ..records.shape import utc_now
from ..records.status_record import RecordStore, StatusRecord
from . import parsing, render
from .guard import guarded

SCRIPT = "wait_agents"

EPILOG = """\
examples:
  python3 agents/wait_agents.py                    every agent active now
  python3 agents/wait_agents.py rv-bugs rv-style   these two
  python3 agents/wait_agents.py --any a b c        the first of them to end
  python3 agents/wait_agents.py --timeout 300 --json
  python3 agents/wait_agents.py --follow           every change of any agent, until stopped

It sleeps until a status record changes (inotify via watchdog; polling where
inotify is unavailable, and every 1 s on a network filesystem such as NFS, where
other hosts' writes raise no inotify event; ORCHESTRATOR_WATCH=poll forces it), prints one line per state change as it happens and a
summary at the end. An agent that has already ended counts at once, once its
--on-complete hook (if any) has ended and its outcome is in the record.
--follow never ends by itself: it reports every agent's changes, agents launched
later included (a Claude Code plugin monitor or a Bash run_in_background runs it).
exit status: 0 every awaited agent completed, 1 one failed, timed out, ran out
of memory, was killed or lost, 4 an unknown agent, 124 --timeout passed first;
--follow: 0 on SIGTERM, 130 on SIGINT (Ctrl-C). An agent whose status file cannot
be read counts as ended unsuccessfully (`unreadable`); 70 an internal error.
"""

#: States that ``wait_agents.py --json`` (not --follow) does not report: every run
#: passes through them, and a master waiting for results acts on none of them.
ROUTINE_STATES = frozenset({State.STARTING, State.RUNNING})


def build_parser() -> argparse.ArgumentParser:
    """wait_agents.py's parser: NAMEs, ``--any``, ``--timeout``, ``--follow``, ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Wait for background Claude Code agents to end, printing each state change.", EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to wait for (default: every active one)")
    p.add_argument("--any", action="store_true", help="return when the first of them ends")
    p.add_argument("--timeout", metavar="S", type=float, help="give up after S seconds (exit 124)")
    p.add_argument("--follow", action="store_true", help="print every state change of any agent, agents launched later included, until stopped")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON lines: one per end, queue or wait (with --follow: per change), then (without --follow) a summary",
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line (``--follow`` takes no NAME, ``--any`` or ``--timeout``); exits 2 on bad usage."""
    p = build_parser()
    args = parsing.parse(p, argv, "names")
    if args.follow and (args.names or args.any or args.timeout is not None):
        p.error("--follow reports every agent until it is stopped; it takes no NAME, --any or --timeout")
    return args


class _Terminated(BaseException):
    """SIGTERM arrived: the follow ends normally.  A BaseException, as KeyboardInterrupt, so no handler swallows it."""


def _terminate(_signum, _frame) -> None:
    raise _Terminated


def follow(store: RecordStore, as_json: bool) -> ExitCode:
    """``--follow``: one line per state change of any agent until SIGTERM (OK) or SIGINT (the guard's 130)."""
    # here: --help and usage errors load no use case (control brings executors, filelock)
    from ..usecases.control import follow as follow_changes

    clock = render.ChangeClock()

    def on_change(r: StatusRecord, previous: str | None) -> None:
        at = clock.at(r)
        line = render.compact(render.change_event(r, previous, at)) if as_json else render.change_line(r, previous, at)
        print(line, flush=True)

    def ready() -> None:
        print(f"{program_name(SCRIPT)}: following every agent under {store.paths.root}; stop with SIGTERM or Ctrl-C", file=sys.stderr, flush=True)

    follow_changes(store, on_change, on_ready=ready)
    return ExitCode.OK


def wait_exit_code(timed_out: bool, unreadable: bool, recs: list[StatusRecord]) -> ExitCode:
    """WAIT_TIMEOUT if the timeout passed first; else AGENT_FAILED if a record was unreadable or a run did not complete; else OK."""
    if timed_out:
        return ExitCode.WAIT_TIMEOUT
    if unreadable or any(r.state in UNSUCCESSFUL for r in recs):
        return ExitCode.AGENT_FAILED
    return ExitCode.OK


def _awaited(store: RecordStore, args: argparse.Namespace) -> list[str]:
    """The NAMEs (without repeats), else every active agent and every one whose ended run's ``--on-complete``
    hook runs (stderr: the unreadable ones not waited for, and
    the runs of an executor this toolkit does not know, which it cannot tell the end of)."""
    from ..executors.registry import EXECUTORS, UnknownExecutor  # here: --help and usage errors load no executor
    from ..usecases.control import hook_running, read_records  # here: --help and usage errors load no use case

    if args.names:
        return list(dict.fromkeys(args.names))
    skipped: list[BadRecord] = []
    names = []
    for r in read_records(store, unreadable=skipped):
        if r.state.is_active and r.spec.executor not in EXECUTORS:
            print(f"{program_name(SCRIPT)}: not waiting for {r.agent}: {UnknownExecutor(r.spec.executor).why}", file=sys.stderr)
        elif r.state.is_active or hook_running(store, r):  # an ended run whose --on-complete hook runs holds its name
            names.append(r.agent)
    for b in skipped:
        print(f"{program_name(SCRIPT)}: not waiting for {b.name}: {b}", file=sys.stderr)
    return names


def run(args: argparse.Namespace) -> ExitCode:
    """Wait (printing each change, then a summary), or ``--follow``.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    from ..usecases.control import read_records, wait_for  # here: --help and usage errors load no use case

    store = RecordStore(StatePaths())
    if args.follow:
        return follow(store, args.json)
    names = _awaited(store, args)
    if not names:
        print(json.dumps(render.wait_summary(ExitCode.OK, {}, {})) if args.json else "no active agents to wait for")
        return ExitCode.OK
    clock = render.ChangeClock()

    def on_change(r: StatusRecord, previous: str | None) -> None:
        at = clock.at(r)
        if not args.json:
            print(render.change_line(r, previous, at), flush=True)
        elif r.state not in ROUTINE_STATES:  # a waiting master acts on ends and on hold-ups, not on the routine
            print(render.compact(render.change_event(r, previous, at)), flush=True)

    def on_unreadable(b: BadRecord) -> None:
        at = clock.last[1] if clock.last else utc_now()
        print(render.compact(render.unreadable_event(b, at)) if args.json else render.unreadable_line(b, at), flush=True)

    bad: dict[str, BadRecord] = {}
    recs = wait_for(store, names, args.timeout, any_=args.any, on_change=on_change, unreadable=bad, on_unreadable=on_unreadable)
    timed_out = recs is None
    if recs is None:
        recs = read_records(store, names, unreadable=[])
    code = wait_exit_code(timed_out, bool(bad), recs)
    counts = render.state_counts([str(r.status) for r in recs] + [render.UNREADABLE] * len(bad))
    if args.json:
        agents = {r.agent: str(r.status) for r in recs} | {n: render.UNREADABLE for n in bad}
        print(render.compact(render.wait_summary(code, counts, agents)))
    else:
        verdict = "timed out waiting" if timed_out else ("first ended" if args.any else "all ended")
        print(f"{verdict}: {render.counts_text(counts)}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run wait_agents.py with ``argv``, parsed and run inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-wait`` and ``agents/wait_agents.py`` both call it.

    With ``--follow``, SIGTERM is handled first thing (a monitor may stop it
    at once) and ends the follow with exit 0.
    """
    if "--follow" not in (sys.argv[1:] if argv is None else argv):
        return _main(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    except _Terminated:
        return int(ExitCode.OK)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
