"""The scripts' command lines: argument parsing, one call into the package, output.

Each ``*_main(argv=None) -> int`` is what one script in ``agents/`` runs.
Errors are :class:`OrchestratorError`s printed as one line on stderr; exit
statuses are :class:`ExitCode`s; ``--json`` prints only JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .claude_cli import KNOWN_PERMISSION_MODES, ClaudeOptions
from .errors import BadInput, BadRecord, bad_record_advice, guarded
from .isolation import ISOLATIONS
from .limits import RunLimits
from .paths import StatePaths
from .record import StatusRecord
from .states import UNSUCCESSFUL, ExitCode, State

TASK_PREVIEW = 48
#: What the scripts call an agent whose ``status/NAME.json`` cannot be read (not a run state).
UNREADABLE = "unreadable"


# -- shared pieces -----------------------------------------------------------


def _parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_claude_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Claude CLI options (passed to `claude -p`)")
    g.add_argument("--cwd", metavar="DIR", help="the agent's working directory (default: the current one)")
    g.add_argument(
        "--isolation",
        choices=ISOLATIONS,
        help="none (default): work in --cwd; dir: in workspaces/NAME/; worktree: in a git worktree of "
        "--cwd's repository on branch orchestrator/NAME/RUN_ID",
    )
    g.add_argument("--model", help="--model for the CLI, e.g. sonnet or claude-sonnet-4-5")
    g.add_argument("--append-system-prompt", metavar="TEXT", help="text appended to the agent's system prompt")
    g.add_argument("--allowed-tools", metavar="LIST", help='tools allowed without asking, e.g. "Bash,Edit,Read"')
    g.add_argument(
        "--permission-mode",
        metavar="MODE",
        help=f"one of the installed CLI's modes ({', '.join(KNOWN_PERMISSION_MODES)}; "
        "manual and default are the same mode, translated for the CLI); see `claude --help`",
    )
    g.add_argument(
        "--dangerously-skip-permissions",
        action="store_true",
        default=None,
        help="bypass all permission checks (as root the CLI needs IS_SANDBOX=1 for this)",
    )
    g.add_argument("--max-turns", metavar="N", type=int, help="--max-turns for the CLI: stop after N agentic turns")
    g.add_argument("--max-budget-usd", metavar="USD", type=float, help="--max-budget-usd for the CLI: stop spending at USD")
    g.add_argument("--profile", metavar="NAME", help="options from a profile in agents/profiles.toml ($ORCHESTRATOR_PROFILES); flags win")
    g.add_argument("--claude-arg", metavar="ARG", action="append", default=[], help="an extra CLI argument, as is (repeatable)")
    lim = p.add_argument_group("limits (enforced by the supervisor)")
    lim.add_argument("--timeout", metavar="S", type=float, help="stop the run after S seconds (default 600 or $ORCHESTRATOR_TIMEOUT; 0 = none)")
    lim.add_argument("--kill-grace", metavar="S", type=float, help="seconds between SIGTERM and SIGKILL when stopping (default 10)")
    lim.add_argument("--memory-limit", metavar="MB", type=float, help="stop the run when its process tree's RSS reaches MB MiB (default 2048; 0 = none)")
    lim.add_argument("--max-parallel", metavar="N", type=int, help="run at most N agents at once, queue the rest (default 4 or $ORCHESTRATOR_MAX_PARALLEL; 0 = no limit)")
    lim.add_argument("--retries", metavar="N", type=int, help="retry a run that failed with a retryable API error (429, 5xx, overloaded) up to N times (default 0)")
    lim.add_argument("--retry-backoff", metavar="S", type=float, help="seconds before the first retry, doubling after (default 2)")
    r = p.add_argument_group("run control")
    r.add_argument(
        "--on-complete",
        metavar="CMD",
        help="run CMD (split into words like a shell, never through one) when the agent ends; "
        "env: ORCHESTRATOR_AGENT, _STATUS, _RUN_ID, _RECORD, _OUTPUT",
    )
    r.add_argument("--after", metavar="A,B", help="start only when these agents have completed (until then: waiting; if one fails: skipped)")
    r.add_argument("--after-any", action="store_true", help="with --after: start once they have ended, however they ended")
    r.add_argument(
        "--with-context-from",
        metavar="NAME",
        help="once NAME has ended, start from a fork of its session (implies --after NAME; cwd defaults to NAME's)",
    )
    r.add_argument("--wait", action="store_true", help="block until the run ends; exit 0 if completed, else 1")
    r.add_argument("--background", action="store_true", help="run in the background (the default; accepted for the seed's commands)")
    r.add_argument("--json", action="store_true", help="print JSON only")


def _profile(args: argparse.Namespace, role: str | None = None) -> tuple[str | None, dict]:
    """The profile to apply: the one matching ``role`` if any, else ``--profile``, else none."""
    from .profiles import find_profile, get_profile, load_profiles

    if role is not None:
        profiles = load_profiles()
        found = find_profile(profiles, role)
        if found is not None:
            return found, profiles[found]
    if args.profile:
        profiles = load_profiles()
        found = find_profile(profiles, args.profile)
        if found is None:
            get_profile(args.profile)  # raises NotFound with the known names
        return found, profiles[found]
    return None, {}


def _claude_options(args: argparse.Namespace, profile: dict | None = None) -> ClaudeOptions:
    """CLI options from the flags, falling back to ``profile`` for any flag not given."""
    prof = profile or {}

    def pick(flag: str, key: str):
        value = getattr(args, flag)
        return value if value is not None else prof.get(key)

    return ClaudeOptions(
        model=pick("model", "model"),
        append_system_prompt=pick("append_system_prompt", "append_system_prompt"),
        allowed_tools=pick("allowed_tools", "allowed_tools"),
        permission_mode=pick("permission_mode", "permission_mode"),
        dangerously_skip_permissions=bool(args.dangerously_skip_permissions),
        max_turns=pick("max_turns", "max_turns"),
        max_budget_usd=args.max_budget_usd,
        claude_args=list(prof.get("claude_args", [])) + list(args.claude_arg),  # later ones win in the CLI
    )


def _after(args: argparse.Namespace) -> dict:
    """The dependency options as keyword arguments for the launcher."""
    after = [n.strip() for n in (args.after or "").split(",") if n.strip()]
    if args.after_any and not (after or args.with_context_from):
        raise BadInput("--after-any needs --after or --with-context-from")
    return {"after": after, "after_any": bool(args.after_any), "context_from": args.with_context_from}


def _isolation(args: argparse.Namespace, profile: dict | None = None) -> str:
    return args.isolation or (profile or {}).get("isolation") or "none"


def _limits(args: argparse.Namespace, profile: dict | None = None) -> RunLimits:
    prof = profile or {}
    return RunLimits.from_env(
        timeout_s=args.timeout if args.timeout is not None else prof.get("timeout"),
        kill_grace_s=args.kill_grace,
        memory_limit_mb=args.memory_limit if args.memory_limit is not None else prof.get("memory_limit"),
        max_parallel=args.max_parallel,
        retries=args.retries,
        retry_backoff_s=args.retry_backoff,
    )


def _on_complete(args: argparse.Namespace) -> list[str] | None:
    if args.on_complete is None:
        return None
    import shlex

    try:
        argv = shlex.split(args.on_complete)
    except ValueError as exc:
        raise BadInput(f"--on-complete: {exc} (check the quotes)") from exc
    if not argv:
        raise BadInput("--on-complete is empty")
    return argv


def _read_task(words: Sequence[str], task_file: str | None) -> str:
    """The task from the positional words or ``--task-file`` (``-`` = stdin), checked by :func:`_task_text`."""
    if task_file is not None:
        if words:
            raise BadInput("give the task either as an argument or with --task-file, not both")
        if task_file == "-":
            return _task_text(sys.stdin.buffer.read(), "the task on stdin")
        return _task_text(_read_bytes(task_file, "--task-file"), f"--task-file {task_file}")
    # An argument the OS gave as bytes that are not UTF-8 reaches Python as surrogate escapes: get the bytes back.
    return _task_text(" ".join(words).encode("utf-8", "surrogateescape"), "the task")


def _read_bytes(path: str, option: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise BadInput(f"cannot read {option} {path!r}: {exc.strerror}") from exc


def _task_text(data: bytes, source: str) -> str:
    """``data`` as text, if it is a task the CLI can be given: UTF-8 without NUL bytes.

    Raises:
        BadInput: not valid UTF-8, or a NUL byte, with the byte offset (exit 2).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{source} is not valid UTF-8: byte {data[exc.start]:#04x} at offset {exc.start}; save it as UTF-8"
        ) from None
    nul = data.find(b"\0")
    if nul >= 0:
        raise BadInput(f"{source} holds a NUL byte at offset {nul}; a task is text: remove it")
    return text


def _parse(p: argparse.ArgumentParser, argv: Sequence[str] | None, positional: str) -> argparse.Namespace:
    """Parse options and positionals in any order; everything after ``--`` is positional.

    argparse's intermixed parsing mishandles ``--``, so the tail after it is
    split off first and appended to the list positional named ``positional``.
    A ``name`` positional left empty takes the tail's first word.
    """
    words = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1 :]
    args = p.parse_intermixed_args(words)
    if tail and hasattr(args, "name") and args.name is None:
        args.name = tail.pop(0)
    setattr(args, positional, list(getattr(args, positional) or []) + tail)
    if hasattr(args, "name") and args.name is None:
        p.error("the agent NAME is required")
    return args


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _fmt_cost(cost: float | None) -> str:
    return "-" if cost is None else f"${cost:.4f}"


def _preview(text: str | None, width: int = TASK_PREVIEW) -> str:
    one_line = " ".join((text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


def _launch_summary(paths: StatePaths, rec: StatusRecord) -> dict[str, Any]:
    return {
        "agent": rec.agent,
        "run_id": rec.run_id,
        "status": str(rec.status),
        "session_id": rec.session_id,
        "cwd": rec.cwd,
        "status_file": str(paths.status(rec.agent)),
        "output_file": rec.output_file,
        "session_file": str(paths.session(rec.agent)),
        "transcript_file": rec.transcript_file,
        "log_file": rec.log_file,
    }


def _launched_line(rec: StatusRecord) -> str:
    return f"{rec.agent}: {rec.status}  run {rec.run_id}  session {rec.session_id}"


def _print_launched(paths: StatePaths, rec: StatusRecord) -> None:
    print(_launched_line(rec))
    print(f"  status:     {paths.status(rec.agent)}")
    print(f"  output:     {rec.output_file}")
    print(f"  transcript: {rec.transcript_file}")
    print(f"  log:        {rec.log_file}")


def _layout_line(paths: StatePaths) -> str:
    """The state root's file layout, said once for many agents."""
    return (
        f"files under {paths.root}/: status/NAME.json, outputs/NAME_latest.txt (result), "
        "sessions/NAME_session.txt, outputs/NAME/RUN_ID.jsonl (transcript) and .log"
    )


#: Characters of the result preview in compact output; the whole text is in ``output_file``.
BRIEF_RESULT_CHARS = 64
#: Characters of an error kept in compact output; the whole one is in the record.
BRIEF_ERROR_CHARS = 200


def _brief(r: StatusRecord, positions: dict[str, int] | None = None) -> dict[str, Any]:
    """The fields a master acts on, for ``check_status.py --json`` (about 0.35 KB per agent).

    Keys: agent, status, run_id, [queue_position], [error], [result] (a preview),
    num_turns, cost_usd, duration_s (so far, while active), session_id, output_file.
    """
    d: dict[str, Any] = {"agent": r.agent, "status": str(r.status), "run_id": r.run_id}
    if positions and r.agent in positions:
        d["queue_position"] = positions[r.agent]
    if r.error:
        d["error"] = _preview(r.error, BRIEF_ERROR_CHARS)
    if r.result:
        d["result"] = _preview(r.result, BRIEF_RESULT_CHARS)
    elapsed = r.duration_s if r.duration_s is not None else r.elapsed_s()
    d.update(
        num_turns=r.num_turns, cost_usd=r.cost_usd, duration_s=None if elapsed is None else round(elapsed, 1),
        session_id=r.session_id, output_file=r.output_file,
    )
    return d


def _json_list(items: list[dict[str, Any]]) -> str:
    """A JSON list with one compact object per line: cheap to read, easy to grep."""
    if not items:
        return "[]"
    return "[\n" + ",\n".join(_compact(i) for i in items) + "\n]"


def _compact(obj: Any) -> str:
    """JSON without the optional spaces (ASCII-escaped: safe whatever stdout's encoding)."""
    return json.dumps(obj, separators=(",", ":"))


def _status_text(r: StatusRecord, positions: dict[str, int]) -> str:
    text = str(r.status)
    if text == "queued" and r.agent in positions:
        text += f" #{positions[r.agent]}"
    if text == "waiting" and r.options.get("after"):
        text += f" ({','.join(r.options['after'])})"
    if r.attempt > 1:
        text += f" (try {r.attempt})"
    return text


def _columns(rows: list[tuple[str, ...]]) -> str:
    """Rows as left-aligned columns; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1]).rstrip() for row in rows)


def _last(r: StatusRecord) -> str:
    """What an active agent did last (its latest tool call), for the table."""
    if not r.state.is_active or not r.last_tool:
        return ""
    return _preview(f"{r.last_tool.get('name')}: {r.last_tool.get('input', '')}", 40)


def _table(
    recs: list[StatusRecord],
    positions: dict[str, int] | None = None,
    bad: Sequence[BadRecord] = (),
    order: dict[str, int] | None = None,
) -> str:
    """The status table; an unreadable record is a row of its own (its reason is on stderr)."""
    positions = positions or {}
    show_last = any(_last(r) for r in recs)
    head = ("AGENT", "STATUS", "ELAPSED", "TURNS", "TOKENS", "COST") + (("LAST TOOL",) if show_last else ()) + ("TASK",)
    rows: list[tuple[str, tuple[str, ...]]] = []
    for r in recs:
        tokens = f"{r.tokens['input'] + r.tokens['output']:,}" if r.tokens else "-"
        row = (r.agent, _status_text(r, positions), _fmt_duration(r.elapsed_s()), str(r.num_turns), tokens, _fmt_cost(r.cost_usd))
        rows.append((r.agent, row + ((_last(r) or "-",) if show_last else ()) + (_preview(r.task),)))
    for b in bad:
        rows.append((b.name, (b.name, UNREADABLE, "-", "-", "-", "-") + (("-",) if show_last else ()) + (f"(see {b.path})",)))
    if order:
        rows.sort(key=lambda row: order.get(row[0], 0))
    return _columns([head] + [row for _, row in rows])


def _summary(recs: list[StatusRecord]) -> str:
    """The execution summary: totals, the parallel speed-up, and one line per agent."""
    import time as _time

    from .record import parse_time

    counts: dict[str, int] = {}
    for r in recs:
        counts[str(r.status)] = counts.get(str(r.status), 0) + 1
    starts = [t for r in recs if (t := parse_time(r.started) or parse_time(r.created)) is not None]
    ends = [parse_time(r.finished) or _time.time() for r in recs]
    wall = (max(ends) - min(starts)) if starts else 0.0
    total = sum(r.elapsed_s() or 0.0 for r in recs)
    lines = [
        f"{len(recs)} agent(s): " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
        f"wall time {_fmt_duration(wall)}; sum of run times {_fmt_duration(total)}"
        + (f"; parallel speed-up {total / wall:.1f}x" if wall > 0 else ""),
    ]
    budgets = [b for r in recs if (b := (r.options.get("claude") or {}).get("max_budget_usd")) is not None]
    if budgets:
        spent = sum(r.cost_usd or 0.0 for r in recs if (r.options.get("claude") or {}).get("max_budget_usd") is not None)
        lines.append(f"budget {_fmt_cost(sum(budgets))} over {len(budgets)} agent(s): spent {_fmt_cost(spent)} ({spent / sum(budgets):.0%})")
    lines.append("")
    rows = [("AGENT", "STATUS", "DURATION", "TURNS", "PEAK MiB", "EXIT", "COST")]
    for r in recs:
        rows.append(
            (
                r.agent, str(r.status), _fmt_duration(r.elapsed_s()), str(r.num_turns),
                "-" if r.peak_rss_mb is None else f"{r.peak_rss_mb:.0f}",
                "-" if r.exit_code is None else str(r.exit_code), _fmt_cost(r.cost_usd),
            )
        )
    cost = sum(r.cost_usd or 0.0 for r in recs)
    peak = max((r.peak_rss_mb or 0.0 for r in recs), default=0.0)
    rows.append(("TOTAL", "", _fmt_duration(total), str(sum(r.num_turns for r in recs)), f"{peak:.0f} max", "", _fmt_cost(cost)))
    return "\n".join(lines) + "\n" + _columns(rows)


def _finish_wait(paths: StatePaths, names: list[str], as_json: bool, as_list: bool = False) -> int:
    """Wait for ``names`` to end, print them, return 0 if all completed else 1.

    JSON: one whole record object, or with ``as_list`` (launch_parallel) a
    list of :func:`_brief` objects.
    """
    from .control import wait_for
    from .record import RecordStore

    recs = wait_for(RecordStore(paths), names)
    assert recs is not None  # no timeout given
    if as_json:
        print(_json_list([_brief(r) for r in recs]) if as_list else json.dumps(recs[0].to_dict(), indent=2))
    else:
        for r in recs:
            tail = f": {_preview(r.result, 70)}" if r.result else (f": {r.error}" if r.error else "")
            print(f"{r.agent}: {r.status} in {_fmt_duration(r.duration_s)}, {_turns(r.num_turns)}, {_fmt_cost(r.cost_usd)}{tail}")
    return int(ExitCode.AGENT_FAILED if any(r.state in UNSUCCESSFUL for r in recs) else ExitCode.OK)


# -- launch_agent ------------------------------------------------------------

LAUNCH_EPILOG = """\
examples:
  python3 agents/launch_agent.py agent1 "Summarise README.md in 5 bullets"
  python3 agents/launch_agent.py reviewer --cwd ../api --allowed-tools "Read,Grep" "Review src/ for bugs"
  python3 agents/launch_agent.py agent2 --task-file task.md --model sonnet
  python3 agents/launch_agent.py agent3 --wait "Run the tests and report failures"
  python3 agents/launch_agent.py agent4 -- "-a task that starts with a dash"
  python3 agents/launch_agent.py impl --with-context-from analyst "Implement the plan you made"
  python3 agents/launch_agent.py deploy --after build,test "Deploy what build made"

It returns at once; a detached supervisor owns the run. Read back:
  status/NAME.json   outputs/NAME_latest.txt   sessions/NAME_session.txt
exit status: 0 launched (with --wait: completed), 1 failed (--wait), 2 bad input,
3 NAME is already running, 74 the state root cannot be written, 127 the Claude
CLI was not found, 70 an internal error (the traceback's file is named).
"""


def launch_agent_main(argv: Sequence[str] | None = None) -> int:
    """``launch_agent.py NAME TASK``: start one background agent."""
    p = _parser("launch_agent.py", "Launch one Claude Code agent (`claude -p`) in the background.", LAUNCH_EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent's name, e.g. agent1 ([A-Za-z0-9][A-Za-z0-9_.-]{0,63})")
    p.add_argument("task", metavar="TASK", nargs="*", help="the task (prompt); words are joined by spaces")
    p.add_argument("--task-file", metavar="FILE", help="read the task from FILE ('-' = stdin)")
    _add_claude_options(p)
    args = _parse(p, argv, "task")

    def body() -> int:
        from .launcher import launch

        paths = StatePaths()
        profile_name, profile = _profile(args)
        rec = launch(
            paths, args.name, _read_task(args.task, args.task_file), cwd=args.cwd,
            options=_claude_options(args, profile), limits=_limits(args, profile),
            on_complete=_on_complete(args), profile=profile_name, isolation=_isolation(args, profile),
            **_after(args),
        )
        if args.wait:
            return _finish_wait(paths, [rec.agent], args.json)
        if args.json:
            print(json.dumps(_launch_summary(paths, rec), indent=2))
        else:
            _print_launched(paths, rec)
        return ExitCode.OK

    return guarded(p.prog, body)


# -- launch_parallel ---------------------------------------------------------

PARALLEL_EPILOG = """\
examples:
  python3 agents/launch_parallel.py "Check x.py for bugs" "Review x.py style" "Profile x.py"
  python3 agents/launch_parallel.py --names bugs,style "Find bugs in api/" "Check style in api/"
  python3 agents/launch_parallel.py --wait --allowed-tools Bash "Run unit tests" "Run lint"
  python3 agents/launch_parallel.py --from-delegations pm_reply.md --dry-run
  python3 agents/launch_parallel.py --total-budget-usd 3 "T1" "T2" "T3"      $1 each (--max-budget-usd)
  pbpaste | python3 agents/launch_parallel.py --from-delegations - --cwd ~/src/app

--from-delegations reads a PM-style text and launches one agent per delegation:
  **Engineer Agent**: task    **QA**: task    Task(Engineer: task)
  Task Tool → Documentation Agent: task    Delegate to X: task    → X: task    [X] task
A task may run over several lines and ends at a blank line or the next
delegation. A role that matches a profile (case-insensitive, "Agent" dropped,
or an alias) gets that profile; others get --profile if given. Agents are named
after their roles: engineer, engineer-2, qa, ...

Agents are named agent1..agentN unless --names is given. It returns at once.
exit status: 0 all launched (with --wait: all completed), 1 one failed (--wait),
2 bad input, 3 a named agent is already running (nothing is launched), 74 the
state root cannot be written, 127 no CLI, 70 an internal error.
"""


def launch_parallel_main(argv: Sequence[str] | None = None) -> int:
    """``launch_parallel.py T1 T2 ...``: one background agent per task."""
    p = _parser("launch_parallel.py", "Launch one background Claude Code agent per task, all at once.", PARALLEL_EPILOG)
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
    _add_claude_options(p)
    args = _parse(p, argv, "tasks")
    if args.split_tasks:
        import shlex

        try:
            args.tasks += shlex.split(args.split_tasks)
        except ValueError as exc:
            p.error(f"--split-tasks: {exc} (check the quotes)")
    if args.from_delegations and args.tasks:
        p.error("give TASKs or --from-delegations, not both")
    if not args.tasks and not args.from_delegations:
        p.error("give at least one TASK, or --from-delegations FILE")

    def body() -> int:
        from .launcher import launch_many

        paths = StatePaths()
        roles: list[str | None] = [None] * len(args.tasks)
        tasks = [_task_text(t.encode("utf-8", "surrogateescape"), f"task {i}") for i, t in enumerate(args.tasks, 1)]
        if args.from_delegations:
            roles, tasks = _delegations(args.from_delegations)
        if args.names:
            names = [n.strip() for n in args.names.split(",")]
            if len(names) != len(tasks):
                raise BadInput(f"--names gives {len(names)} names for {len(tasks)} tasks; give one name per task")
        elif args.from_delegations:
            from .delegation import agent_names

            names = agent_names([r or "agent" for r in roles])
        else:
            names = [f"agent{i}" for i in range(1, len(tasks) + 1)]
        if args.total_budget_usd is not None:
            if args.max_budget_usd is not None:
                raise BadInput("give --total-budget-usd (split across the agents) or --max-budget-usd (each), not both")
            if args.total_budget_usd <= 0:
                raise BadInput("--total-budget-usd must be more than 0")
        per_job, isolations = [], []
        for role in roles:
            profile_name, profile = _profile(args, role)
            options = _claude_options(args, profile)
            if args.total_budget_usd is not None:
                options.max_budget_usd = round(args.total_budget_usd / len(tasks), 6)
            per_job.append((options, _limits(args, profile), profile_name))
            isolations.append(_isolation(args, profile))
        if args.dry_run:
            return _print_plan(names, roles, tasks, per_job, args.json)
        recs = launch_many(
            paths, list(zip(names, tasks, strict=True)), cwd=args.cwd, on_complete=_on_complete(args), per_job=per_job,
            per_job_isolation=isolations, **_after(args),
        )
        if args.wait:
            return _finish_wait(paths, names, args.json, as_list=True)
        if args.json:
            brief = [{"agent": r.agent, "status": str(r.status), "run_id": r.run_id, "session_id": r.session_id,
                      "output_file": r.output_file} for r in recs]
            print(_json_list(brief))
        else:
            for r in recs:
                print(_launched_line(r))
            print(_layout_line(paths))
        return ExitCode.OK

    return guarded(p.prog, body)


def _delegations(source: str) -> tuple[list[str | None], list[str]]:
    """Roles and tasks of the delegations in a file ('-' = stdin)."""
    from .delegation import parse_delegations
    from .profiles import load_profiles, role_key

    if source == "-":
        text = _task_text(sys.stdin.buffer.read(), "the delegations on stdin")
    else:
        text = _task_text(_read_bytes(source, "--from-delegations"), f"--from-delegations {source}")
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


def _print_plan(names, roles, tasks, per_job, as_json: bool) -> int:
    """``--dry-run``: what would be launched."""
    plan = []
    for name, role, task, (opts, lim, prof) in zip(names, roles, tasks, per_job, strict=True):
        plan.append({"agent": name, "role": role, "profile": prof, "task": task, "options": opts.to_dict(), "limits": lim.to_dict()})
    if as_json:
        print(json.dumps(plan, indent=2))
    else:
        rows = [("AGENT", "ROLE", "PROFILE", "TASK")]
        rows += [(p["agent"], p["role"] or "-", p["profile"] or "-", _preview(p["task"], 60)) for p in plan]
        print(_columns(rows))
        print(f"\n{len(plan)} agent(s) would be launched; nothing was (--dry-run)")
    return ExitCode.OK


# -- check_status ------------------------------------------------------------

STATUS_EPILOG = """\
examples:
  python3 agents/check_status.py               every agent, as a table
  python3 agents/check_status.py agent1 agent2
  python3 agents/check_status.py --json        per agent: status, error, result preview, turns, cost, output file
  python3 agents/check_status.py --full NAME   the whole record (JSON)
  python3 agents/check_status.py --summary     totals, parallel speed-up, per-agent cost and memory
  python3 agents/check_status.py --watch       a live table, redrawn on every change

A record left queued/starting/running whose supervisor is gone is stored as `lost`.
A queued agent shows its place in the queue: "queued #2".
An agent whose status file cannot be read is shown as `unreadable` (stderr says why).
exit status: 0 ok, 4 a named agent has no record, 70 an internal error.
"""


def check_status_main(argv: Sequence[str] | None = None) -> int:
    """``check_status.py [NAME...]``: the agents' records as a table or JSON."""
    p = _parser("check_status.py", "Show the status of background Claude Code agents.", STATUS_EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to show (default: all)")
    p.add_argument("--json", action="store_true", help="a JSON list: per agent the fields to act on (status, error, result preview, ...)")
    p.add_argument("--full", action="store_true", help="with --json (implied): the whole records")
    p.add_argument("--summary", action="store_true", help="an execution summary: totals, parallel speed-up, per-agent figures")
    p.add_argument("--watch", action="store_true", help="redraw whenever a record changes (Ctrl-C to stop)")
    args = _parse(p, argv, "names")
    args.json = args.json or args.full
    if args.watch and args.json:
        p.error("--watch draws for people; use wait_agents.py --follow --json for a stream of changes")

    def body() -> int:
        from .control import read_records
        from .record import RecordStore

        paths = StatePaths()
        store = RecordStore(paths)
        if args.watch:
            return _watch(store, args.names or None, args.summary)
        newly_lost: list[StatusRecord] = []
        bad: list[BadRecord] = []
        recs = read_records(store, args.names or None, newly_lost, unreadable=bad)
        order = {n: i for i, n in enumerate(args.names or sorted([r.agent for r in recs] + [b.name for b in bad]))}
        positions = {}
        if any(str(r.status) == "queued" for r in recs):
            from .locks import queue_positions

            positions = queue_positions(paths)
        if args.json:
            items = [(r.agent, _full(r, positions) if args.full else _brief(r, positions)) for r in recs]
            items += [(b.name, _unreadable_item(b)) for b in bad]
            items.sort(key=lambda item: order.get(item[0], 0))
            objs = [obj for _, obj in items]
            print(json.dumps(objs, indent=2) if args.full else _json_list(objs))
            return ExitCode.OK
        if not recs and not bad:
            print("no agents yet; start one with: python3 agents/launch_agent.py agent1 \"TASK\"")
            return ExitCode.OK
        if recs:
            print(_summary(recs) if args.summary else _table(recs, positions, bad, order))
        elif not args.summary:
            print(_table([], positions, bad, order))
        for r in newly_lost:
            print(f"{r.agent}: marked lost: {r.error}", file=sys.stderr)
        for b in bad:
            print(f"{b.name}: {b}", file=sys.stderr)
        return ExitCode.OK

    return guarded(p.prog, body)


def _full(r: StatusRecord, positions: dict[str, int]) -> dict[str, Any]:
    d = r.to_dict()
    if r.agent in positions:
        d["queue_position"] = positions[r.agent]
    return d


def _unreadable_item(bad: BadRecord) -> dict[str, Any]:
    """What ``--json`` shows for a record that cannot be read (:class:`BadRecord`)."""
    return {"agent": bad.name, "status": UNREADABLE, "error": f"{bad.reason}; {bad_record_advice(bad.name)}", "status_file": bad.path}


#: Seconds between check_status --watch's quiet re-checks for lost agents.
WATCH_RECHECK_S = 5.0


def _watch(store, names: list[str] | None, summary: bool) -> int:
    """Redraw the table (or summary) each time a record changes, until Ctrl-C."""
    import time as _time

    from .control import read_records
    from .locks import queue_positions
    from .watch import DirWatcher

    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    with DirWatcher(store.paths.status_dir) as watcher:
        try:
            while True:
                bad: list[BadRecord] = []
                recs = read_records(store, names, unreadable=bad)
                positions = queue_positions(store.paths)
                body = (_summary(recs) if summary and recs else _table(recs, positions, bad)) if recs or bad else "no agents yet"
                sys.stdout.write(f"{clear}{body}\n\nupdated {_time.strftime('%H:%M:%S')}; Ctrl-C to stop\n")
                sys.stdout.flush()
                shown = [(r.agent, str(r.status)) for r in recs]
                # Redraw on a change; every few seconds re-check (without redrawing)
                # for a supervisor that died without touching its record.
                while not watcher.wait(WATCH_RECHECK_S):
                    if [(r.agent, str(r.status)) for r in read_records(store, names, unreadable=[])] != shown:
                        break
                watcher.wait(0.05)  # let a burst of writes settle into one redraw
        except KeyboardInterrupt:
            return ExitCode.OK


# -- resume_agent ------------------------------------------------------------

RESUME_EPILOG = """\
examples:
  python3 agents/resume_agent.py agent1 "Now write tests for what you found"
  python3 agents/resume_agent.py impl --session-from analyst "Implement the plan you made"

Without --session-from, NAME continues its own session (claude -r). With it, NAME
starts from a fork of OTHER's session (--fork-session); OTHER is left untouched.
exit status: 0 launched (--wait: completed), 1 failed (--wait), 2 bad input,
3 NAME is running, 4 no session to resume, 74 the state root cannot be written,
127 no CLI, 70 an internal error.
"""


def resume_agent_main(argv: Sequence[str] | None = None) -> int:
    """``resume_agent.py NAME TASK``: continue an agent's session in the background."""
    p = _parser("resume_agent.py", "Continue a Claude Code agent's session with a new task, in the background.", RESUME_EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent to run")
    p.add_argument("task", metavar="TASK", nargs="*", help="the follow-up task")
    p.add_argument("--task-file", metavar="FILE", help="read the task from FILE ('-' = stdin)")
    p.add_argument("--session-from", metavar="OTHER", help="start NAME from a fork of OTHER's session")
    _add_claude_options(p)
    args = _parse(p, argv, "task")

    def body() -> int:
        from .launcher import resume

        paths = StatePaths()
        profile_name, profile = _profile(args)
        if args.with_context_from:
            raise BadInput("resume_agent.py continues a session; to fork another's use --session-from OTHER")
        if args.after or args.after_any:
            raise BadInput("--after is for launches; to continue NAME after OTHER ends, run wait_agents.py OTHER first")
        if args.isolation not in (None, "none"):
            raise BadInput(
                "a resumed run works where its session was made (the CLI keeps sessions per directory); "
                "drop --isolation, or launch a new agent with it"
            )
        rec = resume(
            paths,
            args.name,
            _read_task(args.task, args.task_file),
            session_from=args.session_from,
            cwd=args.cwd,
            options=_claude_options(args, profile),
            limits=_limits(args, profile),
            on_complete=_on_complete(args),
            profile=profile_name,
        )
        if args.wait:
            return _finish_wait(paths, [rec.agent], args.json)
        if args.json:
            print(json.dumps(_launch_summary(paths, rec), indent=2))
        else:
            _print_launched(paths, rec)
        return ExitCode.OK

    return guarded(p.prog, body)


# -- clear_outputs -----------------------------------------------------------

CLEAR_EPILOG = """\
examples:
  python3 agents/clear_outputs.py agent1 agent2     archive two agents' files
  python3 agents/clear_outputs.py --all             archive every agent's files
  python3 agents/clear_outputs.py --all --purge     delete instead of archiving
  python3 agents/clear_outputs.py agent1 --force    stop agent1 first if it runs

Files move to outputs/archive/<timestamp>/, keeping their layout.
A symlink is moved or removed as a link; what it points to is never touched.
exit status: 0 cleared, 2 bad input, 3 an agent is running (no --force), 4 no such
agent, 74 the state root cannot be written, 70 an internal error.
"""


def clear_outputs_main(argv: Sequence[str] | None = None) -> int:
    """``clear_outputs.py NAME... | --all``: archive or delete agents' files."""
    p = _parser("clear_outputs.py", "Archive (or delete) agents' status, session and output files.", CLEAR_EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to clear")
    p.add_argument("--all", action="store_true", help="clear every agent")
    p.add_argument("--purge", action="store_true", help="delete the files instead of archiving them")
    p.add_argument("--force", action="store_true", help="stop active agents first (SIGTERM, grace, SIGKILL), and remove their git worktrees even with changes")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = _parse(p, argv, "names")
    if bool(args.names) == bool(args.all):
        p.error("name the agents to clear, or give --all")

    def body() -> int:
        from .cleanup import clear

        outcome = clear(StatePaths(), None if args.all else args.names, purge=args.purge, force=args.force)
        if args.json:
            print(json.dumps(outcome, indent=2))
            return ExitCode.OK
        if not outcome["cleared"]:
            print("nothing to clear")
        for name in outcome["stopped"]:
            print(f"{name}: stopped")
        verb = "deleted" if args.purge else "archived"
        for name, files in outcome["cleared"].items():
            print(f"{name}: {verb} {len(files)} file(s)" + (f": {', '.join(files)}" if files else ""))
        if outcome["archive"]:
            print(f"archive: {outcome['archive']}")

        return ExitCode.OK

    return guarded(p.prog, body)


# -- wait_agents -------------------------------------------------------------

WAIT_EPILOG = """\
examples:
  python3 agents/wait_agents.py                    every agent active now
  python3 agents/wait_agents.py rv-bugs rv-style   these two
  python3 agents/wait_agents.py --any a b c        the first of them to end
  python3 agents/wait_agents.py --timeout 300 --json
  python3 agents/wait_agents.py --follow           every change of any agent, until stopped

It sleeps until a status record changes (inotify via watchdog; polling where
inotify is unavailable), prints one line per state change as it happens and a
summary at the end. An agent that has already ended counts at once.
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


class _Clock:
    """Times for change lines that never go backwards.

    A change's time is when its record says the state changed; two changes
    written in one instant may be read in the other order, so a time earlier
    than one already printed is shown as that one.
    """

    def __init__(self) -> None:
        self.last: tuple[float, str] | None = None

    def at(self, r: StatusRecord) -> str | None:
        from .record import parse_time

        stamp = r.changed_at()
        t = parse_time(stamp)
        if t is None:
            return self.last[1] if self.last else stamp
        if self.last is not None and t < self.last[0]:
            return self.last[1]
        self.last = (t, stamp)
        return stamp


def _change_line(r: StatusRecord, previous: str | None, at: str | None) -> str:
    stamp = (at or "")[11:19] or "--:--:--"
    arrow = f"{previous} -> {r.status}" if previous else str(r.status)
    detail = ""
    if r.state.is_terminal:
        detail = f" in {_fmt_duration(r.duration_s)}, {_turns(r.num_turns)}, {_fmt_cost(r.cost_usd)}"
        if r.error:
            detail += f": {_preview(r.error, BRIEF_ERROR_CHARS)}"
    return f"{stamp} {r.agent}: {arrow}{detail}"


def _change_event(r: StatusRecord, previous: str | None, at: str | None) -> dict[str, Any]:
    """One ``--json`` change line: an ended run's adds its error, a result preview, turns, cost, duration."""
    event: dict[str, Any] = {"event": "change", "agent": r.agent, "run_id": r.run_id, "status": str(r.status),
                             "previous": previous, "at": at}
    if r.state.is_terminal:
        if r.error:
            event["error"] = _preview(r.error, BRIEF_ERROR_CHARS)
        if r.result:
            event["result"] = _preview(r.result, BRIEF_RESULT_CHARS)
        event.update(num_turns=r.num_turns, cost_usd=r.cost_usd, duration_s=r.duration_s)
    return event


def _turns(n: int) -> str:
    return f"{n} turn" + ("" if n == 1 else "s")


class _Terminated(BaseException):
    """SIGTERM arrived: the follow ends normally.  A BaseException, as KeyboardInterrupt, so no handler swallows it."""


def _terminate(_signum, _frame) -> None:
    raise _Terminated


def _follow(store, as_json: bool) -> int:
    """``--follow``: one line per state change of any agent until SIGTERM (exit 0) or SIGINT (130)."""
    from .control import follow

    clock = _Clock()

    def on_change(r: StatusRecord, previous: str | None) -> None:
        at = clock.at(r)
        line = _compact(_change_event(r, previous, at)) if as_json else _change_line(r, previous, at)
        print(line, flush=True)

    def ready() -> None:
        print(f"wait_agents.py: following every agent under {store.paths.root}; stop with SIGTERM or Ctrl-C", file=sys.stderr, flush=True)

    follow(store, on_change, on_ready=ready)
    return ExitCode.OK


def wait_agents_main(argv: Sequence[str] | None = None) -> int:
    """``wait_agents.py [NAME...] [--any] [--timeout S] | --follow``: sleep until agents end, or follow every change."""
    if "--follow" not in (sys.argv[1:] if argv is None else argv):
        return _wait_agents(argv)
    import signal

    previous = signal.signal(signal.SIGTERM, _terminate)  # first thing: a monitor may stop it at once
    try:
        return _wait_agents(argv)
    except _Terminated:
        return ExitCode.OK
    finally:
        signal.signal(signal.SIGTERM, previous)


def _wait_agents(argv: Sequence[str] | None) -> int:
    p = _parser("wait_agents.py", "Wait for background Claude Code agents to end, printing each state change.", WAIT_EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to wait for (default: every active one)")
    p.add_argument("--any", action="store_true", help="return when the first of them ends")
    p.add_argument("--timeout", metavar="S", type=float, help="give up after S seconds (exit 124)")
    p.add_argument("--follow", action="store_true", help="print every state change of any agent, agents launched later included, until stopped")
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON lines: one per end, queue or wait (with --follow: per change), then (without --follow) a summary",
    )
    args = _parse(p, argv, "names")
    if args.follow and (args.names or args.any or args.timeout is not None):
        p.error("--follow reports every agent until it is stopped; it takes no NAME, --any or --timeout")

    def body() -> int:
        from .control import read_records, wait_for
        from .record import RecordStore

        store = RecordStore(StatePaths())
        if args.follow:
            return _follow(store, args.json)
        if args.names:
            names = list(dict.fromkeys(args.names))
        else:
            skipped: list[BadRecord] = []
            names = [r.agent for r in read_records(store, unreadable=skipped) if r.state.is_active]
            for b in skipped:
                print(f"wait_agents.py: not waiting for {b.name}: {b}", file=sys.stderr)
        if not names:
            if args.json:
                print(json.dumps({"event": "summary", "exit_code": 0, "counts": {}, "agents": {}}))
            else:
                print("no active agents to wait for")
            return ExitCode.OK
        clock = _Clock()

        def on_change(r: StatusRecord, previous: str | None) -> None:
            at = clock.at(r)
            if not args.json:
                print(_change_line(r, previous, at), flush=True)
            elif r.state not in ROUTINE_STATES:  # a waiting master acts on ends and on hold-ups, not on the routine
                print(_compact(_change_event(r, previous, at)), flush=True)

        def on_unreadable(b: BadRecord) -> None:
            from .record import utc_now

            at = clock.last[1] if clock.last else utc_now()
            if args.json:
                event = {"event": "change", "agent": b.name, "run_id": None, "status": UNREADABLE, "previous": None, "at": at}
                event |= _unreadable_item(b)  # adds error and status_file
                print(_compact(event), flush=True)
            else:
                print(f"{at[11:19]} {b.name}: {UNREADABLE}: {b}", flush=True)

        bad: dict[str, BadRecord] = {}
        recs = wait_for(store, names, args.timeout, any_=args.any, on_change=on_change, unreadable=bad, on_unreadable=on_unreadable)
        timed_out = recs is None
        if timed_out:
            recs = read_records(store, names, unreadable=[])
        ended = [r for r in recs if r.state.is_terminal]
        if timed_out:
            code = ExitCode.WAIT_TIMEOUT
        elif bad or any(r.state in UNSUCCESSFUL for r in ended):
            code = ExitCode.AGENT_FAILED
        else:
            code = ExitCode.OK
        counts: dict[str, int] = {}
        for status in [str(r.status) for r in recs] + [UNREADABLE] * len(bad):
            counts[status] = counts.get(status, 0) + 1
        if args.json:
            agents = {r.agent: str(r.status) for r in recs} | {n: UNREADABLE for n in bad}
            summary = {"event": "summary", "exit_code": int(code), "counts": counts, "agents": agents}
            print(_compact(summary))
        else:
            totals = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            verdict = "timed out waiting" if timed_out else ("first ended" if args.any else "all ended")
            print(f"{verdict}: {totals}")
        return code

    return guarded(p.prog, body)


# -- tail_agent --------------------------------------------------------------

TAIL_EPILOG = """\
examples:
  python3 agents/tail_agent.py agent1              the latest run's transcript, readable
  python3 agents/tail_agent.py agent1 -f           follow it live until the run ends
  python3 agents/tail_agent.py agent1 --run 20261120T230301Z-3fa9c1

Shows assistant text, tool calls with their inputs, tool results (shortened),
API retries and the final result with turns, time and cost.
exit status: 0 ok, 2 bad input, 4 no such agent or run.
"""


def tail_agent_main(argv: Sequence[str] | None = None) -> int:
    """``tail_agent.py NAME [-f] [--run RUN_ID]``: render an agent's transcript."""
    p = _parser("tail_agent.py", "Show an agent's stream-json transcript readably, and follow it live.", TAIL_EPILOG)
    p.add_argument("name", metavar="NAME", nargs="?", help="the agent")
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("-f", "--follow", action="store_true", help="keep showing new events until the run ends")
    p.add_argument("--run", metavar="RUN_ID", help="a run other than the latest (see outputs/NAME/)")
    p.add_argument("--raw", action="store_true", help="print the stream-json lines as they are")
    args = _parse(p, argv, "extra")
    if args.extra:
        p.error(f"unexpected arguments: {' '.join(args.extra)}")

    def body() -> int:
        import time as _time

        from .errors import NotFound
        from .paths import validate_name
        from .record import RecordStore
        from .transcript import iter_lines, render

        paths = StatePaths()
        store = RecordStore(paths)
        name = validate_name(args.name)
        rec = store.read(name)
        if args.run:
            if "/" in args.run or args.run.startswith("."):
                raise BadInput(f"invalid run id {args.run!r}")
            path = paths.transcript(name, args.run)
            if not path.exists():
                runs = sorted(q.stem for q in paths.run_dir(name).glob("*.jsonl")) if paths.run_dir(name).is_dir() else []
                raise NotFound(f"no run {args.run} of {name}; runs: {', '.join(runs) or 'none'}")
            run_id = args.run
        elif rec is not None and rec.transcript_file:
            path, run_id = Path(rec.transcript_file), rec.run_id
        else:
            runs = sorted(paths.run_dir(name).glob("*.jsonl")) if paths.run_dir(name).is_dir() else []
            if not runs:
                raise NotFound(f"agent {name!r} has no transcript; see python3 agents/check_status.py")
            path, run_id = runs[-1], runs[-1].stem

        def still_running() -> bool:
            cur = store.read(name)
            if cur is None or cur.run_id != run_id or not cur.state.is_active:
                return False
            from .control import reconcile

            return reconcile(store, cur).state.is_active

        follow = still_running if args.follow else None
        while args.follow and not path.exists() and still_running():
            _time.sleep(0.1)  # queued: the transcript appears when the CLI starts
        if not path.exists():
            raise NotFound(f"run {run_id} of {name} has no transcript yet")
        try:
            if args.raw:
                for line in iter_lines(path, follow):
                    print(line, flush=True)
            else:
                render(path, sys.stdout, follow)
        except KeyboardInterrupt:
            return ExitCode.OK
        return ExitCode.OK

    return guarded(p.prog, body)


# -- kill_agent --------------------------------------------------------------

KILL_EPILOG = """\
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
file is unreadable and nothing of it runs), 4 no such agent, 74 the state root
cannot be written, 70 an internal error.
"""


def kill_agent_main(argv: Sequence[str] | None = None) -> int:
    """``kill_agent.py NAME... | --all``: stop agents' runs."""
    p = _parser("kill_agent.py", "Stop background Claude Code agents and their whole process trees.", KILL_EPILOG)
    p.add_argument("names", metavar="NAME", nargs="*", help="agents to stop")
    p.add_argument("--all", action="store_true", help="stop every active agent (and lost agents' orphaned processes)")
    p.add_argument("--grace", metavar="S", type=float, help="seconds between SIGTERM and SIGKILL (default: the run's --kill-grace)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    args = _parse(p, argv, "names")
    if bool(args.names) == bool(args.all):
        p.error("name the agents to stop, or give --all")
    if args.grace is not None and args.grace < 0:
        p.error("--grace must be 0 or more")

    def body() -> int:
        from concurrent.futures import ThreadPoolExecutor

        from .control import leftover_tree, read_records, stop, stop_unreadable
        from .record import RecordStore

        store = RecordStore(StatePaths())
        bad: list[BadRecord] = []
        if args.all:  # active runs, and lost runs whose orphaned processes still live
            recs = read_records(store, unreadable=bad)
            names = [r.agent for r in recs if r.state.is_active or (str(r.status) == "lost" and leftover_tree(r))]
        else:
            wanted = list(dict.fromkeys(args.names))
            recs = read_records(store, wanted, unreadable=bad)  # NotFound (exit 4) before stopping anything
            names = [r.agent for r in recs]
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(names) + len(bad)))) as pool:  # stop them together
            stopping = pool.map(lambda n: stop(store, n, grace_s=args.grace), names)  # both groups at once
            stopping_bad = pool.map(lambda b: stop_unreadable(store, b, grace_s=args.grace), bad)
            results, bad_results = list(stopping), list(stopping_bad)
        out = []
        for name, (what, rec) in zip(names, results, strict=True):
            status = str(rec.status) if rec else "cleared"
            out.append({"agent": name, "action": what, "status": status})
            if not args.json:
                message = {
                    "stopped": f"stopped; status {status}" if rec is None or not rec.state.is_active
                    else f"stopped its process tree; its supervisor records it when it can write (status {status} until then)",
                    "orphans-stopped": "its supervisor was gone (lost); stopped its orphaned processes",
                    "not-running": f"not running (status {status}); nothing to stop",
                }[what]
                print(f"{name}: {message}")
        for b, what in zip(bad, bad_results, strict=True):
            out.append({"agent": b.name, "action": what, "status": UNREADABLE, "status_file": b.path})
            said = "stopped its supervisor; " if what == "stopped" else ""
            print(f"{b.name}: {said}{b}", file=sys.stderr)
        if args.json:
            print(json.dumps(out, indent=2))
        elif not names and not bad:
            print("no active agents")
        # A named agent whose record is unreadable and that runs nothing is bad input; --all acts on the rest.
        return ExitCode.USAGE if not args.all and any(w == "not-running" for w in bad_results) else ExitCode.OK

    return guarded(p.prog, body)


def entry(main: Callable[[Sequence[str] | None], int]) -> None:
    """``sys.exit(main())`` for the scripts and console entry points.

    The outermost guard (:func:`.errors.guarded`): even a failure while the
    arguments are parsed ends as one line and exit 70, never a traceback.
    """
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "orchestrator"
    sys.exit(guarded(prog, lambda: main(None)))


__all__ = [
    "check_status_main",
    "clear_outputs_main",
    "entry",
    "kill_agent_main",
    "tail_agent_main",
    "wait_agents_main",
    "launch_agent_main",
    "launch_parallel_main",
    "resume_agent_main",
]

