"""Rough edges a new user hit in the commands (issue 19), each pinned by a test that failed before its fix.

Items: 2 (a resume from another folder does not move the agent's folder), 3 (``--claude-arg
--flag`` as the docs write it), 7 (a task that begins with ``-``), 8 (the option named is the one
typed), 9 (``$ORCHESTRATOR_PROFILES`` naming a missing file), 13 (``--json --wait`` prints the
short form), 15 (a worktree's path and branch are shown), 16 (the summary's speed-up).
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import cli_path, run_cli, version_tuple

from claude_orchestrator.commands import launch_agent, launch_parallel, render, resume_agent
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.devtools.fake_api import user_prompt
from claude_orchestrator.records.status_record import RecordStore, StatusRecord
from claude_orchestrator.usecases.launch import session_folder

#: What ``--json --wait`` prints for an ended local run: check_status.py --json's short keys (render.brief).
SHORT_KEYS = {"agent", "status", "run_id", "result", "num_turns", "cost_usd", "duration_s", "session_id", "output_file", "executor"}

# -- 2: a resume from another folder that fails does not move the agent's folder -----------------------


@pytest.fixture
def real_cli(cli_version):
    """This module's real-CLI tests run on each pinned CLI version (overrides conftest's)."""
    return cli_path(cli_version)


def _history(api, prompt: str) -> str:
    """The messages of the first request whose latest prompt is ``prompt``, as JSON text."""
    for body in api.messages_requests():
        if user_prompt(body) == prompt:
            return json.dumps(body["messages"])
    raise AssertionError(f"no request with prompt {prompt!r}")


def test_a_resume_from_another_folder_that_fails_leaves_the_agent_where_its_session_is(real_kit, cli_version, tmp_path):
    """2.1.330 and later find a session from any folder: the resume completes with the history, and the agent
    works there from then on.  Older CLIs (2.1.197) fail with "No conversation found"; that run used to store
    the other folder as the agent's, so every later plain resume failed too.  Now the plain resume goes back."""
    home, other = (tmp_path / "home-dir").resolve(), (tmp_path / "other-dir").resolve()
    home.mkdir()
    other.mkdir()
    assert real_kit.run("launch_agent", "a1", "--cwd", str(home), "--wait", "remember [[reply: the code is 4417]]").returncode == 0
    elsewhere = real_kit.run("resume_agent", "a1", "--cwd", str(other), "--wait", "from the other folder: the code?")
    rec = real_kit.record("a1")
    assert rec["cwd"] == str(other)
    if version_tuple(cli_version) >= (2, 1, 330):
        assert elsewhere.returncode == 0 and rec["status"] == "completed", elsewhere.stdout + elsewhere.stderr
        assert "the code is 4417" in _history(real_kit.api, "from the other folder: the code?")
    if version_tuple(cli_version) <= (2, 1, 197):
        assert elsewhere.returncode == 1 and "No conversation found" in rec["error"], rec
    moved = rec["status"] == "completed"  # the rest follows the outcome, whatever the version

    plain = real_kit.run("resume_agent", "a1", "--wait", "and the code again?")
    assert plain.returncode == 0, plain.stdout + plain.stderr
    rec = real_kit.record("a1")
    assert rec["status"] == "completed" and rec["cwd"] == str(other if moved else home)
    assert "the code is 4417" in _history(real_kit.api, "and the code again?")


def test_the_agents_folder_is_where_its_session_is():
    """session_folder, which resume, --session-from and --with-context-from use for an agent's folder."""
    def resumed(status: str, **options) -> StatusRecord:
        return StatusRecord.from_dict({"agent": "a1", "run_id": "r", "task": "t", "status": status, "cwd": "/b",
                                       "options": {"resume_id": "s-1", "session_cwd": "/a", **options}})

    assert session_folder(resumed("failed")) == "/a"
    assert session_folder(resumed("killed")) == "/a"
    assert session_folder(resumed("running")) == "/a", "not known to have worked there yet"
    assert session_folder(resumed("completed")) == "/b", "a resume that completed elsewhere moves the agent"
    assert session_folder(resumed("failed", fork=True)) == "/b", "a fork's session is a new one, made where it ran"
    assert session_folder(StatusRecord.from_dict({"agent": "a1", "run_id": "r", "task": "t", "status": "failed", "cwd": "/b"})) == "/b"


def test_a_failed_resume_elsewhere_leaves_forks_and_context_in_the_agents_folder(fake_kit, tmp_path):
    """--session-from and --with-context-from run where the source's session is, not where its failed resume ran."""
    home, other = (tmp_path / "home-dir").resolve(), (tmp_path / "other-dir").resolve()
    home.mkdir()
    other.mkdir()
    assert fake_kit.run("launch_agent", "src", "--cwd", str(home), "--wait", "[[fake: ok]] x").returncode == 0
    assert fake_kit.run("resume_agent", "src", "--cwd", str(other), "--wait", "[[fake: crash]] y").returncode == 1
    assert fake_kit.record("src")["cwd"] == str(other)
    assert fake_kit.record("src")["options"]["session_cwd"] == str(home)
    assert fake_kit.run("resume_agent", "fork", "--session-from", "src", "--wait", "[[fake: ok]] z").returncode == 0
    assert fake_kit.record("fork")["cwd"] == str(home)
    assert fake_kit.run("launch_agent", "ctx", "--with-context-from", "src", "--after-any", "--wait", "[[fake: ok]] w").returncode == 0
    assert fake_kit.record("ctx")["cwd"] == str(home)
    assert fake_kit.run("resume_agent", "src", "--wait", "[[fake: ok]] v").returncode == 0
    assert fake_kit.record("src")["cwd"] == str(home)


def test_a_worktree_agent_keeps_its_worktree_across_a_failed_resume_elsewhere(fake_kit, tmp_path):
    """The worktree stays the agent's (for clear_outputs.py) when a resume ran in another folder and failed:
    the plain resume after it goes back into the worktree and still knows it is one."""
    repo, other = (tmp_path / "repo").resolve(), (tmp_path / "other-dir").resolve()
    other.mkdir()
    repo.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q",
                                                 "--allow-empty", "-m", "base"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, capture_output=True, timeout=60)
    assert fake_kit.run("launch_agent", "wt", "--cwd", str(repo), "--isolation", "worktree", "--wait", "[[fake: ok]] x").returncode == 0
    worktree = fake_kit.record("wt")["worktree"]
    assert fake_kit.run("resume_agent", "wt", "--cwd", str(other), "--wait", "[[fake: crash]] y").returncode == 1
    assert fake_kit.record("wt")["worktree"] == worktree, "the agent still owns its worktree"
    assert fake_kit.run("resume_agent", "wt", "--wait", "[[fake: ok]] z").returncode == 0
    rec = fake_kit.record("wt")
    assert rec["cwd"] == worktree["path"] and rec["worktree"] == worktree and rec["isolation"] == "worktree"


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


@pytest.mark.parametrize("script", ["launch_agent", "resume_agent", "launch_parallel"])
def test_a_misspelt_option_is_named_with_the_option_meant_not_taken_for_a_task(script):
    code, out, err = run_cli(script, *(["x"] if script != "launch_parallel" else []), "--tiemout", "5", "task")
    assert (code, out) == (2, "")
    assert err == f"{script}.py: error: unknown option --tiemout; did you mean --timeout? ({script}.py --help lists them)\n"


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


# -- 13: --json --wait prints the short form ------------------------------------------------------------


def test_json_wait_prints_the_short_form_of_check_status_json(fake_kit):
    out = fake_kit.run("launch_agent", "a1", "--json", "--wait", "[[fake: ok]] hello")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\n") == 1, "one object on one line"
    short = json.loads(out.stdout)
    assert set(short) == SHORT_KEYS, "not the whole record (about 3 KB)"
    assert len(out.stdout) < 600
    listed = json.loads(fake_kit.run("check_status", "--json", "a1").stdout)
    assert short == listed[0]
    whole = json.loads(fake_kit.run("check_status", "--full", "a1").stdout)[0]
    assert whole["options"] and whole["transcript_file"], "the whole record stays reachable"

    again = fake_kit.run("resume_agent", "a1", "--json", "--wait", "[[fake: ok]] more")
    assert again.returncode == 0, again.stderr
    assert set(json.loads(again.stdout)) == SHORT_KEYS

    failed = fake_kit.run("launch_agent", "f1", "--json", "--wait", "[[fake: crash]]")
    assert failed.returncode == 1
    short = json.loads(failed.stdout)
    assert short["status"] == "failed" and short["error"] and "exit_code" not in short

    many = fake_kit.run("launch_parallel", "--json", "--wait", "--names", "p1,p2", "[[fake: ok]] one", "[[fake: ok]] two")
    assert many.returncode == 0, many.stderr
    assert [set(item) for item in json.loads(many.stdout)] == [SHORT_KEYS, SHORT_KEYS]


# -- 15: a worktree's path and branch are shown -----------------------------------------------------------


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "base"]):
        subprocess.run(["git", *args], cwd=r, check=True, capture_output=True)
    return r


def test_a_worktree_launch_shows_its_path_and_branch(fake_kit, repo):
    out = fake_kit.run("launch_agent", "w1", "--cwd", str(repo), "--isolation", "worktree", "[[fake: ok]] x")
    assert out.returncode == 0, out.stderr
    rec = fake_kit.wait_terminal("w1")
    path, branch = rec["worktree"]["path"], rec["worktree"]["branch"]
    assert branch == f"orchestrator/w1/{rec['run_id']}"
    assert f"  worktree:   {path} (branch {branch})" in out.stdout.splitlines()

    listed = json.loads(fake_kit.run("check_status", "--json", "w1").stdout)[0]
    assert listed["worktree"] == {"path": path, "branch": branch}
    plain = json.loads(fake_kit.run("check_status", "--json").stdout)
    assert "worktree" in plain[0]

    launched = fake_kit.run("launch_agent", "w2", "--cwd", str(repo), "--isolation", "worktree", "--json", "[[fake: ok]] x")
    assert launched.returncode == 0, launched.stderr
    first = json.loads(launched.stdout)
    wt = fake_kit.wait_terminal("w2")["worktree"]
    assert first["worktree"] == {"path": wt["path"], "branch": wt["branch"]}

    waited = fake_kit.run("launch_agent", "w3", "--cwd", str(repo), "--isolation", "worktree", "--wait", "[[fake: ok]] x")
    assert waited.returncode == 0, waited.stderr
    wt = fake_kit.record("w3")["worktree"]
    assert waited.stdout.splitlines()[1] == f"  worktree:   {wt['path']} (branch {wt['branch']})"
    assert json.loads(fake_kit.run("launch_agent", "w4", "--cwd", str(repo), "--isolation", "worktree", "--json", "--wait",
                                   "[[fake: ok]] x").stdout)["worktree"]["branch"].startswith("orchestrator/w4/")

    many = fake_kit.run("launch_parallel", "--names", "w5,w6", "--cwd", str(repo), "--isolation", "worktree", "[[fake: ok]] a", "[[fake: ok]] b")
    assert many.returncode == 0, many.stderr
    for name in ("w5", "w6"):
        wt = fake_kit.wait_terminal(name)["worktree"]
        assert f"  worktree:   {wt['path']} (branch {wt['branch']})" in many.stdout.splitlines()


def test_a_run_without_a_worktree_shows_none(fake_kit):
    out = fake_kit.run("launch_agent", "n1", "--wait", "[[fake: ok]] x")
    assert out.returncode == 0 and "worktree" not in out.stdout
    assert "worktree" not in json.loads(fake_kit.run("check_status", "--json").stdout)[0]


# -- 16: the summary's speed-up over batches separated by idle time ---------------------------------------

T0 = "2026-11-20T10:00:00.000Z"


def _ended(agent: str, start: str, end: str, **fields) -> StatusRecord:
    return StatusRecord.from_dict({"agent": agent, "run_id": f"r-{agent}", "task": "t", "status": "completed",
                                   "created": start, "started": start, "finished": end, **fields})


def test_busy_seconds_is_the_union_of_the_intervals():
    assert render.busy_seconds([]) == 0.0
    assert render.busy_seconds([(0, 10), (5, 12), (20, 30), (21, 22), (30, 31)]) == 23.0


def test_the_speed_up_counts_only_time_when_a_shown_run_was_running(fake_kit):
    """Two unrelated batches an hour apart, two parallel runs each: 2.0x, not the 0.05x that first start to last end gives;
    a run that was queued, then killed before it started, adds no run time."""
    store = RecordStore(StatePaths(fake_kit.root))
    for rec in (
        _ended("a1", "2026-11-20T10:00:00.000Z", "2026-11-20T10:01:00.000Z"),
        _ended("a2", "2026-11-20T10:00:00.000Z", "2026-11-20T10:01:00.000Z"),
        _ended("b1", "2026-11-20T11:00:00.000Z", "2026-11-20T11:00:30.000Z"),
        _ended("b2", "2026-11-20T11:00:00.000Z", "2026-11-20T11:00:30.000Z"),
        StatusRecord.from_dict({"agent": "q1", "run_id": "r-q1", "task": "t", "status": "killed", "created": T0,
                                "finished": "2026-11-20T11:00:30.000Z"}),
    ):
        store.write(rec)
    code, out, err = run_cli("check_status", "--summary", env=fake_kit.env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == (
        "wall time 1m30s while any ran (idle gaps left out of the 1h00m from first start to last end); "
        "sum of run times 3m00s; parallel speed-up 2.0x (sum of run times / wall time while any ran)"
    )
    rows = {line.split()[0]: line.split() for line in lines[lines.index(next(x for x in lines if x.startswith("AGENT"))) + 1:]}
    assert rows["q1"][2] == "-" and rows["a1"][2] == "1m00s" and rows["TOTAL"][1] == "3m00s"


def test_the_speed_up_is_never_below_one():
    """One run alone, and runs one after another with no gap: 1.0x; overlapping runs more."""
    one = [_ended("a", "2026-11-20T10:00:00.000Z", "2026-11-20T10:00:10.000Z")]
    chain = one + [_ended("b", "2026-11-20T10:00:10.000Z", "2026-11-20T10:00:20.000Z")]
    for recs in (one, chain):
        f = render.summary_figures(recs, now=0.0)
        assert f["total_s"] == f["busy_s"] and "parallel speed-up 1.0x" in render.summary(recs, now=0.0)
