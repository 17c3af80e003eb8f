"""``python -m claude_orchestrator.devtools.offline``: try the toolkit offline, the interactive ``make orchestrator`` included.

Starts the fake Messages API (:mod:`.fake_api`), makes a fresh temp folder with
a ``CLAUDE_CONFIG_DIR`` seeded so that the interactive CLI opens on its prompt
with no first-run dialog (:func:`seed_config`) and an ``ORCHESTRATOR_HOME`` of
its own, then either runs a command in that environment::

    python -m claude_orchestrator.devtools.offline -- make orchestrator

(the server stops and the folder is deleted when the command ends; its exit
status is the command's), or, with no command, prints the ``export`` lines to
paste into another shell and serves until Ctrl-C.

A fresh config dir alone does not get there: the first run's onboarding tries
the network ("Unable to connect to Anthropic services"), then asks whether to
use the API key of the environment, then whether the folder is trusted, and
2.1.332 starts in auto mode, whose safety check runs on Anthropic's servers
(the request's ``safeguards`` field), which the fake API does not do: each
Bash call then stops the turn with "Auto mode can't check actions in this
session".  So the seeded settings start in the CLI's ``default`` (manual)
mode, where the CLI asks before a tool runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ..claude.invocation import find_claude
from ..core.errors import OrchestratorError
from .fake_api import FakeAPIServer, load_replies, serve_in_thread

#: The API key the CLI gets: any string does, the fake API checks none.
API_KEY = "offline-fake-key"

#: Variables left out of the command's environment: credentials and routing that would take the CLI
#: past the fake API, and the marks of a Claude Code session (a CLI started inside one thinks it is nested).
DROPPED_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_USE_")
DROPPED_NAMES = ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_SSE_PORT")


def first_run_state(api_key: str, folders: Iterable[str | os.PathLike], cli_version: str | None = None) -> dict:
    """The ``.claude.json`` of a config dir whose first run is behind it: a dict of JSON values.

    Found by experiment on CLI 2.1.332 (each key left out in turn, in a fresh
    ``CLAUDE_CONFIG_DIR``, the interactive CLI started in tmux), and enough on
    2.1.197 too:

    - ``hasCompletedOnboarding``: else the welcome screen, the theme choice and a
      network check that fails offline ("Unable to connect to Anthropic services").
    - ``lastOnboardingVersion``: the CLI writes it with the former (*cli_version*;
      left out when unknown: 2.1.332 does not need it).
    - ``theme``: ``"dark"``, what the theme choice would have written.
    - ``customApiKeyResponses.approved``: the key's last 20 characters (the CLI's
      own rule), else "Detected a custom API key in your environment. Do you want
      to use this API key?", with No preselected.
    - ``projects[FOLDER].hasTrustDialogAccepted`` for each of *folders* (a trusted
      folder's subfolders are trusted too), else "Quick safety check: Is this a
      project you created or one you trust?".
    - ``hasSeenAutoDefaultNudge``: else, outside auto mode, "Make auto mode your
      default permission mode?".
    """
    return {
        "hasCompletedOnboarding": True,
        **({"lastOnboardingVersion": cli_version} if cli_version else {}),
        "theme": "dark",
        "customApiKeyResponses": {"approved": [api_key.strip()[-20:]], "rejected": []},
        "hasSeenAutoDefaultNudge": True,
        "projects": {os.path.realpath(f): {"hasTrustDialogAccepted": True} for f in folders},
    }


def seed_config(config_dir: Path, api_key: str, folders: Iterable[str | os.PathLike], *,
                permission_mode: str = "default", cli_version: str | None = None) -> None:
    """Write a fresh ``CLAUDE_CONFIG_DIR``: ``.claude.json`` (:func:`first_run_state`) and
    ``settings.json`` with ``{"permissions": {"defaultMode": permission_mode}}``.

    *permission_mode* ``default`` (the CLI's manual mode: it asks before a tool
    runs) because auto mode, 2.1.332's default, needs Anthropic's server-side
    check (see the module's docstring).  Creates *config_dir* if needed; raises
    OSError if it cannot be written.
    """
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / ".claude.json").write_text(json.dumps(first_run_state(api_key, folders, cli_version), indent=2) + "\n")
    (config_dir / "settings.json").write_text(json.dumps({"permissions": {"defaultMode": permission_mode}}, indent=2) + "\n")


def cli_version(env: Mapping[str, str]) -> str | None:
    """The version of the CLI ``make orchestrator`` would run (:func:`find_claude`: ``$CLAUDE_BIN``, ``claude`` on
    PATH, the project's), as ``claude --version`` run in *env* says it (``"2.1.332"`` of ``2.1.332 (Claude Code)``);
    None if there is none or it does not say."""
    try:
        claude = find_claude()  # the offline environment keeps this process's CLAUDE_BIN and PATH
        done = subprocess.run([claude, "--version"], env=dict(env), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
    except (OrchestratorError, OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    return words[0] if done.returncode == 0 and words else None


def dropped(env: Mapping[str, str]) -> list[str]:
    """The names in *env* that the offline environment leaves out (:data:`DROPPED_PREFIXES`, :data:`DROPPED_NAMES`)."""
    return sorted(k for k in env if k.startswith(DROPPED_PREFIXES) or k in DROPPED_NAMES)


def offline_settings(url: str, config_dir: Path, state_dir: Path, api_key: str = API_KEY) -> dict[str, str]:
    """The variables the offline environment sets: name -> value.

    ``ANTHROPIC_BASE_URL`` (the fake API), ``ANTHROPIC_API_KEY``,
    ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`` (no update checks or
    telemetry to wait for), ``CLAUDE_CONFIG_DIR`` and ``ORCHESTRATOR_HOME``.
    """
    return {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CONFIG_DIR": str(config_dir),
        "ORCHESTRATOR_HOME": str(state_dir),
    }


def offline_env(base: Mapping[str, str], settings: Mapping[str, str]) -> dict[str, str]:
    """*base* (say ``os.environ``) without :func:`dropped` names, with *settings* (:func:`offline_settings`) set."""
    gone = set(dropped(base))
    return {**{k: v for k, v in base.items() if k not in gone}, **settings}


def export_lines(settings: Mapping[str, str], unset: Sequence[str] = ()) -> list[str]:
    """Shell lines that give a POSIX shell the offline environment: ``unset NAME ...`` (if *unset*), then
    ``export NAME=VALUE`` per setting, values quoted with :func:`shlex.quote`."""
    lines = [f"unset {' '.join(unset)}"] if unset else []
    return lines + [f"export {k}={shlex.quote(v)}" for k, v in settings.items()]


def _run(command: Sequence[str], env: Mapping[str, str]) -> int:
    """Run *command* in the foreground with *env*: its exit status (128+N if killed by signal N;
    127 if not found, 126 if not executable).  SIGINT (the terminal's Ctrl-C, which the child gets
    too) is left to the child; SIGTERM and SIGHUP are passed on to it."""
    try:
        child = subprocess.Popen(list(command), env=dict(env))
    except FileNotFoundError:
        print(f"offline: {command[0]}: command not found", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"offline: {command[0]}: permission denied", file=sys.stderr)
        return 126

    def forward(signum, frame) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, lambda signum, frame: None)  # a handler, not SIG_IGN: the child's is not touched
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code


def _serve_until_stopped(server: FakeAPIServer) -> None:
    """Serve in this thread until SIGINT or SIGTERM (SIGINT even if started with it ignored, as ``&`` in a script does)."""

    def stop(signum, frame) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv: list[str] | None = None) -> int:
    """Run a command (after ``--``) in the offline environment, or print it and serve until Ctrl-C.

    Returns the command's exit status; 0 after Ctrl-C with no command; 2 for a usage error
    or an unreadable ``--replies`` file.
    """
    parser = argparse.ArgumentParser(
        prog="python -m claude_orchestrator.devtools.offline",
        description="Try the toolkit, `make orchestrator` included, offline: the fake Messages API and a "
                    "CLAUDE_CONFIG_DIR with the first run's dialogs answered, in a fresh temp folder.",
        epilog="examples:\n"
               "  python -m claude_orchestrator.devtools.offline -- make orchestrator\n"
               "  python -m claude_orchestrator.devtools.offline     # prints export lines; Ctrl-C stops it\n"
               "The fake model follows [[directives]] in the prompt (see claude_orchestrator/devtools/fake_api.py), "
               "e.g. [[reply: TEXT]] or [[bash: COMMAND]]; the CLI asks before it runs a tool.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trust", metavar="DIR", action="append",
                        help="a folder the CLI trusts without asking (repeatable; default: the current folder, subfolders included)")
    parser.add_argument("--permission-mode", metavar="MODE", default="default",
                        help="the CLI's starting permission mode (default: default, which asks before a tool runs; "
                             "auto needs Anthropic's servers)")
    parser.add_argument("--replies", metavar="FILE", help="the fake API's replies table (see fake_api --replies)")
    parser.add_argument("--port", type=int, default=0, help="the fake API's port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (state and CLI config) at the end")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="after --: the command to run, e.g. make orchestrator")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        replies = load_replies(args.replies) if args.replies else []
    except (OSError, ValueError) as e:
        parser.exit(2, f"offline: {e}\n")

    tmp = Path(tempfile.mkdtemp(prefix="orchestrator-offline-"))
    config, state = tmp / "claude-config", tmp / "state"
    state.mkdir()
    server = FakeAPIServer(args.port, replies=replies) if not command else serve_in_thread(args.port, replies)
    try:
        settings = offline_settings(server.url, config, state)
        env = offline_env(os.environ, settings)
        seed_config(config, API_KEY, args.trust or [os.getcwd()], permission_mode=args.permission_mode,
                    cli_version=cli_version(env))
        if command:
            print(f"offline: fake Messages API at {server.url}; state and CLI config in {tmp}", file=sys.stderr, flush=True)
            return _run(command, env)
        print(f"# offline: the fake Messages API at {server.url}; state and CLI config in {tmp}.\n"
              "# Paste these lines into another shell, then run the toolkit there (e.g. make orchestrator);\n"
              f"# the agents' files (outputs/, status/) are then under {settings['ORCHESTRATOR_HOME']}, not the toolkit's root;\n"
              f"# Ctrl-C here stops the fake API{'' if args.keep else ' and deletes the folder'}.")
        print("\n".join(export_lines(settings, dropped(os.environ))), flush=True)
        _serve_until_stopped(server)
        return 0
    finally:
        if command:
            server.shutdown()
        server.server_close()
        if args.keep:
            print(f"offline: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
