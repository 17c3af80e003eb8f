"""Workflows: delegations parsed from PM text, profiles, and launching from them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from claude_orchestrator.core.errors import BadInput
from claude_orchestrator.usecases.delegation import agent_names, parse_delegations
from claude_orchestrator.usecases.profiles import find_profile, load_profiles

DATA = Path(__file__).parent / "data" / "delegations"

EXPECTED = {
    "bold_agent.md": [("Engineer Agent", "Implement the cache\nwith TTL support.", "bold")],
    "bold_role.md": [("QA", "Test the cache.", "bold"), ("QA", "And the eviction.", "bold")],
    "task_call.md": [
        ("Engineer", "Fix the flaky test", "task-call"),
        ("Documentation", "Write the docs\nfor the cache module", "task-call"),
    ],
    "task_tool.md": [
        ("Documentation Agent", "Document the ttl parameter.", "task-tool"),
        ("Research Agent", "Find prior art\nin other caches.", "task-tool"),
    ],
    "delegate_to.md": [("Reviewer", "Review the diff.", "delegate-to"), ("QA", "Re-run the suite.", "delegate-to")],
    "arrow.md": [("Engineer", "Fix the bug", "arrow"), ("QA", "Verify the fix", "arrow")],
    "bracket.md": [("Engineer", "Add the flag", "bracket"), ("QA", "Test the flag\nincluding the error path", "bracket")],
    "none.md": [],
}


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_each_delegation_pattern_parses(fixture):
    found = parse_delegations((DATA / fixture).read_text())
    assert [(d.role, d.task, d.pattern) for d in found] == EXPECTED[fixture]


def test_a_task_ends_at_a_blank_line_or_the_next_delegation():
    text = "**Engineer**: one\ntwo\n\nnot part of it\n**QA**: three\n→ Docs: four"
    assert [d.task for d in parse_delegations(text)] == ["one\ntwo", "three", "four"]


def test_profiles_widen_the_label_forms():
    assert parse_delegations("**Cache Wizard**: tune it") == []
    found = parse_delegations("**Cache Wizard**: tune it", known_roles={"cache-wizard"})
    assert [d.role for d in found] == ["Cache Wizard"]


def test_agent_names_are_unique():
    assert agent_names(["Engineer Agent", "QA", "engineer", "Engineer Agent", "Data/ML"]) == [
        "engineer", "qa", "engineer-2", "engineer-3", "data-ml"
    ]


def test_shipped_profiles_load_and_match_roles():
    profiles = load_profiles()
    assert {"engineer", "qa", "docs", "research", "reviewer"} <= set(profiles)
    assert find_profile(profiles, "Documentation Agent") == "docs"
    assert find_profile(profiles, "QA") == "qa"
    assert find_profile(profiles, "ENGINEER agent") == "engineer"
    assert find_profile(profiles, "Product Manager") is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[profiles.x]\nmodle = 'sonnet'\n", "unknown key 'modle'"),
        ("[profiles.x]\ntimeout = 'long'\n", "timeout must be"),
        ("[profiles.x]\nisolation = 'docker'\n", "isolation must be one of"),
        ("[profiles.x\nmodel = 1\n", "line 1"),
        ("[profiles.x]\nmodel = 'a'\nmodel = 'b'\n", "line 3"),
    ],
)
def test_a_bad_profiles_file_names_the_key_or_line(tmp_path, toml, message):
    f = tmp_path / "profiles.toml"
    f.write_text(toml)
    with pytest.raises(BadInput, match=message):
        load_profiles(f)


def test_profile_applies_and_flags_override(fake_kit, tmp_path):
    prof = tmp_path / "profiles.toml"
    (tmp_path / "prompt.md").write_text("You test things.")
    prof.write_text(
        "[profiles.tester]\nmodel = 'haiku'\nappend_system_prompt_file = 'prompt.md'\nallowed_tools = 'Read'\n"
        "max_turns = 7\ntimeout = 99\nclaude_args = ['--effort', 'low']\n"
    )
    fake_kit.env["ORCHESTRATOR_PROFILES"] = str(prof)
    out = fake_kit.run("launch_agent", "t1", "--profile", "tester", "--model", "sonnet", "--wait", "--json", "go")
    assert out.returncode == 0, out.stderr
    rec = fake_kit.record("t1")  # --json --wait prints the short form; the record has the rest
    assert rec["options"]["profile"] == "tester" and rec["options"]["limits"]["timeout_s"] == 99
    (dump,) = (tmp_path / "argv").glob("*.json")
    argv = json.loads(dump.read_text())["argv"]
    assert argv[argv.index("--model") + 1] == "sonnet", "the explicit flag wins"
    assert argv[argv.index("--append-system-prompt") + 1] == "You test things."
    assert argv[argv.index("--max-turns") + 1] == "7"
    assert argv[argv.index("--effort") + 1] == "low"
    missing = fake_kit.run("launch_agent", "t2", "--profile", "nobody", "go")
    assert missing.returncode == 4 and "tester" in missing.stderr


def test_delegations_dry_run_then_launch(fake_kit, tmp_path):
    pm = tmp_path / "pm.md"
    pm.write_text(
        "Here is the plan; the **Engineer** leads.\n\n"
        "**Engineer Agent**: Add TTL expiry\nto the cache.\n"
        "**QA**: Test TTL expiry.\n"
        "→ Engineer: Update the changelog.\n"
    )
    dry = fake_kit.run("launch_parallel", "--from-delegations", str(pm), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert [(p["agent"], p["profile"]) for p in plan] == [("engineer", "engineer"), ("qa", "qa"), ("engineer-2", "engineer")]
    assert plan[0]["task"] == "Add TTL expiry\nto the cache."
    assert plan[0]["options"]["allowed_tools"] and plan[1]["limits"]["timeout_s"] == 1200
    assert not (fake_kit.root / "status").exists() or not list((fake_kit.root / "status").glob("*.json")), "a dry run launches nothing"

    out = fake_kit.run("launch_parallel", "--from-delegations", "-", "--wait", "--json", "--max-turns", "5", input=pm.read_text())
    assert out.returncode == 0, out.stderr
    recs = json.loads(out.stdout)
    assert [r["agent"] for r in recs] == ["engineer", "qa", "engineer-2"]
    assert all(r["status"] == "completed" for r in recs)
    assert fake_kit.record("engineer")["options"]["claude"]["max_turns"] == 5, "a flag overrides the profile's max_turns"
    none = fake_kit.run("launch_parallel", "--from-delegations", "-", input="**Note:** nothing here\n")
    assert none.returncode == 2 and "no delegations found" in none.stderr


# -- isolation ------------------------------------------------------------------

import subprocess  # noqa: E402


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "repo"
    r.mkdir()
    _git("init", "-q", "-b", "main", cwd=r)
    (r / "README").write_text("base\n")
    _git("add", ".", cwd=r)
    _git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base", cwd=r)
    return r


def test_dir_isolation_works_in_its_own_folder(fake_kit):
    out = fake_kit.run("launch_agent", "d1", "--isolation", "dir", "x", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    assert fake_kit.record("d1")["cwd"] == str((fake_kit.root / "workspaces" / "d1").resolve())
    assert fake_kit.run("clear_outputs", "d1").returncode == 0
    assert not (fake_kit.root / "workspaces" / "d1").exists()


def test_worktree_agents_on_the_real_cli_write_on_their_own_branches(real_kit, repo):
    commit = "git -c user.name=agent -c user.email=agent@example.com commit -qm"
    tasks = [f"write {n} [[bash: echo {n} > {n}.txt && git add {n}.txt && {commit} {n}]]" for n in ("left", "right")]
    out = real_kit.run("launch_parallel", "--names", "left,right", "--cwd", str(repo), "--isolation", "worktree",
                       "--allowed-tools", "Bash", "--json", *tasks)
    assert out.returncode == 0, out.stderr
    recs = [real_kit.wait_terminal(n, timeout=90) for n in ("left", "right")]
    assert [r["status"] for r in recs] == ["completed", "completed"]
    for name, rec in zip(("left", "right"), recs, strict=True):
        wt = rec["worktree"]
        assert wt["branch"] == f"orchestrator/{name}/{rec['run_id']}" and rec["cwd"] == wt["path"]
        assert _git("show", f"{wt['branch']}:{name}.txt", cwd=repo) == f"{name}\n"
        other = "right" if name == "left" else "left"
        assert f"{other}.txt" not in _git("ls-tree", "--name-only", wt["branch"], cwd=repo)
    assert _git("status", "--porcelain", cwd=repo) == "", "the caller's tree is untouched"
    assert sorted(p.name for p in repo.iterdir()) == [".git", "README"]

    refused = real_kit.run("clear_outputs", "left")
    assert refused.returncode == 3 and "1 commit(s)" in refused.stderr
    assert real_kit.record("left") is not None and Path(recs[0]["worktree"]["path"]).is_dir()
    forced = real_kit.run("clear_outputs", "left", "right", "--force")
    assert forced.returncode == 0, forced.stderr
    assert "orchestrator/" not in _git("branch", cwd=repo)
    assert _git("worktree", "list", cwd=repo).count("\n") == 1


def test_clear_removes_a_clean_worktree_and_refuses_uncommitted_changes(fake_kit, repo, tmp_path):
    assert fake_kit.run("launch_agent", "clean", "--cwd", str(repo), "--isolation", "worktree", "x", "--wait").returncode == 0
    wt = fake_kit.record("clean")["worktree"]
    assert fake_kit.run("clear_outputs", "clean").returncode == 0
    assert not Path(wt["path"]).exists() and wt["branch"] not in _git("branch", cwd=repo)

    assert fake_kit.run("launch_agent", "dirty", "--cwd", str(repo), "--isolation", "worktree", "x", "--wait").returncode == 0
    wt = fake_kit.record("dirty")["worktree"]
    (Path(wt["path"]) / "scratch.txt").write_text("unsaved work")
    refused = fake_kit.run("clear_outputs", "dirty")
    assert refused.returncode == 3 and "uncommitted" in refused.stderr
    assert (Path(wt["path"]) / "scratch.txt").exists()
    assert fake_kit.run("clear_outputs", "dirty", "--force").returncode == 0
    assert not Path(wt["path"]).exists()


def test_worktree_needs_a_repository(fake_kit, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    out = fake_kit.run("launch_agent", "w1", "--cwd", str(plain), "--isolation", "worktree", "x")
    assert out.returncode == 2 and "not inside a git repository" in out.stderr
    assert fake_kit.record("w1") is None


# -- dependencies ---------------------------------------------------------------


def test_b_with_context_from_a_starts_after_a_and_carries_its_messages(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    gate = work / "gate"  # A's tool call waits for it: A runs until B has been launched
    task = "analyse [[bash: until test -e gate; do sleep 0.1; done; echo the plan is to add a cache]]"
    a = real_kit.run("launch_agent", "analyst", "--cwd", str(work), "--allowed-tools", "Bash", task)
    assert a.returncode == 0, a.stderr
    try:
        b = real_kit.run("launch_agent", "impl", "--with-context-from", "analyst", "--json", "implement the plan")
        assert b.returncode == 0, b.stderr
        assert json.loads(b.stdout)["status"] == "waiting", "the launch returns at once, B waiting for A"
        assert real_kit.record("analyst")["status"] in ("starting", "running")
        assert real_kit.record("impl")["status"] == "waiting"
    finally:
        gate.write_text("go")
    recs = {n: real_kit.wait_terminal(n, timeout=90) for n in ("analyst", "impl")}
    assert recs["analyst"]["status"] == "completed" and recs["impl"]["status"] == "completed"
    impl = recs["impl"]
    assert impl["forked_from"] == "analyst" and impl["resumed_from"] == recs["analyst"]["session_id"]
    assert impl["cwd"] == recs["analyst"]["cwd"] and impl["session_id"] != recs["analyst"]["session_id"]
    first = next(r for r in real_kit.api.requests if r["path"].startswith("/v1/messages") and "implement the plan" in json.dumps(r["body"]))
    assert "the plan is to add a cache" in json.dumps(first["body"]["messages"]), "B's first request carries A's messages"
    from claude_orchestrator.records.shape import parse_time

    assert first["time"] >= parse_time(recs["analyst"]["finished"]) - 0.01, "B started only after A ended"


def test_a_failed_dependency_skips_and_after_any_does_not(fake_kit, tmp_path):
    # a's CLI crashes, but only once the test opens the gate: a waits for g, whose run waits for the gate file
    gate = tmp_path / "gate"
    assert fake_kit.run("launch_agent", "g", f"[[fake: until:{gate}]]").returncode == 0
    assert fake_kit.run("launch_agent", "a", "--after", "g", "[[fake: crash]]").returncode == 0
    assert fake_kit.run("launch_agent", "b", "--after", "a", "never runs").returncode == 0
    assert fake_kit.run("launch_agent", "c", "--after", "a", "--after-any", "runs anyway").returncode == 0
    assert "waiting (a)" in fake_kit.run("check_status").stdout
    gate.write_text("go")
    out = fake_kit.run("wait_agents", "a", "b", "c")
    assert out.returncode == 1
    assert fake_kit.record("b")["status"] == "skipped" and "a failed" in fake_kit.record("b")["error"]
    assert fake_kit.record("a")["status"] == "failed"
    assert fake_kit.record("c")["status"] == "completed"
    assert fake_kit.run("launch_agent", "d", "--after", "ghost", "x").returncode == 4
    assert run_cli("launch_agent", "e", "--after", "e", "x", env=fake_kit.env)[0] == 2


def test_a_waiting_agent_can_be_killed(fake_kit):
    assert fake_kit.run("launch_agent", "a", "[[fake: hang]]").returncode == 0
    assert fake_kit.run("launch_agent", "b", "--after", "a", "x").returncode == 0
    assert fake_kit.run("kill_agent", "b").returncode == 0
    assert fake_kit.record("b")["status"] == "killed"
    assert fake_kit.run("kill_agent", "a", "--grace", "1").returncode == 0


# -- budgets --------------------------------------------------------------------


def test_total_budget_is_split_and_summarised(fake_kit, tmp_path):
    out = fake_kit.run("launch_parallel", "--total-budget-usd", "0.9", "one", "two", "three", "--wait", "--json")
    assert out.returncode == 0, out.stderr
    names = [r["agent"] for r in json.loads(out.stdout)]
    assert [fake_kit.record(n)["options"]["claude"]["max_budget_usd"] for n in names] == [0.3, 0.3, 0.3]
    argvs = [json.loads(p.read_text())["argv"] for p in (tmp_path / "argv").glob("*.json")]
    assert len(argvs) == 3, f"the fake claude wrote {len(argvs)} argv files, not one per agent"
    assert all(a[a.index("--max-budget-usd") + 1] == "0.3" for a in argvs)
    summary = fake_kit.run("check_status", "--summary").stdout
    assert "budget $0.9000 over 3 agent(s): spent $0.0030 (0%)" in summary
    assert run_cli("launch_parallel", "--total-budget-usd", "1", "--max-budget-usd", "1", "x", env=fake_kit.env)[0] == 2


def test_a_merged_worktree_clears_and_a_resumed_one_is_still_known(fake_kit, repo):
    assert fake_kit.run("launch_agent", "m", "--cwd", str(repo), "--isolation", "worktree", "x", "--wait").returncode == 0
    wt = fake_kit.record("m")["worktree"]
    (Path(wt["path"]) / "m.txt").write_text("work\n")
    _git("add", "m.txt", cwd=wt["path"])
    _git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "m", cwd=wt["path"])
    assert fake_kit.run("resume_agent", "m", "more", "--wait").returncode == 0
    assert fake_kit.record("m")["worktree"] == wt, "a resume keeps knowing its worktree"
    assert fake_kit.run("clear_outputs", "m").returncode == 3, "unmerged work is kept"
    _git("merge", "-q", "--ff-only", wt["branch"], cwd=repo)
    assert fake_kit.run("clear_outputs", "m").returncode == 0, "merged work is safe to clear"
    assert not Path(wt["path"]).exists()


def test_context_from_refuses_another_directory(fake_kit, tmp_path):
    assert fake_kit.run("launch_agent", "a", "x", "--wait").returncode == 0
    assert run_cli("launch_agent", "b", "--with-context-from", "a", "--isolation", "dir", "y", env=fake_kit.env)[0] == 2
    other = tmp_path / "other"
    other.mkdir()
    code, _, err = run_cli("launch_agent", "b", "--with-context-from", "a", "--cwd", str(other), "y", env=fake_kit.env)
    assert code == 2 and "sessions per directory" in err
    assert fake_kit.record("b") is None
