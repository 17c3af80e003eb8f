"""`make demo` end to end: three agents and a resume on the real CLI, offline."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_passes_without_touching_home(tmp_path, real_cli):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE", "ORCHESTRATOR_"))}
    env["HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "claude_orchestrator.devtools.demo"], env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("completed") >= 6
    assert "including the first run's task and tool result" in done.stdout
    assert "demo passed" in done.stdout
    assert not (home / ".claude").exists(), "the demo must use its own CLAUDE_CONFIG_DIR"
