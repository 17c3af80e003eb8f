"""What a run was asked to do (:class:`RunSpec`) and how it ended (:class:`Outcome`).

Kept apart as pueue keeps a ``Task`` apart from its ``TaskResult``: the spec
is built once, by the launcher, from the script's arguments, the profile and
the environment, stored in the status record (under its ``options`` key, the
name schema 1 used) and read by the supervisor; it never changes after.  The
outcome is what one attempt of the CLI came to; the supervisor writes it into
the record when the run ends.

Standard library only (the launch path imports it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from ..claude.invocation import ClaudeOptions
from ..core.limits import RunLimits
from ..core.states import State, StopReason
from .shape import executor_args, executor_args_key

#: Seconds an unanswered permission question waits before it is denied (``--question-timeout``'s default).
DEFAULT_QUESTION_TIMEOUT_S = 600.0


def _seconds(value: Any, default: float) -> float:
    """A stored duration: ``value`` if it is a finite number >= 0 (not a boolean), else ``default``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < float("inf")):
        return default
    return float(value)


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run's request: everything the supervisor needs to start and watch the CLI.

    The task is not held here: it is data of any size, kept byte-exact in the
    run's task file (the record's ``task_file``), which the CLI reads on stdin.

    Attributes:
        claude: the CLI options (``--model``, ``--allowedTools``, ...).
        claude_bin: the CLI executable (:func:`..claude.invocation.find_claude`); None until the launcher resolves it.
        limits: timeout, memory limit, grace, slots, retries (default: from the
            environment, :meth:`..core.limits.RunLimits.from_env`, as a script's default is).
        cwd: the directory asked for (absolute once resolved); the record's
            ``cwd`` is where the CLI runs, which isolation may change.
        isolation: ``none``, ``dir`` or ``worktree`` (:mod:`..usecases.isolation`).
        after: agents whose runs must end first (``--after``, in order, no repeats).
        after_any: start once they have ended however they ended (``--after-any``).
        context_from: an agent whose session is forked once it has ended (``--with-context-from``).
        resume_id: a session ID to continue (``-r``), or None for a new conversation.
        session_cwd: with ``resume_id`` (not a fork), the agent's folder before this run: where its
            session is kept.  A resume that does not complete leaves the agent there, even if it
            ran elsewhere (``--cwd``): :func:`..usecases.launch.session_folder`.
        fork: with ``resume_id``, fork it into a new session (``--fork-session``).
        forked_from: the agent whose session is forked (``resume_agent.py --session-from``).
        on_complete: an argument vector run once the run has ended (``--on-complete``).
        profile: the name of the profile the options came from.
        executor: where the supervisor runs: a name of :data:`..executors.registry.EXECUTORS`
            (a record may name one this release does not know).
        executor_args: the executor's own options, opaque here (:meth:`..executors.base.Executor.options_from`);
            stored as ``options.<executor>_args`` (:func:`executor_args_key`).
        keep_open_s: seconds a finished turn waits for another message before the CLI's stdin is
            closed (``--keep-open``); 0: closed as soon as a turn ends with no message pending.
        ask_permission: a tool outside the allowed tools is asked about (``--ask-permission``: the
            CLI's ``--permission-prompt-tool``, answered with ``answer_agent.py``) instead of denied.
        question_timeout_s: seconds an unanswered permission question waits before it is denied (``--question-timeout``).
        on_question: an argument vector run (not waited for) each time the run asks a permission question (``--on-question``).
    """

    claude: ClaudeOptions = dataclasses.field(default_factory=ClaudeOptions)
    claude_bin: str | None = None
    limits: RunLimits = dataclasses.field(default_factory=RunLimits.from_env)
    cwd: str | None = None
    isolation: str = "none"
    after: tuple[str, ...] = ()
    after_any: bool = False
    context_from: str | None = None
    resume_id: str | None = None
    session_cwd: str | None = None
    fork: bool = False
    forked_from: str | None = None
    on_complete: tuple[str, ...] | None = None
    profile: str | None = None
    executor: str = "local"
    executor_args: tuple[str, ...] = ()
    keep_open_s: float = 0.0
    ask_permission: bool = False
    question_timeout_s: float = DEFAULT_QUESTION_TIMEOUT_S
    on_question: tuple[str, ...] | None = None

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` (the spec itself never changes)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, stored as the record's ``options`` (schema 1's keys plus
        ``cwd``, ``isolation``, ``resume_id``, ``forked_from``, ``executor`` and, when given,
        ``session_cwd`` and ``<executor>_args``)."""
        data = {
            "claude": self.claude.to_dict(),
            "claude_bin": self.claude_bin,
            "fork": self.fork,
            "limits": self.limits.to_dict(),
            "on_complete": list(self.on_complete) if self.on_complete else None,
            "profile": self.profile,
            "after": list(self.after),
            "after_any": self.after_any,
            "context_from": self.context_from,
            "cwd": self.cwd,
            "isolation": self.isolation,
            "resume_id": self.resume_id,
            "forked_from": self.forked_from,
            "executor": self.executor,
        }
        if self.session_cwd:
            data["session_cwd"] = self.session_cwd
        if self.keep_open_s:
            data["keep_open_s"] = self.keep_open_s
        if self.ask_permission:
            data["ask_permission"] = True
            data["question_timeout_s"] = self.question_timeout_s
        if self.on_question:
            data["on_question"] = list(self.on_question)
        key = executor_args_key(self.executor)
        if key and self.executor_args:
            data[key] = list(self.executor_args)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunSpec:
        """A spec from a record's ``options`` (schema 1 or 2; missing keys take their defaults).

        The data is assumed checked (:func:`.shape.check_shape`): types are not re-checked here.
        """
        data = data or {}
        on_complete, on_question = data.get("on_complete"), data.get("on_question")
        executor = data.get("executor") or "local"
        return cls(
            claude=ClaudeOptions.from_dict(data.get("claude") or {}),
            claude_bin=data.get("claude_bin"),
            limits=RunLimits.from_dict(data.get("limits")),
            cwd=data.get("cwd"),
            isolation=data.get("isolation") or "none",
            after=tuple(data.get("after") or ()),
            after_any=bool(data.get("after_any")),
            context_from=data.get("context_from"),
            resume_id=data.get("resume_id"),
            session_cwd=data.get("session_cwd"),
            fork=bool(data.get("fork")),
            forked_from=data.get("forked_from"),
            on_complete=tuple(on_complete) if on_complete else None,
            profile=data.get("profile"),
            executor=executor,
            executor_args=executor_args(data, executor) or (),
            keep_open_s=_seconds(data.get("keep_open_s"), 0.0),
            ask_permission=data.get("ask_permission") is True,
            question_timeout_s=_seconds(data.get("question_timeout_s"), DEFAULT_QUESTION_TIMEOUT_S),
            on_question=tuple(on_question) if isinstance(on_question, list) and on_question and all(isinstance(a, str) for a in on_question) else None,
        )

    @property
    def new_session(self) -> bool:
        """True if the run starts a new session (a new conversation, or a fork) rather than continuing ``resume_id``."""
        return not self.resume_id or self.fork


class Outcome(NamedTuple):
    """How a run ended: its terminal state and why (immutable, like the spec).

    A named tuple rather than a dataclass: it is defined on every reader's
    import path, where a dataclass costs a millisecond to create.

    Attributes:
        state: the terminal state.
        error: why it did not complete, in a sentence (None if it did).
        exit_code: the CLI's exit status; negative: killed by that signal (as
            :attr:`subprocess.Popen.returncode`); None if the CLI never ran.
        is_error: the CLI's own ``is_error`` from its result event, else whether ``state`` is not completed.
        stop_reason: why the supervisor stopped the tree, if it did.
    """

    state: State
    error: str | None = None
    exit_code: int | None = None
    is_error: bool = False
    stop_reason: StopReason | None = None

    @property
    def signal(self) -> int | None:
        """The signal that ended the CLI, if one did (from a negative :attr:`exit_code`)."""
        return -self.exit_code if self.exit_code is not None and self.exit_code < 0 else None
