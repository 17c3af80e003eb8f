"""The Claude Code CLI: where to find it, its argument vector, its environment.

Facts used here, from ``claude --help`` (versions 2.1.197, 2.1.330 and 2.1.332; docs/how-it-works.md):

- ``-p`` is print mode; ``--output-format stream-json`` needs ``--verbose``
  in print mode and emits one JSON event per line (``system``/``init``,
  ``assistant``, ``user``, ``result``).
- ``--session-id <uuid>`` fixes the new session's ID; ``-r <id>`` resumes a
  session and keeps its ID; ``-r <id> --fork-session --session-id <uuid>``
  continues it under a new ID, leaving the old one untouched.
- The task goes to the CLI's stdin, not into the argument vector (one
  argument is limited to 128 KiB on Linux); print mode reads the prompt from
  stdin when no prompt argument is given.
- What differs between versions (``--system-prompt-snapshot``, the
  permission modes) is detected from the CLI itself: :mod:`.features`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import TYPE_CHECKING, Any

from ..core.errors import BadInput, CliMissing
from ..core.paths import TOOLKIT_ROOT

if TYPE_CHECKING:
    from .features import CliFeatures

#: The CLI that ``make install`` puts into the project (git-ignored): ``$(CLAUDE_VERSION)``, today's.
LOCAL_CLI = TOOLKIT_ROOT / ".claude-cli" / "node_modules" / ".bin" / "claude"
#: Older CLIs the tests also run (``$(CLAUDE_TEST_VERSIONS)``): ``<this>/<version>/node_modules/.bin/claude``.
PINNED_CLIS = TOOLKIT_ROOT / ".claude-cli" / "versions"
#: Variables by which a Claude Code session marks the processes it starts (its
#: Bash tool's commands, hence a master's launches) as its own: who it is
#: (session ID, PID, executable), that they are its children, and how they
#: reach it (messaging socket and token).  A worker is a session of its own, so
#: it must not inherit them; seen in the environment of a Bash tool call of
#: 2.1.197 and 2.1.330.  Everything else, the user's settings included, is kept.
STRIPPED_ENV = (
    "CLAUDECODE",
    "CLAUDE_CODE_ENTRYPOINT",
    "CLAUDE_CODE_SESSION_ID",
    "CLAUDE_CODE_CHILD_SESSION",
    "CLAUDE_CODE_CHILD_NOTES_DIR",
    "CLAUDE_CODE_SESSION_ATTENDED",
    "CLAUDE_CODE_MESSAGING_SOCKET",
    "CLAUDE_CODE_MESSAGING_TOKEN",
    "CLAUDE_CODE_EXECPATH",
    "CLAUDE_PID",
    "AI_AGENT",
)
#: Permission modes known from the CLI's ``--help`` (2.1.330 renamed ``default``
#: to ``manual``), for help texts only: a mode is checked against the installed
#: CLI's own list (:mod:`.features`), so a newer CLI's modes are not refused.
KNOWN_PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "manual", "default", "dontAsk", "plan")
_MODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")


def find_claude() -> str:
    """The Claude CLI to run: ``$CLAUDE_BIN``, else ``claude`` on PATH, else the project's.

    Returns:
        An absolute path to an executable.

    Raises:
        CliMissing: none of them is an executable file (exit status 127).
    """
    import shutil  # here, not at the top: the supervisor never looks for the CLI, and shutil costs memory

    env = os.environ.get("CLAUDE_BIN")
    if env:
        found = shutil.which(env)
        if not found:
            raise CliMissing(f"CLAUDE_BIN={env!r} is not an executable; fix it or unset it to use the project's CLI")
        return os.path.abspath(found)
    found = shutil.which("claude")
    if found:
        return os.path.abspath(found)
    if os.access(LOCAL_CLI, os.X_OK):
        return str(LOCAL_CLI)
    raise CliMissing("the Claude CLI was not found: run `make install`, put `claude` on PATH, or set CLAUDE_BIN")


@dataclasses.dataclass
class ClaudeOptions:
    """What a launch asks of the CLI, besides the task.  Stored in the record's ``options``.

    Attributes:
        model: ``--model``.
        append_system_prompt: ``--append-system-prompt``.
        allowed_tools: ``--allowedTools`` (comma or space separated, as the CLI takes it).
        permission_mode: ``--permission-mode`` (one of the CLI's modes, e.g. :data:`KNOWN_PERMISSION_MODES`).
        dangerously_skip_permissions: ``--dangerously-skip-permissions``.
        max_turns: ``--max-turns`` (print mode: stop after N agentic turns).
        max_budget_usd: ``--max-budget-usd`` (the CLI stops spending at this amount).
        claude_args: extra arguments passed to the CLI as they are.
    """

    model: str | None = None
    append_system_prompt: str | None = None
    allowed_tools: str | None = None
    permission_mode: str | None = None
    dangerously_skip_permissions: bool = False
    max_turns: int | None = None
    max_budget_usd: float | None = None
    claude_args: list[str] = dataclasses.field(default_factory=list)

    def validate(self) -> None:
        """Raises :class:`BadInput` for a value the CLI would refuse."""
        if self.permission_mode and not _MODE_RE.fullmatch(self.permission_mode):
            raise BadInput(
                f"invalid permission mode {self.permission_mode!r}; use one of the CLI's, e.g. {', '.join(KNOWN_PERMISSION_MODES)}"
            )
        if self.max_turns is not None and self.max_turns < 1:
            raise BadInput("--max-turns must be 1 or more")
        if self.max_budget_usd is not None and self.max_budget_usd <= 0:
            raise BadInput("--max-budget-usd must be more than 0")
        for arg in self.claude_args:
            if arg == "--":
                raise BadInput("--claude-arg '--' is not allowed: it would end the CLI's options (the task goes to the CLI on stdin)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClaudeOptions:
        names = cls.__dataclass_fields__  # a dict keyed by field name, built once with the class
        return cls(**{k: v for k, v in data.items() if k in names})


def build_argv(
    claude: str,
    options: ClaudeOptions,
    *,
    session_id: str,
    resume_id: str | None = None,
    fork: bool = False,
    features: CliFeatures | None = None,
    permission_prompt: tuple[str, str] | None = None,
) -> list[str]:
    """The CLI's argument vector for one run.  Never passed through a shell.

    It holds no task: the task is the first user message on stdin
    (``--input-format stream-json``: one JSON line per message, and stdin has
    no 128 KiB limit as one argument has), followed by any message sent to the
    run; the CLI echoes each message it takes (``--replay-user-messages``), which
    tells the supervisor when a turn has taken them.  Both flags: 2.1.197 and 2.1.332.

    Args:
        claude: the executable (:func:`find_claude`).
        options: the launch's CLI options.
        session_id: the session ID of this run (``--session-id``); with a plain
            resume it must equal ``resume_id`` and is not passed.
        resume_id: a session to continue (``-r``), or None for a new one.
        fork: with ``resume_id``, continue under ``session_id`` (``--fork-session``).
        features: what this CLI supports (:func:`.features.detect_features`).  A
            resume or fork on a CLI with ``--system-prompt-snapshot`` gets ``off``,
            so that it has the system prompt its own options give, as on 2.1.197,
            not the one the conversation's first run recorded (unless
            ``claude_args`` set the flag); a new conversation keeps the CLI's
            default.  A permission mode is translated to the CLI's name for it
            (``manual``/``default``).
        permission_prompt: ``(MCP configuration file, tool)``: before a tool outside the allowed
            tools the CLI asks that tool (``--mcp-config FILE --permission-prompt-tool TOOL``,
            ``--ask-permission``) instead of denying it.
    """
    argv = [claude, "-p", "--input-format", "stream-json", "--output-format", "stream-json", "--verbose", "--replay-user-messages"]
    if resume_id:
        argv += ["-r", resume_id]
        if fork:
            argv += ["--fork-session", "--session-id", session_id]
    else:
        argv += ["--session-id", session_id]
    if options.model:
        argv += ["--model", options.model]
    if options.append_system_prompt:
        argv += ["--append-system-prompt", options.append_system_prompt]
    if options.allowed_tools:
        argv += ["--allowedTools", options.allowed_tools]
    if options.permission_mode:
        mode = features.permission_mode(options.permission_mode) if features else options.permission_mode
        argv += ["--permission-mode", mode]
    if options.dangerously_skip_permissions:
        argv.append("--dangerously-skip-permissions")
    if options.max_turns:
        argv += ["--max-turns", str(options.max_turns)]
    if options.max_budget_usd is not None:
        argv += ["--max-budget-usd", f"{options.max_budget_usd:g}"]
    if permission_prompt is not None:
        argv += ["--mcp-config", permission_prompt[0], "--permission-prompt-tool", permission_prompt[1]]
    if resume_id and features is not None and features.system_prompt_snapshot:
        from .features import SNAPSHOT_FLAG  # here: .features (hashlib, subprocess) stays off the launch path

        if not any(a == SNAPSHOT_FLAG or a.startswith(SNAPSHOT_FLAG + "=") for a in options.claude_args):
            argv += [SNAPSHOT_FLAG, "off"]
    argv += list(options.claude_args)
    return argv


def cli_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: ``base`` (default ``os.environ``) without :data:`STRIPPED_ENV`."""
    env = dict(os.environ if base is None else base)
    for key in STRIPPED_ENV:
        env.pop(key, None)
    return env
