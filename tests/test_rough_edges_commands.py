"""Rough edges a new user hit in the commands (issue 19), each pinned by a test that failed before its fix.

Items: 2 (a resume from another folder does not move the agent's folder), 3 (``--claude-arg
--flag`` as the docs write it), 7 (a task that begins with ``-``), 8 (the option named is the one
typed), 9 (``$ORCHESTRATOR_PROFILES`` naming a missing file), 13 (``--json --wait`` prints the
short form), 15 (a worktree's path and branch are shown), 16 (the summary's speed-up).
"""

from __future__ import annotations

import json

import pytest

from claude_orchestrator.commands import launch_agent, launch_parallel, resume_agent
from conftest import run_cli

# -- 3: --claude-arg and --slurm-arg take a word that begins with '-' -----------------------------------

LAUNCHERS = {
    "launch_agent": (launch_agent, ["a1"], "task"),
    "resume_agent": (resume_agent, ["a1"], "task"),
    "launch_parallel": (launch_parallel, [], "tasks"),
}


@pytest.mark.parametrize("script", sorted(LAUNCHERS))
def test_verbatim_options_take_a_next_word_that_begins_with_a_dash(script):
    module, name, positional = LAUNCHERS[script]
    args = module.parse_args([
        *name, "--claude-arg", "--system-prompt-snapshot=on", "do it", "--claude-arg", "--effort", "--claude-arg", "high",
        "--claude-arg=-v", "--slurm-arg", "--hold", "--slurm-arg", "-p", "--slurm-arg", "cpu",
    ])
    assert args.claude_arg == ["--system-prompt-snapshot=on", "--effort", "high", "-v"]
    assert args.slurm_arg == ["--hold", "-p", "cpu"]
    assert getattr(args, positional) == ["do it"]


@pytest.mark.parametrize("script", sorted(LAUNCHERS))
def test_a_verbatim_option_never_takes_the_double_dash(script):
    """``--claude-arg --`` is not a value: what follows ``--`` stays the task, and the option lacks one (exit 2)."""
    _, name, _ = LAUNCHERS[script]
    code, out, err = run_cli(script, *name, "--claude-arg", "--", "-v")
    assert code == 2 and out == ""
    assert "argument --claude-arg: expected one argument" in err
    module, _, positional = LAUNCHERS[script]
    args = module.parse_args([*name, "--claude-arg", "-x", "--", "--claude-arg", "y"])
    assert args.claude_arg == ["-x"] and getattr(args, positional) == ["--claude-arg", "y"]


def test_the_documented_claude_arg_form_reaches_the_cli(fake_kit, tmp_path):
    """README's ``--claude-arg --system-prompt-snapshot=on`` was refused ("expected one argument")."""
    out = fake_kit.run("launch_agent", "a1", "--claude-arg", "--system-prompt-snapshot=on", "--claude-arg", "--effort",
                       "--claude-arg", "high", "--wait", "[[fake: ok]] x")
    assert out.returncode == 0, out.stderr
    (dump,) = (tmp_path / "argv").glob("*.json")
    argv = json.loads(dump.read_text())["argv"]
    assert "--system-prompt-snapshot=on" in argv
    assert argv[argv.index("--effort") + 1] == "high"


# -- 7: a task that begins with '-' ---------------------------------------------------------------------


@pytest.mark.parametrize(("script", "words", "example"), [
    ("launch_agent", ["x", "-v"], 'launch_agent.py x -- "-v"'),
    ("resume_agent", ["x", "-v"], 'resume_agent.py x -- "-v"'),
    ("launch_parallel", ["-v"], 'launch_parallel.py -- "-v"'),
])
def test_a_task_that_begins_with_a_dash_gets_one_line_saying_to_put_it_after_double_dash(script, words, example):
    code, out, err = run_cli(script, *words)
    assert (code, out) == (2, "")
    assert err == f"{script}.py: error: unknown option -v; a task that begins with '-' goes after '--': {example}\n"


def test_the_hinted_form_of_a_dash_task_is_accepted():
    args = launch_agent.parse_args(["x", "--", "-v"])
    assert (args.name, args.task) == ("x", ["-v"])


def test_a_script_without_tasks_keeps_argparses_usage_error():
    code, out, err = run_cli("check_status", "-v")
    assert code == 2 and err.startswith("usage: check_status.py") and "unrecognized arguments: -v" in err


# -- 8: the option named is the one typed ----------------------------------------------------------------


def test_with_context_from_an_unknown_agent_names_with_context_from(fake_kit):
    code, out, err = run_cli("launch_agent", "b", "--with-context-from", "nobody", "go on", env=fake_kit.env)
    assert (code, out) == (4, "")
    assert "--with-context-from nobody: no such agent" in err and "--after" not in err
    code, _, err = run_cli("launch_agent", "b", "--after", "nobody", "go on", env=fake_kit.env)
    assert code == 4 and "--after nobody: no such agent" in err


# -- 9: $ORCHESTRATOR_PROFILES naming a missing file ------------------------------------------------------


def test_a_missing_profiles_file_named_by_the_environment_is_said_so(fake_kit, tmp_path):
    """Exit 2: a bad profiles file is bad input in the exit-code table; 4 is a --profile the file lacks."""
    missing = tmp_path / "nowhere" / "profiles.toml"
    fake_kit.env["ORCHESTRATOR_PROFILES"] = str(missing)
    code, out, err = run_cli("launch_agent", "p1", "--profile", "reviewer", "x", env=fake_kit.env)
    assert (code, out) == (2, "")
    assert f"ORCHESTRATOR_PROFILES names {missing}, which does not exist" in err and "known: none" not in err
    out = fake_kit.run("launch_parallel", "--from-delegations", "-", "--dry-run", input="**QA**: check it\n")
    assert out.returncode == 2 and "which does not exist" in out.stderr, "a role's profile is looked up in that file too"
    assert fake_kit.record("p1") is None


def test_a_profile_missing_from_an_existing_file_is_still_not_found(fake_kit, tmp_path):
    profiles = tmp_path / "profiles.toml"
    profiles.write_text('[profiles.tester]\nmodel = "sonnet"\n')
    fake_kit.env["ORCHESTRATOR_PROFILES"] = str(profiles)
    code, _, err = run_cli("launch_agent", "p1", "--profile", "reviewer", "x", env=fake_kit.env)
    assert code == 4 and "no profile 'reviewer'" in err and "known: tester" in err
