"""The toolkit as a Claude Code plugin, checked by the real CLI (offline).

The source (plugin/, .claude-plugin/marketplace.json) and a render must pass
``claude plugin validate``; a session loaded with ``--plugin-dir`` must offer
the skill to the model; ``install`` must install it into a throwaway config
dir and bring in a changed render on a re-run.  Every CLI call gets its own
``HOME`` and ``CLAUDE_CONFIG_DIR`` under tmp_path: the user's ~/.claude is
never touched.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI_VERSIONS, ROOT, cli_path
from processes import tmux_on

from claude_orchestrator import plugin
from claude_orchestrator.devtools.fake_api import user_prompt

SKILL = "background-agents"
SOURCE = ROOT / "plugin"
SOURCE_SKILL = SOURCE / "skills" / SKILL / "SKILL.md"
PLUGIN_ID = "orchestrator@orchestrator-local"
#: What the rendered commands start with: this interpreter, then the toolkit's agents/.
PREFIX = f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT))}/agents/"


def _front_matter(text: str) -> dict[str, str]:
    """The ``key: value`` lines between a SKILL.md's two ``---`` lines."""
    assert text.startswith("---\n"), "SKILL.md must start with front matter"
    head = text[4 : text.index("\n---\n", 4)]
    return dict(line.split(": ", 1) for line in head.splitlines())


def _claude(claude: Path, env: dict[str, str], *args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(claude), *args], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def _strings(value) -> list[str]:
    """Every string in a JSON value (a request body), so text is searched unescaped."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.fixture
def isolated_env(tmp_path) -> dict[str, str]:
    """This environment without Claude/Anthropic variables, with its own HOME and CLAUDE_CONFIG_DIR."""
    home, config = tmp_path / "home", tmp_path / "claude-config"
    home.mkdir()
    config.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(HOME=str(home), CLAUDE_CONFIG_DIR=str(config), CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    return env


@pytest.fixture
def rendered(tmp_path) -> Path:
    """The plugin rendered for this checkout and this interpreter (``<tmp>/build/orchestrator``)."""
    return plugin.render(tmp_path / "build", ROOT, python=sys.executable)


def test_the_source_is_a_valid_plugin_and_marketplace(real_cli, isolated_env, tmp_path):
    manifest = json.loads((SOURCE / ".claude-plugin" / "plugin.json").read_text())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert manifest["name"] == plugin.PLUGIN_NAME
    assert not manifest["name"].startswith(("claude-", "anthropic-", "cc-plugin-")), "a reserved plugin name"
    assert f'\nversion = "{manifest["version"]}"\n' in pyproject, "plugin.json's version must be pyproject's"
    market = json.loads((ROOT / ".claude-plugin" / "marketplace.json").read_text())
    assert [(p["name"], p["source"]) for p in market["plugins"]] == [("orchestrator", "./plugin")]

    meta = _front_matter(SOURCE_SKILL.read_text())
    assert meta["name"] == SKILL and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", SKILL)
    assert "background" in meta["description"] and "parallel" in meta["description"]
    monitors = json.loads((SOURCE / "monitors" / "monitors.json").read_text())
    # the CLI compares the skill's name as invoked, plugin prefix included (2.1.332: `when === "on-skill-invoke:" + name`)
    assert [m["when"] for m in monitors] == [f"on-skill-invoke:{plugin.PLUGIN_NAME}:{SKILL}"]

    for target in (SOURCE, ROOT):
        done = _claude(real_cli, isolated_env, "plugin", "validate", str(target), cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Validation passed" in done.stdout


def test_render_fills_in_the_toolkit_and_still_validates(rendered, real_cli, isolated_env, tmp_path):
    skill = rendered / "skills" / SKILL / "SKILL.md"
    text = skill.read_text()
    # the skill's body is read into the master's context: the source keeps it short; a render adds only the
    # paths it fills in, whose length is the checkout's (CI's is longer than a developer's), never more text
    assert len(SOURCE_SKILL.read_bytes()) < 4096
    unrendered = text.replace(PREFIX, f"{plugin.SOURCE_PYTHON} {plugin.PLACEHOLDER}/agents/")
    assert unrendered.replace(shlex.quote(str(ROOT)), plugin.PLACEHOLDER) == SOURCE_SKILL.read_text()
    for script in ("launch_agent", "launch_parallel", "check_status", "wait_agents", "resume_agent",
                   "kill_agent", "clear_outputs", "tail_agent"):
        assert f"{PREFIX}{script}.py" in text, script
        assert (ROOT / "agents" / f"{script}.py").is_file()
    assert f"`{ROOT}/ORCHESTRATOR_README.md`" in text
    for path in rendered.rglob("*"):
        if path.is_file():
            assert plugin.PLACEHOLDER not in path.read_text(), path
    assert _front_matter(text) == _front_matter(SOURCE_SKILL.read_text())

    version = json.loads((rendered / ".claude-plugin" / "plugin.json").read_text())["version"]
    assert re.fullmatch(r"0\.1\.0\+[0-9a-f]{10}", version)
    assert plugin.render(tmp_path / "build", ROOT, python=sys.executable) == rendered
    assert json.loads((rendered / ".claude-plugin" / "plugin.json").read_text())["version"] == version, "same input, same version"
    keep = plugin.render(tmp_path / "plain", ROOT)  # python=None keeps the source's python3
    assert f"python3 {ROOT}/agents/launch_agent.py" in (keep / "skills" / SKILL / "SKILL.md").read_text()
    assert json.loads((keep / ".claude-plugin" / "plugin.json").read_text())["version"] != version

    for target in (rendered, rendered.parent):
        done = _claude(real_cli, isolated_env, "plugin", "validate", str(target), cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_session_with_the_plugin_offers_the_skill_and_reads_the_rendered_body(
    rendered, real_cli, isolated_env, fake_api, tmp_path
):
    env = dict(isolated_env, ANTHROPIC_BASE_URL=fake_api.url, ANTHROPIC_API_KEY="test-key-offline")
    description = _front_matter(SOURCE_SKILL.read_text())["description"]
    base = ["-p", "--output-format", "stream-json", "--verbose", "--plugin-dir", str(rendered), "--"]

    done = _claude(real_cli, env, *base, "hello", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    [body] = fake_api.messages_requests()
    assert f"orchestrator:{SKILL}: {description}" in "\n".join(_strings(body))

    done = _claude(real_cli, env, *base, f"/orchestrator:{SKILL}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    prompt = user_prompt(fake_api.messages_requests()[-1])
    assert "The one rule: never block." in prompt
    assert f"{PREFIX}wait_agents.py NAME... --timeout" in prompt and "${CLAUDE_PLUGIN_ROOT}" not in prompt


#: What the monitor runs after its interpreter and script: the follow of what the model must act on.
MONITOR_ARGS = ["--follow", "--only", "ends,questions", "--exit-with-parent"]


def test_the_monitor_runs_an_existing_script_for_its_state_root(rendered, tmp_path, monkeypatch):
    [monitor] = json.loads((rendered / "monitors" / "monitors.json").read_text())
    assert monitor["when"] == f"on-skill-invoke:orchestrator:{SKILL}" and monitor["description"]
    argv = shlex.split(monitor["command"])
    root = plugin.default_state_root(ROOT)
    assert argv == [f"ORCHESTRATOR_HOME={root}", sys.executable, str(ROOT / "agents" / "wait_agents.py"), *MONITOR_ARGS]
    assert Path(argv[2]).is_file()

    # A toolkit path with a space and a quote stays one shell word and valid JSON; the state root is named.
    odd = tmp_path / "my 'kit"
    shutil.copytree(SOURCE, odd / "plugin")
    (odd / "agents").mkdir()
    monkeypatch.delenv("ORCHESTRATOR_HOME", raising=False)
    out = plugin.render(tmp_path / "odd-build", odd, python="/opt/py 3/bin/python")
    [monitor] = json.loads((out / "monitors" / "monitors.json").read_text())
    assert shlex.split(monitor["command"]) == [f"ORCHESTRATOR_HOME={odd}", "/opt/py 3/bin/python",
                                               str(odd / "agents" / "wait_agents.py"), *MONITOR_ARGS]
    state = tmp_path / "state $HOME"
    out = plugin.render(tmp_path / "odd-build", odd, python="/opt/py 3/bin/python", state_root=state)
    [monitor] = json.loads((out / "monitors" / "monitors.json").read_text())
    assert shlex.split(monitor["command"])[0] == f"ORCHESTRATOR_HOME={state}"


@pytest.mark.parametrize("version", CLI_VERSIONS)
def test_install_and_reinstall_into_a_throwaway_config(version, isolated_env, tmp_path):
    claude = cli_path(version)
    build = tmp_path / "build"

    def listed() -> dict:
        done = _claude(claude, isolated_env, "plugin", "list", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        [entry] = [p for p in json.loads(done.stdout) if p["id"] == PLUGIN_ID]
        return entry

    first = plugin.install(ROOT, build, python=sys.executable, claude=str(claude), env=isolated_env)
    assert [s.label for s in first.steps] == [
        "claude plugin marketplace add", "claude plugin install", "claude plugin update",
    ]
    entry = listed()
    assert entry["version"] == first.version and entry["enabled"] is True and entry["scope"] == "user"

    # A re-run after a change (another interpreter), through the command line: the new render is installed.
    again = subprocess.run(
        [sys.executable, "-m", "claude_orchestrator.plugin", "install", "--build", str(build), "--python", "/opt/other/python3"],
        env=dict(isolated_env, CLAUDE_BIN=str(claude)), cwd=str(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert again.returncode == 0, again.stderr
    entry = listed()
    assert entry["version"] != first.version and entry["version"] in again.stdout
    # 2.1.330 and later read a local marketplace's plugin in place; 2.1.197 reads the copy it installed.
    loaded = Path(entry.get("readFromFolder") or entry["installPath"])
    assert "/opt/other/python3 " in (loaded / "skills" / SKILL / "SKILL.md").read_text()
    # (A re-run with nothing changed: the first run's update step already met an up-to-date plugin.)
    assert "already" in first.steps[-1].summary


def test_command_line_errors_are_one_line(tmp_path, isolated_env):
    def run(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "claude_orchestrator.plugin", *args],
            env=dict(isolated_env, **env), cwd=str(tmp_path), capture_output=True, text=True, timeout=30,
        )

    inside = run("render", str(SOURCE / "x"))
    missing_cli = run("install", "--build", str(tmp_path / "b"), CLAUDE_BIN=str(tmp_path / "no-claude"))
    not_toolkit = run("path", "--toolkit", str(tmp_path))
    for done, code in ((inside, 2), (missing_cli, 127), (not_toolkit, 2)):
        assert done.returncode == code, done.stderr
        assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (SOURCE / "x").exists()


#: The marker in the master's first prompt: a request whose messages hold it is the master's (an agent's never does).
MASTER = "MASTER-SESSION-1"


def _monitors(state: Path) -> list:
    """The running monitors (wait_agents.py --follow ... --exit-with-parent) that follow ``state``."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        try:
            argv, environ = proc.info["cmdline"] or [], proc.info["environ"] or {}
        except (psutil.Error, KeyError):
            continue
        if "--exit-with-parent" in argv and environ.get("ORCHESTRATOR_HOME") == str(state) and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed on this machine")
def test_the_monitor_in_an_interactive_session_wakes_the_model_once_per_end(real_cli, fake_api, tmp_path):
    """An interactive session (tmux) of today's CLI with the rendered plugin: the fake model uses the skill by the
    name it is offered (``orchestrator:background-agents``, through the Skill tool), which starts the monitor; an
    agent launched then causes one request to the master's session (its end), not one per state change; the
    monitor ends with the session."""
    from conftest import wait_until

    from claude_orchestrator.devtools.offline import API_KEY, offline_env, offline_settings, seed_config

    home, config, state, work = (tmp_path / d for d in ("home", "claude-config", "state", "work"))
    for d in (home, state, work):
        d.mkdir()
    seed_config(config, API_KEY, [work])
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "TMUX", "ORCHESTRATOR_"))}
    env = offline_env(dict(base, HOME=str(home), CLAUDE_BIN=str(real_cli)), offline_settings(fake_api.url, config, state))
    rendered = plugin.render(tmp_path / "build", ROOT, python=sys.executable, state_root=state)
    socket = f"orch-plugin-{os.getpid()}-{tmp_path.name[-12:]}"
    status_file = tmp_path / "cli-exit-status"

    tmux = tmux_on(socket, env)

    def screen() -> str:
        return tmux("capture-pane", "-p", "-t", "master")

    def shows(text: str, timeout: float = 90) -> None:
        try:
            wait_until(lambda: text in screen(), timeout=timeout, interval=0.2, what=repr(text))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{screen()}") from None

    def type_line(text: str) -> None:
        tmux("send-keys", "-t", "master", "-l", text)
        shows(text[-30:])  # typed in full before Enter (a quick Enter could land inside the typing)
        tmux("send-keys", "-t", "master", "Enter")

    def master_requests() -> list[dict]:
        return [b for b in fake_api.messages_requests() if MASTER in json.dumps(b)]

    command = f"{shlex.join([str(real_cli), '--plugin-dir', str(rendered)])}; echo $? > {shlex.quote(str(status_file))}"
    try:
        tmux("new-session", "-d", "-s", "master", "-x", "180", "-y", "50", "-c", str(work), "sh", "-c", command)
        shows("manual mode on")  # the prompt, no first-run dialog
        assert not _monitors(state)
        type_line(f'[[tool: Skill {{"skill": "orchestrator:{SKILL}"}}]] {MASTER} use the skill')
        shows(f"Skill(orchestrator:{SKILL})")
        [monitor] = wait_until(lambda: _monitors(state), timeout=60, interval=0.2, what="the monitor to start")
        assert monitor.cmdline()[-4:] == MONITOR_ARGS

        before = len(master_requests())
        launched = subprocess.run([sys.executable, str(ROOT / "agents" / "launch_agent.py"), "t1", "[[reply: child done]] go",
                                   "--cwd", str(work)], env=env, capture_output=True, text=True, timeout=60)
        assert launched.returncode == 0, launched.stderr
        ended = subprocess.run([sys.executable, str(ROOT / "agents" / "wait_agents.py"), "t1"], env=env, capture_output=True,
                               text=True, timeout=120)
        assert ended.stdout.splitlines()[-1] == "all ended: 1 completed", ended.stdout
        # The end's line reaches the model as a task notification: a request to the master's session.
        woke = wait_until(lambda: [b for b in master_requests()[before:] if "<task-notification>" in json.dumps(b)],
                          timeout=60, interval=0.2, what="the master to be told of t1's end")
        assert "t1: running -&gt; completed in " in json.dumps(woke[0]["messages"][-1])  # the CLI escapes the line's ">"
        # A prompt typed after that request: every request t1's run caused came before the prompt's own.
        type_line(f"[[reply: second prompt answered]] {MASTER}-2")
        shows("● second prompt answered")  # the reply, not the typed prompt
        requests = master_requests()[before:]
        mark = next(i for i, b in enumerate(requests) if f"{MASTER}-2" in user_prompt(b))
        caused = requests[:mark]
        assert len(caused) == 1, [json.dumps(b["messages"][-1])[:300] for b in caused]  # the end; no starting/running

        type_line("/exit")
        wait_until(lambda: status_file.exists() and status_file.read_text().endswith("\n"), timeout=60, interval=0.2,
                   what="the CLI to exit")
        wait_until(lambda: not _monitors(state), timeout=30, interval=0.2, what="the monitor to end with its session")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], env=env, capture_output=True, timeout=30)
        for proc in _monitors(state):
            proc.kill()
