"""What the installed CLI supports: parsed from its own --help, cached per binary, used in the argv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import CLI_VERSIONS, cli_path, version_tuple

from claude_orchestrator.claude.features import (
    CliFeatures,
    cached_features,
    detect_features,
    forget,
    parse_help,
    same_version,
)
from claude_orchestrator.claude.invocation import ClaudeOptions, build_argv
from claude_orchestrator.core.paths import StatePaths


@pytest.mark.parametrize("version", CLI_VERSIONS)
def test_parse_help_of_each_real_cli(version, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), CLAUDE_CONFIG_DIR=str(tmp_path / "config"))  # never the user's ~/.claude
    text = subprocess.run([str(cli_path(version)), "--help"], capture_output=True, text=True, timeout=60, env=env).stdout
    options, modes = parse_help(text)
    assert {"--print", "--resume", "--session-id", "--fork-session", "--append-system-prompt", "--permission-mode"} <= options
    assert "acceptEdits" in modes and "plan" in modes
    if version_tuple(version) < (2, 1, 330):  # 2.1.197; 2.1.330 is the first pinned CLI with both changes
        assert "--system-prompt-snapshot" not in options and "default" in modes and "manual" not in modes
    else:
        assert "--system-prompt-snapshot" in options and "manual" in modes


def test_a_mention_inside_a_description_is_not_an_option():
    options, _ = parse_help("Options:\n  --model <m>   Model; see also\n                --not-an-option for more\n")
    assert options == frozenset({"--model"})


def test_permission_mode_is_translated_to_the_clis_name_for_it():
    old = CliFeatures("2.1.197", frozenset({"--permission-mode"}), ("acceptEdits", "default", "plan"))
    new = CliFeatures("2.1.330", frozenset({"--permission-mode", "--system-prompt-snapshot"}), ("acceptEdits", "manual", "plan"))
    assert old.permission_mode("manual") == "default" and new.permission_mode("default") == "manual"
    assert new.permission_mode("plan") == "plan" and old.refuse_permission_mode("manual") is None
    assert "acceptEdits, manual, plan" in new.refuse_permission_mode("yolo")
    assert CliFeatures().refuse_permission_mode("anything") is None, "unknown features refuse nothing"


def test_argv_gets_snapshot_off_on_resumes_and_forks_only_from_a_cli_that_has_it():
    new = CliFeatures("2.1.330", frozenset({"--system-prompt-snapshot"}), ("manual",))
    opts = ClaudeOptions(permission_mode="default")
    argv = build_argv("/c", opts, session_id="S", resume_id="S", features=new)
    assert argv[argv.index("--system-prompt-snapshot") + 1] == "off" and "--" not in argv
    assert argv[argv.index("--permission-mode") + 1] == "manual"
    forked = build_argv("/c", opts, session_id="NEW", resume_id="S", fork=True, features=new)
    assert forked[forked.index("--system-prompt-snapshot") + 1] == "off"
    assert "--system-prompt-snapshot" not in build_argv("/c", opts, session_id="S", features=new), "a new conversation keeps the default"
    old = CliFeatures("2.1.197", frozenset({"--model"}))
    assert "--system-prompt-snapshot" not in build_argv("/c", opts, session_id="S", resume_id="S", features=old)
    assert "--system-prompt-snapshot" not in build_argv("/c", opts, session_id="S", resume_id="S")
    mine = ClaudeOptions(claude_args=["--system-prompt-snapshot=on"])
    argv = build_argv("/c", mine, session_id="S", resume_id="S", features=new)
    assert argv.count("--system-prompt-snapshot") == 0 and "--system-prompt-snapshot=on" in argv, "the user's own choice wins"


def _fake_cli(tmp_path, version_file):
    """A shell-script CLI whose --version prints ``version_file``'s text and that logs each call."""
    calls = tmp_path / "calls"
    exe = tmp_path / "claude"
    exe.write_text(
        "#!/bin/sh\n"
        f"echo \"$1\" >> {calls}\n"
        f"if [ \"$1\" = --version ]; then cat {version_file}; exit 0; fi\n"
        f"if [ -e {tmp_path / 'help-fails'} ]; then exit 1; fi\n"
        "printf '  --print   p\\n  --system-prompt-snapshot <on|off>  s\\n  --permission-mode <m>  (choices: \"a\", \"b\")\\n'\n"
    )
    exe.chmod(0o755)
    return exe, calls


def test_version_and_help_are_read_once_per_binary_and_again_after_an_upgrade_or_a_reported_switch(tmp_path):
    version = tmp_path / "version"
    version.write_text("9.9.9 (Claude Code)\n")
    exe, calls = _fake_cli(tmp_path, version)
    paths = StatePaths(tmp_path / "root")
    assert cached_features(paths, str(exe)) is None
    first = detect_features(paths, str(exe))
    assert first.version == "9.9.9 (Claude Code)" and first.system_prompt_snapshot and first.permission_modes == ("a", "b")
    assert detect_features(paths, str(exe)) == first and cached_features(paths, str(exe)) == first
    assert calls.read_text().split() == ["--version", "--help"], "the second run starts no CLI before its own"

    version.write_text("10.0.0 (Claude Code)\n")  # a version manager switched what the same file runs
    assert same_version(first.version, "9.9.9") and not same_version(first.version, "10.0.0")
    assert same_version(first.version, None) and same_version(first.version, "x y") and same_version(None, "10.0.0")
    forget(paths, str(exe))  # the supervisor's answer to an init event reporting 10.0.0
    assert detect_features(paths, str(exe)).version == "10.0.0 (Claude Code)"
    assert calls.read_text().split()[-2:] == ["--version", "--help"]

    exe.write_text(exe.read_text() + "# upgraded\n")  # a new file: a new cache entry
    os.utime(exe, ns=(1, 1))
    assert cached_features(paths, str(exe)) is None
    detect_features(paths, str(exe))
    assert calls.read_text().split()[-2:] == ["--version", "--help"]


def test_a_failed_version_probe_is_not_cached(tmp_path):
    version = tmp_path / "version"  # absent: --version fails (cat exits 1)
    exe, calls = _fake_cli(tmp_path, version)
    paths = StatePaths(tmp_path / "root")
    assert detect_features(paths, str(exe)) == CliFeatures()
    assert cached_features(paths, str(exe)) is None
    version.write_text("9.9.9 (Claude Code)\n")
    assert detect_features(paths, str(exe)).version == "9.9.9 (Claude Code)"
    assert calls.read_text().split() == ["--version", "--version", "--help"], "tried again, --help only once it answered"


def test_a_run_whose_cli_reports_another_version_drops_the_cached_features(fake_kit):
    """The supervisor compares the init event's claude_code_version with the cache entry's version."""
    entries = fake_kit.root / "status" / ".cli"
    assert fake_kit.run("launch_agent", "v1", "--wait", "hello").returncode == 0
    assert len(list(entries.glob("*.json"))) == 1, "the fake CLI (2.1.197) reports the version it says: kept"
    fake_kit.env["FAKE_CLAUDE_VERSION"] = "2.1.999"
    assert fake_kit.run("launch_agent", "v2", "--wait", "hello").returncode == 0
    assert not list(entries.glob("*.json")), "switched under the same file: asked again next time"
    log = Path(fake_kit.record("v2")["log_file"]).read_text()
    assert "the CLI says it is 2.1.999" in log, log


def test_a_failed_help_is_not_cached_and_a_bad_cache_entry_is_ignored(tmp_path):
    version = tmp_path / "version"
    version.write_text("9.9.9 (Claude Code)\n")
    exe, _ = _fake_cli(tmp_path, version)
    (tmp_path / "help-fails").touch()
    paths = StatePaths(tmp_path / "root")
    failed = detect_features(paths, str(exe))
    assert not failed.known and not failed.system_prompt_snapshot
    assert cached_features(paths, str(exe)) is None, "a failed probe is tried again next time"
    (tmp_path / "help-fails").unlink()
    assert detect_features(paths, str(exe)).system_prompt_snapshot
    for entry in (paths.status_dir / ".cli").glob("*.json"):
        entry.write_text('{"version": 5, "options": "x"}')
    assert cached_features(paths, str(exe)) is None
    assert detect_features(paths, str(exe)).system_prompt_snapshot, "a bad entry is replaced"
    assert detect_features(paths, "/nonexistent/claude") == CliFeatures()


def test_the_cli_process_gets_no_variable_of_the_masters_session(fake_kit, tmp_path):
    """Checked on the CLI's own environment (the real CLI overwrites some of them for its tools)."""
    seen_in_a_bash_tool_call = (  # of 2.1.197 and 2.1.330: who the master is and how its children reach it
        "CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_CODE_SESSION_ID", "CLAUDE_CODE_CHILD_SESSION",
        "CLAUDE_CODE_CHILD_NOTES_DIR", "CLAUDE_CODE_SESSION_ATTENDED", "CLAUDE_CODE_MESSAGING_SOCKET",
        "CLAUDE_CODE_MESSAGING_TOKEN", "CLAUDE_CODE_EXECPATH", "CLAUDE_PID", "AI_AGENT",
    )
    master = dict.fromkeys(seen_in_a_bash_tool_call, "master")
    fake_kit.env.update(master, MY_OWN_SETTING="kept", CLAUDE_CONFIG_DIR=str(tmp_path / "config"))
    assert fake_kit.run("launch_agent", "w1", "--wait", "hello").returncode == 0
    runs = [json.loads(p.read_text()) for p in (tmp_path / "argv").glob("*.json")]
    envs = [r["env"] for r in runs if "-p" in r["argv"]]
    assert len(envs) == 1
    assert not set(master) & set(envs[0]), sorted(set(master) & set(envs[0]))
    assert envs[0]["MY_OWN_SETTING"] == "kept" and envs[0]["CLAUDE_CONFIG_DIR"] == str(tmp_path / "config")
