"""``wait_agents.py [NAME...] [--any] [--timeout S] | --follow``: sleep until agents end, or follow every change."""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
from collections.abc import Callable, Sequence

from ..core.errors import BadRecord, OrchestratorError
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
  python3 agents/wait_agents.py --follow --only ends,questions --exit-with-parent
                                                   what a plugin monitor runs: only what the
                                                   model must act on, ending with its session

It sleeps until a status record changes (inotify via watchdog; polling where
inotify is unavailable, and every 1 s on a network filesystem such as NFS, where
other hosts' writes raise no inotify event; ORCHESTRATOR_WATCH=poll forces it), prints one line per state change as it happens and a
summary at the end. An agent that has already ended counts at once, once its
--on-complete hook (if any) has ended and its outcome is in the record; so does a
run whose turn has ended and that waits for a message (--keep-open: "idle").
--follow never ends by itself: it reports every agent's changes, agents launched
later included (a Claude Code plugin monitor or a Bash run_in_background runs it).
An awaited agent that asks a permission question (--ask-permission) wakes the
wait at once, one already waiting when it starts included: one line names the
agent, the tool, its input and the question, with the command that answers it
(answer_agent.py NAME allow|deny), and it exits 5; wait again after answering.
--follow also reports questions, how they were settled and message deliveries
("NAME: message delivered (2 of 2)"); --only KIND,... keeps some kinds: progress
(queued, starting, running, ...), ends (completed, failed, ...), questions,
answers, messages. --exit-with-parent ends the follow (exit 0) once the process
that started it is gone or nothing reads its output.
exit status: 0 every awaited agent completed, 1 one failed, timed out, ran out
of memory, was killed or lost, 4 an unknown agent, 5 an awaited agent asks a
permission question, 124 --timeout passed first; --follow: 0 on SIGTERM or once
its parent is gone (--exit-with-parent), 130 on SIGINT (Ctrl-C). An agent whose
status file cannot be read counts as ended unsuccessfully (`unreadable`); 70 an
internal error.
"""

#: States that ``wait_agents.py --json`` (not --follow) does not report: every run
#: passes through them, and a master waiting for results acts on none of them.
ROUTINE_STATES = frozenset({State.STARTING, State.RUNNING})
#: Seconds between --exit-with-parent's looks at its parent and its stdout.
PARENT_CHECK_S = 1.0


def _kinds(text: str) -> frozenset[str]:
    """``--only``'s value: comma-separated kinds of :data:`render.NOTICE_KINDS`."""
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(render.NOTICE_KINDS))
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(
            f"unknown kind {', '.join(unknown) or '(none)'}; choose from {', '.join(render.NOTICE_KINDS)}"
        )
    return kinds


def build_parser() -> argparse.ArgumentParser:
    """wait_agents.py's parser: NAMEs, ``--any``, ``--timeout``, ``--follow``, ``--json``."""
    p = parsing.new_parser(program_name(SCRIPT), "Wait for background Claude Code agents to end, printing each state change.", EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to wait for (default: every active one)")
    p.add_argument("--any", action="store_true", help="return when the first of them ends")
    p.add_argument("--timeout", metavar="S", type=float, help="give up after S seconds (exit 124)")
    p.add_argument("--follow", action="store_true", help="print every state change of any agent, agents launched later included, until stopped")
    p.add_argument(
        "--only",
        metavar="KIND,...",
        type=_kinds,
        help=f"with --follow: report only these kinds ({', '.join(render.NOTICE_KINDS)}); "
        "ends includes a run idle after its turn (--keep-open); a plugin monitor uses ends,questions (default: all)",
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="with --follow: exit 0 once the process that started it is gone or nothing reads its output (a monitor's session)",
    )
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
    if not args.follow and (args.only is not None or args.exit_with_parent):
        p.error("--only and --exit-with-parent go with --follow")
    return args


class _Terminated(BaseException):
    """SIGTERM arrived: the follow ends normally.  A BaseException, as KeyboardInterrupt, so no handler swallows it."""


def _terminate(_signum, _frame) -> None:
    raise _Terminated


def session_gone(parent: int) -> bool:
    """True once this process's parent is no longer ``parent`` (it died: we were re-parented), or once
    nothing reads our stdout (a pipe's or socket's reader closed it: poll() says POLLERR or POLLHUP)."""
    if os.getppid() != parent:
        return True
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced (a test's capture) or closed: no pipe to look at
        return False
    poller = select.poll()
    poller.register(fd, 0)  # no events asked: POLLERR, POLLHUP and POLLNVAL are always reported
    return any(ev & (select.POLLERR | select.POLLHUP | select.POLLNVAL) for _, ev in poller.poll(0))


class _Printer:
    """Prints the follow's lines; a reader that went away (EPIPE) ends the follow quietly."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self, line: str) -> None:
        if self.broken:
            return
        try:
            print(line, flush=True)
        except BrokenPipeError:
            self.broken = True
            try:  # Python would report the unflushed line again at exit
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


def _reporter(as_json: bool, kinds: frozenset[str] | None, emit: Callable[[str], None], clock: render.ChangeClock):
    """``(on_change, on_notices)`` callbacks that print what ``kinds`` keep (None: all), as text or JSON lines."""

    def on_change(r: StatusRecord, previous: str | None) -> None:
        if kinds is not None and ("ends" if r.state.is_terminal else "progress") not in kinds:
            return
        at = clock.at(r)
        emit(render.compact(render.change_event(r, previous, at)) if as_json else render.change_line(r, previous, at))

    def on_notices(r: StatusRecord, notices: list[tuple[str, dict]]) -> None:
        for kind, data in notices:
            if kinds is not None and ("ends" if kind == "idle" else kind) not in kinds:  # an idle run has ended its turn
                continue
            at = render.notice_at(r, kind, utc_now())
            emit(render.compact(render.notice_event(r, kind, data, at)) if as_json else render.notice_line(r, kind, data, at))

    return on_change, on_notices


def _report(changes, recs, notices: render.Notices, on_change, on_notices) -> None:
    """Report one read: each record's state change and its notices (an ended run's notices before its end)."""
    changed = {r.agent for r, _ in changes}
    for r, previous in changes:
        found = notices.take(r)
        if r.state.is_terminal:
            on_notices(r, found)
            on_change(r, previous)
        else:
            on_change(r, previous)
            on_notices(r, found)
    for r in recs:
        if r.agent not in changed:
            on_notices(r, notices.take(r))


def follow(store: RecordStore, as_json: bool, kinds: frozenset[str] | None = None, exit_with_parent: bool = False) -> ExitCode:
    """``--follow``: one line per change of any agent (state, question, answer, delivery; those ``kinds`` keep)
    until SIGTERM (OK), SIGINT (the guard's 130) or, with ``exit_with_parent``, its parent or its reader goes (OK).

    :func:`..usecases.control.follow`'s loop, with the notices of :class:`render.Notices`:
    what is there when it starts is known, not reported, except a question pending then, which is.
    """
    from ..usecases import control  # here: --help and usage errors load no use case (executors, filelock, watchdog)

    parent = os.getppid()
    emit = _Printer()
    on_change, on_notices = _reporter(as_json, kinds, emit, render.ChangeClock())
    notices = render.Notices()

    def on_start(start: list[StatusRecord]) -> None:
        notices.prime(start)
        print(f"{program_name(SCRIPT)}: following every agent under {store.paths.root}; stop with SIGTERM or Ctrl-C",
              file=sys.stderr, flush=True)
        _report([], start, notices, on_change, on_notices)  # a question pending now is news

    control.follow(
        store, lambda changes, recs: _report(changes, recs, notices, on_change, on_notices),
        stop=lambda: emit.broken or (exit_with_parent and session_gone(parent)),
        tick_s=PARENT_CHECK_S if exit_with_parent else None, on_start=on_start,
    )
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


def answered(store: RecordStore, r: StatusRecord, question_id: str) -> bool:
    """True if the question already has an answer file (``a-<id>.json``) that its run has not taken yet:
    a wait started right after ``answer_agent.py`` must not wake for it again."""
    from ..records.channel import ANSWER_PREFIX  # here: --help and usage errors load no record module

    try:
        return (store.paths.channel(r.agent, r.run_id) / f"{ANSWER_PREFIX}{question_id}.json").exists()
    except (OrchestratorError, OSError):  # a run id that cannot name a folder: no answer can be there
        return False


def wait_or_ask(
    store: RecordStore,
    names: list[str],
    timeout: float | None,
    *,
    any_: bool,
    on_change: Callable[[StatusRecord, str | None], None],
    on_question: Callable[[StatusRecord, dict], None],
    unreadable: dict[str, BadRecord],
    on_unreadable: Callable[[BadRecord], None],
) -> tuple[list[StatusRecord] | None, list[StatusRecord]]:
    """:func:`..usecases.control.wait_for`, which also ends when one of the named agents waits on a
    permission question, and takes a run idle after its turn (``--keep-open``) as ended.

    A question counts once it is in a record's ``waiting_for`` and has no
    answer file yet (:func:`answered`); one pending when the wait starts counts at once.
    ``on_question`` gets each such ``(record, question)`` of the read that found the first.

    Returns:
        ``(records as last read or None if the timeout passed first, the records that ask)``:
        the second is empty unless a question ended the wait.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    from ..usecases.control import wait_for  # here: --help and usage errors load no use case

    asking: list[StatusRecord] = []

    def ask(recs: list[StatusRecord]) -> bool:
        found = [(r, q) for r in recs if (q := render.question(r)) is not None and not answered(store, r, q["id"])]
        for r, q in found:
            on_question(r, q)
            asking.append(r)
        if found:
            return True
        # a run whose turn has ended and that waits for a message (--keep-open) has answered: it counts as ended
        idle = [r for r in recs if r.state.is_active and r.keep_open_until]
        done = [r for r in recs if r.state.is_terminal or r in idle]
        return bool(idle) and (any_ or len(done) == len(recs))

    recs = wait_for(store, names, timeout, any_=any_, on_change=on_change, unreadable=unreadable,
                    on_unreadable=on_unreadable, stop_on=ask)
    return recs, asking


def run(args: argparse.Namespace) -> ExitCode:
    """Wait (printing each change, then a summary), or ``--follow``.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    from ..usecases.control import read_records  # here: --help and usage errors load no use case

    store = RecordStore(StatePaths())
    if args.follow:
        return follow(store, args.json, args.only, args.exit_with_parent)
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

    def on_question(r: StatusRecord, q: dict) -> None:
        at = render.notice_at(r, "questions", utc_now())
        event = render.notice_event(r, "questions", q, at) if args.json else render.notice_line(r, "questions", q, at)
        print(render.compact(event) if args.json else event, flush=True)

    def on_unreadable(b: BadRecord) -> None:
        at = clock.last[1] if clock.last else utc_now()
        print(render.compact(render.unreadable_event(b, at)) if args.json else render.unreadable_line(b, at), flush=True)

    bad: dict[str, BadRecord] = {}
    recs, asking = wait_or_ask(store, names, args.timeout, any_=args.any, on_change=on_change, on_question=on_question,
                               unreadable=bad, on_unreadable=on_unreadable)
    timed_out = recs is None
    if recs is None:
        recs = read_records(store, names, unreadable=[])
    code = ExitCode.QUESTION if asking else wait_exit_code(timed_out, bool(bad), recs)
    if not asking and not timed_out and not args.json:
        for r in recs:
            if r.state.is_active and r.keep_open_until:
                print(render.notice_line(r, "idle", {"until": r.keep_open_until}, utc_now()), flush=True)
    counts = render.state_counts([str(r.status) for r in recs] + [render.UNREADABLE] * len(bad))
    if args.json:
        agents = {r.agent: str(r.status) for r in recs} | {n: render.UNREADABLE for n in bad}
        print(render.compact(render.wait_summary(code, counts, agents)))
    else:
        if asking:
            verdict = f"{', '.join(r.agent for r in asking)} waiting on a question"
        else:
            verdict = "timed out waiting" if timed_out else ("first ended" if args.any else "all ended")
            if not timed_out and any(r.state.is_active and r.keep_open_until for r in recs):
                verdict += " or idle"
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
