"""What the installed CLI supports: parsed from its own --help, cached per binary, used in the argv."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import CLI_VERSIONS, cli_path

from claude_orchestrator.claude_cli import ClaudeOptions, build_argv
from claude_orchestrator.cli_features import CliFeatures, cached_features, detect_features, parse_help
from claude_orchestrator.paths import StatePaths


@pytest.mark.parametrize("version", CLI_VERSIONS)
def test_parse_help_of_each_real_cli(version, tmp_path):
    env = dict(os.environ, HOME=str(tmp_path), CLAUDE_CONFIG_DIR=str(tmp_path / "config"))  # never the user's ~/.claude
    text = subprocess.run([str(cli_path(version)), "--help"], capture_output=True, text=True, timeout=60, env=env).stdout
    options, modes = parse_help(text)
    assert {"--print", "--resume", "--session-id", "--fork-session", "--append-system-prompt", "--permission-mode"} <= options
    assert "acceptEdits" in modes and "plan" in modes
    if version == "2.1.197":
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


def test_argv_gets_snapshot_off_only_from_a_cli_that_has_it():
    new = CliFeatures("2.1.330", frozenset({"--system-prompt-snapshot"}), ("manual",))
    opts = ClaudeOptions(permission_mode="default")
    argv = build_argv("/c", opts, "task", "S", resume_id="S", features=new)
    assert argv[argv.index("--system-prompt-snapshot") + 1] == "off" and argv[-2:] == ["--", "task"]
    assert argv[argv.index("--permission-mode") + 1] == "manual"
    assert "--system-prompt-snapshot" not in build_argv("/c", opts, "task", "S", features=CliFeatures("2.1.197", frozenset({"--model"})))
    assert "--system-prompt-snapshot" not in build_argv("/c", opts, "task", "S")
    mine = ClaudeOptions(claude_args=["--system-prompt-snapshot=on"])
    argv = build_argv("/c", mine, "task", "S", features=new)
    assert argv.count("--system-prompt-snapshot") == 0 and "--system-prompt-snapshot=on" in argv, "the user's own choice wins"


def test_detection_runs_once_per_binary_and_again_after_an_upgrade(tmp_path):
    calls = tmp_path / "calls"
    exe = tmp_path / "claude"
    exe.write_text(
        "#!/bin/sh\n"
        f"echo \"$1\" >> {calls}\n"
        "if [ \"$1\" = --version ]; then echo '9.9.9 (Claude Code)'; exit 0; fi\n"
        "printf '  --print   p\\n  --system-prompt-snapshot <on|off>  s\\n  --permission-mode <m>  (choices: \"a\", \"b\")\\n'\n"
    )
    exe.chmod(0o755)
    paths = StatePaths(tmp_path / "root")
    assert cached_features(paths, str(exe)) is None
    first = detect_features(paths, str(exe))
    assert first.version == "9.9.9 (Claude Code)" and first.system_prompt_snapshot and first.permission_modes == ("a", "b")
    assert detect_features(paths, str(exe)) == first and cached_features(paths, str(exe)) == first
    assert calls.read_text().split() == ["--version", "--help"], "the second detection read the cache"
    exe.write_text(exe.read_text() + "# upgraded\n")
    os.utime(exe, ns=(1, 1))
    detect_features(paths, str(exe))
    assert calls.read_text().split() == ["--version", "--help"] * 2, "a changed binary is detected again"


def test_a_cli_whose_help_fails_or_a_bad_cache_entry_means_unknown_features(tmp_path):
    exe = tmp_path / "claude"
    exe.write_text("#!/bin/sh\nexit 3\n")
    exe.chmod(0o755)
    paths = StatePaths(tmp_path / "root")
    assert detect_features(paths, str(exe)) == CliFeatures()
    for entry in (paths.status_dir / ".cli").glob("*.json"):
        entry.write_text('{"version": 5, "options": "x"}')
    assert cached_features(paths, str(exe)) is None
    assert detect_features(paths, "/nonexistent/claude") == CliFeatures()
