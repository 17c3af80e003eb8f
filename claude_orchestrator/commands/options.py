"""The option groups the launching scripts share, and what they turn into.

The groups (Claude CLI options, limits, run control) are added to a parser
by :func:`add_run_options`; :func:`run_spec` turns the parsed options
and a profile into a :class:`..records.spec.RunSpec`: the one place a run's
request is built from the command line.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..claude.invocation import KNOWN_PERMISSION_MODES, ClaudeOptions
from ..core.errors import BadInput, OrchestratorError
from ..core.limits import RunLimits
from ..core.shell_words import VerbatimArg, split_words
from ..executors import registry
from ..records.spec import RunSpec
from ..records.status_record import RecordStore
from ..usecases.isolation import ISOLATIONS

# -- parsers -------------------------------------------------------------------


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Add the groups every launching script takes: Claude CLI options, limits, run control."""
    _add_claude_options(p)
    _add_limits(p)
    _add_run_control(p)
    _add_talk(p)
    _add_where(p)


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
    g.add_argument(
        "--claude-arg",
        metavar="ARG",
        action=VerbatimArg,
        help="an extra CLI argument, as is, even one that begins with '-' (repeatable), e.g. --claude-arg --effort --claude-arg high",
    )


def _add_limits(p: argparse.ArgumentParser) -> None:
    lim = p.add_argument_group("limits (enforced by the supervisor)")
    lim.add_argument("--timeout", metavar="S", type=float, help="stop the run after S seconds of work (default 600 or $ORCHESTRATOR_TIMEOUT; 0 = none); "
                     "time idle after a turn (--keep-open) or waiting for an answer (--ask-permission) is not counted")
    lim.add_argument("--kill-grace", metavar="S", type=float, help="seconds between SIGTERM and SIGKILL when stopping (default 10)")
    lim.add_argument("--memory-limit", metavar="MB", type=float, help="stop the run when its process tree's RSS reaches MB MiB (default 2048; 0 = none)")
    lim.add_argument("--max-parallel", metavar="N", type=int, help="run at most N agents at once, queue the rest (default 4 or $ORCHESTRATOR_MAX_PARALLEL; 0 = no limit)")
    lim.add_argument("--retries", metavar="N", type=int, help="retry a run that failed with a retryable API error (429, 5xx, overloaded) up to N times (default 0)")
    lim.add_argument("--retry-backoff", metavar="S", type=float, help="seconds before the first retry, doubling after (default 2)")


def _add_run_control(p: argparse.ArgumentParser) -> None:
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
    r.add_argument(
        "--json",
        action="store_true",
        help="print JSON only (with --wait: per agent the short form check_status.py --json gives; "
        "the whole record: check_status.py --full NAME)",
    )


def _add_talk(p: argparse.ArgumentParser) -> None:
    t = p.add_argument_group("talking to the run (message_agent.py, answer_agent.py)")
    t.add_argument("--keep-open", metavar="S", type=float,
                   help="after a turn ends, wait S seconds for another message before the run ends (default 0)")
    t.add_argument("--ask-permission", action="store_true", default=None,
                   help="a tool outside --allowed-tools is asked about (answer_agent.py NAME allow|deny) instead of denied")
    t.add_argument("--question-timeout", metavar="S", type=float,
                   help="with --ask-permission: deny a question nobody answered after S seconds (default 600)")
    t.add_argument("--on-question", metavar="CMD",
                   help="run CMD (split into words like a shell, never through one) each time the run asks a question, "
                   "not waited for; env: ORCHESTRATOR_AGENT, _RUN_ID, _RECORD, _QUESTION_ID, _TOOL")


def _add_where(p: argparse.ArgumentParser) -> None:
    w = p.add_argument_group("where it runs")
    w.add_argument(
        "--executor",
        choices=registry.NAMES,
        help="local: a supervisor on this machine (default, or $ORCHESTRATOR_EXECUTOR); "
        "slurm: a Slurm job runs the supervisor (see docs/slurm.md)",
    )
    for name in registry.NAMES:  # each executor adds its own options (as a pytest plugin does)
        registry.executor_class(name).add_arguments(_Recording(w, name))


# -- what the options mean -----------------------------------------------------


def choose_profile(args: argparse.Namespace, role: str | None = None) -> tuple[str | None, dict]:
    """The profile to apply, by precedence: the one matching ``role`` if any, else ``--profile``, else none.

    Args:
        args: the parsed options (``args.profile``).
        role: a delegation's role (launch_parallel.py ``--from-delegations``), matched
            case-insensitively, "Agent" dropped, or by an alias.

    Returns:
        ``(name, settings)``, or ``(None, {})`` for no profile.

    Raises:
        NotFound: ``--profile`` names no profile (exit 4; the message lists the known ones).
    """
    from ..usecases.profiles import find_profile, get_profile, load_profiles  # off --help and usage errors

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


def claude_options(args: argparse.Namespace, profile: dict | None = None) -> ClaudeOptions:
    """CLI options from the flags, falling back to ``profile`` for any flag not given.

    ``--max-budget-usd`` and ``--dangerously-skip-permissions`` come from flags
    only; the profile's ``claude_args`` go before ``--claude-arg``s (later ones win in the CLI).
    """
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
        claude_args=list(prof.get("claude_args", [])) + list(args.claude_arg),
    )


def run_limits(args: argparse.Namespace, profile: dict | None = None) -> RunLimits:
    """The limits from the flags, then the profile (timeout, memory limit), then the environment and defaults."""
    prof = profile or {}
    return RunLimits.from_env(
        timeout_s=args.timeout if args.timeout is not None else prof.get("timeout"),
        kill_grace_s=args.kill_grace,
        memory_limit_mb=args.memory_limit if args.memory_limit is not None else prof.get("memory_limit"),
        max_parallel=args.max_parallel,
        retries=args.retries,
        retry_backoff_s=args.retry_backoff,
    )


def isolation(args: argparse.Namespace, profile: dict | None = None) -> str:
    """``--isolation``, else the profile's, else ``none``."""
    return args.isolation or (profile or {}).get("isolation") or "none"


def dependencies(args: argparse.Namespace) -> dict[str, Any]:
    """``--after``, ``--after-any`` and ``--with-context-from`` as the launcher's ``after``, ``after_any``, ``context_from``.

    Raises:
        BadInput: ``--after-any`` without ``--after`` or ``--with-context-from`` (exit 2).
    """
    after = [n.strip() for n in (args.after or "").split(",") if n.strip()]
    if args.after_any and not (after or args.with_context_from):
        raise BadInput("--after-any needs --after or --with-context-from")
    return {"after": after, "after_any": bool(args.after_any), "context_from": args.with_context_from}


class _Recording:
    """An argument group that notes which executor added each option (:data:`_OWNERS`)."""

    def __init__(self, group: Any, executor: str) -> None:
        self.group, self.executor = group, executor

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        action = self.group.add_argument(*names, **kwargs)
        _OWNERS[action.dest] = (self.executor, action.option_strings[0] if action.option_strings else action.dest)
        return action


#: An executor's own option, by its ``dest``: ``(executor, option string)`` (e.g. ``slurm_arg``: ``slurm``, ``--slurm-arg``).
_OWNERS: dict[str, tuple[str, str]] = {}


def _asked_by_options(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``(executor, option)`` for each executor one of whose own options was given on the command line
    (those it added, :meth:`..executors.base.Executor.add_arguments`, noted as the parser was built)."""
    return [_OWNERS[dest] for dest, value in vars(args).items() if dest in _OWNERS and value not in (None, False, [], ())]


def executor_options(args: argparse.Namespace, profile: dict | None = None) -> dict[str, Any]:
    """Where the run goes: ``executor`` and ``executor_args`` for the spec.

    The executor is ``--executor``, else the one whose own option was given
    (``--slurm-arg`` means ``slurm``), else the profile's, else
    ``$ORCHESTRATOR_EXECUTOR``, else ``local``.  Its options are its own to
    read (:meth:`..executors.base.Executor.options_from`: for Slurm,
    ``$ORCHESTRATOR_SLURM_ARGS``, the profile's ``slurm_args``, ``--slurm-arg``).

    Raises:
        BadInput: an unknown ``$ORCHESTRATOR_EXECUTOR``, one executor's option with
            another executor, or what the executor refuses (exit 2).
    """
    prof = profile or {}
    asked = _asked_by_options(args)
    chosen = getattr(args, "executor", None) or (asked[0][0] if asked else None)
    name = chosen or prof.get("executor") or os.environ.get("ORCHESTRATOR_EXECUTOR") or registry.DEFAULT
    if name not in registry.NAMES:
        raise BadInput(f"ORCHESTRATOR_EXECUTOR={name!r}: no such executor; use one of {', '.join(registry.NAMES)}")
    for owner, option in asked:
        if owner != name:
            raise BadInput(f"{option} is for --executor {owner}, not --executor {name}")
    return {"executor": name, "executor_args": registry.executor_class(name).options_from(args, prof)}


def where_it_ran(spec: RunSpec, args: argparse.Namespace, profile: dict, paths: Any, name: str) -> RunSpec:
    """A resume's spec goes where agent ``name``'s last run went, unless told otherwise.

    When neither ``--executor``, an executor's own option, the profile nor
    ``$ORCHESTRATOR_EXECUTOR`` chose an executor, the previous run's ``executor`` is kept,
    with its options unless the profile or the environment give others (the executor's
    :meth:`..executors.base.Executor.options_from`).  An explicit ``--max-parallel`` asks
    for this machine's slots: a run of an executor whose scheduler keeps the queue
    then resumes here.  An unreadable or missing record changes nothing (the resume reports it).

    Raises:
        BadInput: the previous run's executor is not one this toolkit knows (exit 2).
    """
    if getattr(args, "executor", None) or _asked_by_options(args) or profile.get("executor") or os.environ.get("ORCHESTRATOR_EXECUTOR"):
        return spec
    try:
        previous = RecordStore(paths).read(name)
    except OrchestratorError:
        return spec
    if previous is None or previous.spec.executor == spec.executor:
        return spec
    if previous.spec.executor not in registry.NAMES:
        if previous.state.is_active:
            return spec  # never judged: the resume is refused as busy (exit 3)
        raise BadInput(
            f"{name} last ran with executor {previous.spec.executor[:40]!r}, which this toolkit does not know; "
            f"choose where to resume it with --executor ({', '.join(registry.NAMES)})"
        )
    cls = registry.executor_class(previous.spec.executor)
    if not cls.keeps_queue and getattr(args, "max_parallel", None) is not None:
        return spec  # an explicit --max-parallel asks for this machine's slots
    return spec.replace(executor=cls.name, executor_args=cls.options_from(args, profile, previous=previous.spec.executor_args))


def on_complete_argv(args: argparse.Namespace) -> list[str] | None:
    """``--on-complete CMD`` split into an argument vector as a shell splits words (it never runs a shell).

    Raises:
        BadInput: unbalanced quotes, or an empty command (exit 2).
    """
    if args.on_complete is None:
        return None
    argv = split_words(args.on_complete, "--on-complete")
    if not argv:
        raise BadInput("--on-complete is empty")
    return argv


def talk_options(args: argparse.Namespace, profile: dict | None = None) -> dict[str, Any]:
    """``--keep-open``, ``--ask-permission``, ``--question-timeout`` and ``--on-question`` (else the profile's
    ``keep_open``, ``ask_permission``, ``question_timeout``, ``on_question``) as the spec's fields.

    Raises:
        BadInput: a negative number, or an empty or unbalanced ``--on-question`` (exit 2).
    """
    prof = profile or {}

    def pick(flag: str, key: str):
        value = getattr(args, flag, None)
        return value if value is not None else prof.get(key)

    keep, timeout = pick("keep_open", "keep_open"), pick("question_timeout", "question_timeout")
    for option, value in (("--keep-open", keep), ("--question-timeout", timeout)):
        if value is not None and not 0 <= value < float("inf"):
            raise BadInput(f"{option} must be a number of seconds, 0 or more")
    ask = bool(pick("ask_permission", "ask_permission"))
    if timeout is not None and not ask:
        raise BadInput("--question-timeout is for --ask-permission runs; add --ask-permission")
    command = pick("on_question", "on_question")
    argv = split_words(command, "--on-question") if command is not None else None
    if command is not None and not argv:
        raise BadInput("--on-question is empty")
    fields: dict[str, Any] = {"keep_open_s": float(keep or 0), "ask_permission": ask,
                              "on_question": tuple(argv) if argv else None}
    if timeout is not None:
        fields["question_timeout_s"] = float(timeout)
    return fields


# -- the launcher's arguments --------------------------------------------------


def run_spec(
    args: argparse.Namespace, profile_name: str | None, profile: dict, budget_usd: float | None = None
) -> RunSpec:
    """One run's request (:class:`..records.spec.RunSpec`) from the options, a profile and the environment.

    The one place the command line becomes a run's request; the launcher
    completes it (:func:`..usecases.launch.resolve_spec`).

    Args:
        args: the parsed options (:func:`add_run_options`).
        profile_name, profile: from :func:`choose_profile`.
        budget_usd: this run's share of ``--total-budget-usd``, set as its ``--max-budget-usd``.

    Raises:
        BadInput: a bad ``--on-complete``, ``--after-any``, executor or executor option (exit 2).
    """
    claude = claude_options(args, profile)
    if budget_usd is not None:
        claude.max_budget_usd = budget_usd
    on_complete = on_complete_argv(args)
    deps = dependencies(args)
    where = executor_options(args, profile)
    return RunSpec(
        claude=claude, limits=run_limits(args, profile), cwd=getattr(args, "cwd", None),
        on_complete=tuple(on_complete) if on_complete else None, profile=profile_name,
        isolation=isolation(args, profile), after=tuple(deps["after"]), after_any=deps["after_any"],
        context_from=deps["context_from"], executor=where["executor"], executor_args=where["executor_args"],
        **talk_options(args, profile),
    )
