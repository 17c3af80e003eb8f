"""``python -m claude_orchestrator.devtools.offline``: the fake API and a CLI config with the first run behind it,
for trying the toolkit, the interactive ``make orchestrator`` included, offline (issue 19, item 11)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT, Lines, wait_until
from processes import tmux_on

from claude_orchestrator.devtools.offline import export_lines, first_run_state, offline_env, offline_settings

OFFLINE = [sys.executable, "-m", "claude_orchestrator.devtools.offline"]


def _env(**extra: str) -> dict[str, str]:
    """This process's environment with a Claude Code session's marks and a stray credential, as a user's shell may have."""
    return dict(os.environ, CLAUDECODE="1", CLAUDE_CODE_ENTRYPOINT="cli", ANTHROPIC_AUTH_TOKEN="a-real-token", **extra)


def test_first_run_state_answers_each_dialog(tmp_path):
    state = first_run_state("sk-ant-api03-0123456789abcdefghijKLMNOPQRSTUVWXYZ", [tmp_path / "a", str(tmp_path)], "2.1.332")
    assert state["hasCompletedOnboarding"] is True and state["lastOnboardingVersion"] == "2.1.332" and state["theme"] == "dark"
    assert state["customApiKeyResponses"] == {"approved": ["ghijKLMNOPQRSTUVWXYZ"], "rejected": []}  # the key's last 20
    assert state["hasSeenAutoDefaultNudge"] is True
    assert state["projects"] == {os.path.realpath(tmp_path / "a"): {"hasTrustDialogAccepted": True},
                                 os.path.realpath(tmp_path): {"hasTrustDialogAccepted": True}}
    assert "lastOnboardingVersion" not in first_run_state("k", [])


def test_the_environment_leaves_out_what_would_take_the_cli_elsewhere(tmp_path):
    settings = offline_settings("http://127.0.0.1:1", tmp_path / "c", tmp_path / "s")
    env = offline_env({"PATH": "/bin", "CLAUDE_BIN": "/x/claude", "ANTHROPIC_AUTH_TOKEN": "t", "ANTHROPIC_API_KEY": "real",
                       "CLAUDECODE": "1", "CLAUDE_CODE_ENTRYPOINT": "cli", "CLAUDE_CODE_USE_BEDROCK": "1",
                       "CLAUDE_CONFIG_DIR": "/root/.claude", "ORCHESTRATOR_HOME": "/real"}, settings)
    assert env == {"PATH": "/bin", "CLAUDE_BIN": "/x/claude", "ANTHROPIC_BASE_URL": "http://127.0.0.1:1",
                   "ANTHROPIC_API_KEY": "offline-fake-key", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                   "CLAUDE_CONFIG_DIR": str(tmp_path / "c"), "ORCHESTRATOR_HOME": str(tmp_path / "s")}


def test_export_lines_quote_for_a_shell(tmp_path):
    odd = tmp_path / "a folder 'with' $quotes"
    lines = export_lines({"CLAUDE_CONFIG_DIR": str(odd)}, ["CLAUDECODE"])
    assert lines[0] == "unset CLAUDECODE"
    out = subprocess.run(["sh", "-c", "\n".join(lines) + '\nprintf %s "$CLAUDE_CONFIG_DIR"; echo "[${CLAUDECODE-unset}]"'],
                         env=_env(), capture_output=True, text=True, timeout=30)
    assert out.stdout == f"{odd}[unset]\n"


def test_runs_a_command_in_the_offline_environment(tmp_path):
    shown = tmp_path / "shown.json"
    script = ('python3 -c \'import json, os, sys; e = os.environ; d = e["CLAUDE_CONFIG_DIR"]; '
              'json.dump({"env": dict(e), "claude.json": json.load(open(d + "/.claude.json")), '
              '"settings": json.load(open(d + "/settings.json"))}, open(sys.argv[1], "w"))\' "$1"; exit 3')
    done = subprocess.run([*OFFLINE, "--trust", str(tmp_path), "--", "sh", "-c", script, "sh", str(shown)], env=_env(),
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 3, done.stderr  # the command's status
    seen = json.loads(shown.read_text())
    env = seen["env"]
    assert env["ANTHROPIC_BASE_URL"].startswith("http://127.0.0.1:") and env["ANTHROPIC_API_KEY"] == "offline-fake-key"
    assert not {"CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "ANTHROPIC_AUTH_TOKEN"} & set(env)
    assert seen["claude.json"]["projects"] == {os.path.realpath(tmp_path): {"hasTrustDialogAccepted": True}}
    assert seen["settings"] == {"permissions": {"defaultMode": "default"}}
    folder = Path(env["CLAUDE_CONFIG_DIR"]).parent
    assert Path(env["ORCHESTRATOR_HOME"]).parent == folder and not folder.exists()  # deleted at the end
    assert f"state and CLI config in {folder}" in done.stderr


def test_a_missing_command_is_127(tmp_path):
    done = subprocess.run([*OFFLINE, "--", "no-such-command-here"], env=_env(), cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 127 and "no-such-command-here: command not found" in done.stderr


def test_printed_exports_reach_the_fake_api_until_ctrl_c(real_cli, tmp_path):
    """Without a command it prints the export lines and serves until SIGINT; a shell given those lines
    runs the real CLI against it."""
    server = subprocess.Popen([*OFFLINE, "--trust", str(tmp_path)], env=_env(CLAUDE_BIN=str(real_cli)), cwd=tmp_path,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = Lines(server.stdout)
    try:
        out.expect(r"^export ORCHESTRATOR_HOME=", timeout=60)
        lines = [line for line in out.seen if not line.startswith("#")]
        assert lines[0] == "unset ANTHROPIC_AUTH_TOKEN CLAUDECODE CLAUDE_CODE_ENTRYPOINT", lines
        folder = Path(re.search(r"state and CLI config in (\S+)\.", out.seen[0]).group(1))
        done = subprocess.run(["sh", "-c", "\n".join(lines) + '\nexec "$CLAUDE_BIN" -p --output-format json "[[reply: pong]] ping"'],
                              env=_env(CLAUDE_BIN=str(real_cli)), cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["result"] == "pong"
        assert folder.is_dir()
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
        assert not folder.exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


#: What the interactive CLI shows in place of its prompt when a first-run question or an offline failure is up.
DIALOGS = ("Let's get started", "Unable to connect", "Do you want to use this API key", "Quick safety check",
           "Make auto mode your default", "Auto mode can't check", "Choose the text style")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed on this machine")
def test_make_orchestrator_offline_in_tmux(real_cli, tmp_path):
    """``offline -- make orchestrator`` in a terminal (tmux): today's CLI opens on its prompt with no dialog, a typed
    prompt gets the fake API's answer on screen, and the orchestrator launches an agent through the toolkit."""
    socket = f"orch-offline-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # a tmux server of this test's own
    tmp = tmp_path / "tmp"  # offline's TMPDIR, to find its folder
    tmp.mkdir()
    env = {k: v for k, v in _env(CLAUDE_BIN=str(real_cli), TMPDIR=str(tmp)).items() if not k.startswith("TMUX")}

    tmux = tmux_on(socket, env)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "offline")

    def shows(pattern: str, timeout: float = 90) -> str:
        """The screen once a line matches ``pattern``; fails with the screen after ``timeout`` s or if a dialog shows."""
        rx = re.compile(pattern, re.M)
        last = ""

        def seen() -> bool:
            nonlocal last
            last = screen()
            dialogs = [d for d in DIALOGS if d in last]
            assert not dialogs, f"a dialog shows: {dialogs}\n{last}"
            return bool(rx.search(last))

        try:
            wait_until(seen, timeout=timeout, interval=0.2, what=pattern)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{last}") from None
        return last

    def no_dialog_for(seconds: float) -> None:
        """Watch the screen for ``seconds``, failing if a dialog shows.  A first-run question may wait for the CLI to
        be idle (the auto-mode nudge showed 1 s after the prompt when its key was left out, not while typing): the
        absence of one can only be watched for a while, this is no synchronisation."""
        end = time.monotonic() + seconds
        wait_until(lambda: shows(".") and time.monotonic() >= end, timeout=seconds + 30, interval=0.2, what="the watch")

    def type_line(text: str) -> None:
        """Type ``text``, wait until the prompt shows it (a quick Enter could land inside the typing), press Enter."""
        tmux("send-keys", "-t", "offline", "-l", text)
        shows(re.escape(text[-30:]))
        tmux("send-keys", "-t", "offline", "Enter")

    status_file = tmp_path / "offline-exit-status"

    def exit_status() -> str | None:
        """offline's exit status once it has ended (the shell around it writes it), else None.  Not tmux's
        pane_dead: tmux marks the pane dead only once its terminal closes, and a process the CLI left behind
        may hold the terminal for a while after offline has exited (seen: its process a zombie for 60 s)."""
        text = status_file.read_text() if status_file.exists() else ""
        return text.strip() if text.endswith("\n") else None

    def answer(question: str, timeout: float = 60) -> None:
        """Press Enter (the first, preselected choice) until ``question`` leaves the screen: a dialog refuses keys
        for a moment after it shows (so that keys typed ahead do not answer it), an Enter sent then is lost."""
        deadline = time.monotonic() + timeout
        while question in screen():
            assert time.monotonic() < deadline, f"{question!r} still shows after {timeout} s:\n{screen()}"
            tmux("send-keys", "-t", "offline", "Enter")
            try:
                wait_until(lambda: question not in screen(), timeout=3, interval=0.2, what="the answer")
            except AssertionError:
                pass  # refused: press again

    def end_session(timeout: float = 60) -> str:
        """offline's exit status (:func:`exit_status`) after ``/exit`` was typed, pressing Enter again while it
        runs: the slash-command menu, or a busy CLI, may take the first Enter."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return wait_until(exit_status, timeout=3, interval=0.1, what="offline to end")
            except AssertionError:
                assert time.monotonic() < deadline, f"offline still runs {timeout} s after /exit:\n{screen()}"
                # not tmux(): the pane may end between the look and the key, and a key to an ended pane may fail
                subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", "send-keys", "-t", "offline", "Enter"], env=env,
                               capture_output=True, timeout=30, stdin=subprocess.DEVNULL)

    command = shlex.join(["sh", "-c", f'{shlex.join([*OFFLINE, "--", "make", "orchestrator"])}; echo "$?" > {shlex.quote(str(status_file))}'])
    try:
        tmux("new-session", "-d", "-s", "offline", "-x", "160", "-y", "50", "-c", str(ROOT), command,
             ";", "set-option", "-t", "offline", "remain-on-exit", "on")
        shows(r"manual mode on")  # the CLI's prompt, in the seeded mode
        assert "Claude Code v2.1.332" in screen()
        assert len(list(tmp.glob("orchestrator-offline-*"))) == 1
        no_dialog_for(5)

        type_line("[[reply: The fake API answers offline.]] hello")
        shows(r"^● The fake API answers offline\.$")

        type_line('[[bash: python3 agents/launch_agent.py t1 --wait "[[reply: child done]] go"]] launch one')
        shows(r"Do you want to proceed\?")  # manual mode asks before the tool runs
        answer("Do you want to proceed?")  # 1. Yes
        shows(r"^● Tool said: t1: completed in .*: child done$", timeout=120)

        type_line("/exit")
        assert end_session() == "0", screen()  # offline's exit status: make's, the CLI's
        assert not list(tmp.glob("orchestrator-offline-*"))  # its folder, deleted at the end
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], env=env, capture_output=True, timeout=30)
