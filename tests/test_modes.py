"""Who may read and write the state root (docs/files.md, "Who can read the files"; core/modes.py).

Every file the toolkit makes under the state root is 0600 and every folder 0700
(0660 and 0770 with ``ORCHESTRATOR_SHARE=group``), whatever the caller's umask;
what the toolkit starts for the user (the CLI, an ``--on-complete`` hook, git)
keeps the caller's umask.  The scripts run here as a user runs them, with the
umask 022 most systems give, and each test walks the whole state root.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AGENTS, run_cli

from claude_orchestrator.core import modes

#: The umask most systems give a user: files 0644, folders 0755 unless the toolkit says otherwise.
USER_UMASK = 0o022


def run(kit, script: str, *args: str, umask: int = USER_UMASK, **env: str) -> subprocess.CompletedProcess:
    """``agents/<script>.py ARGS`` as :meth:`conftest.Toolkit.run` runs it, under ``umask``, with ``env`` added."""
    return subprocess.run(
        [sys.executable, str(AGENTS / f"{script}.py"), *args],
        env=dict(kit.env, **env), capture_output=True, text=True, timeout=120,
        cwd=str(kit.root), stdin=subprocess.DEVNULL, umask=umask,
    )


def modes_under(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, int]]:
    """Every entry under ``root`` (not ``root`` itself; not inside ``skip``): relative path -> (kind, permission bits)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        for name in dirs + files:
            st = os.lstat(Path(folder, name))
            kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
            found[str(Path(folder, name).relative_to(root))] = (kind, stat.S_IMODE(st.st_mode))
    return found


def assert_modes(root: Path, file_mode: int, dir_mode: int, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, int]]:
    """Every file under ``root`` is ``file_mode``, every folder ``dir_mode``, nothing else is there; returns the walk."""
    found = modes_under(root, skip)
    wrong = {path: (kind, oct(mode)) for path, (kind, mode) in found.items()
             if (kind, mode) not in (("file", file_mode), ("dir", dir_mode))}
    assert not wrong, f"not {oct(file_mode)}/{oct(dir_mode)}: {wrong}"
    return found


def one_of_each(found: dict[str, tuple[str, int]], run_id: str, name: str = "a1") -> None:
    """The walk saw the files this issue is about: transcript, log, task, record, locks, session, result."""
    for path in (f"outputs/{name}/{run_id}.jsonl", f"outputs/{name}/{run_id}.log", f"outputs/{name}/{run_id}.task",
                 f"status/{name}.json", f"status/{name}.json.lock", f"status/{name}.supervisor.lock",
                 "status/.queue.lock", "status/.slots/slot-0.lock", f"sessions/{name}_session.txt",
                 f"outputs/{name}_latest.txt"):
        assert path in found, f"{path} was not made: {sorted(found)}"


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def work(tmp_path) -> Path:
    """The agents' working folder (the user's project), 0755."""
    folder = tmp_path / "work"
    folder.mkdir()
    folder.chmod(0o755)
    return folder


@pytest.mark.parametrize(("share", "file_mode", "dir_mode"), [
    (None, 0o600, 0o700), ("private", 0o600, 0o700), ("group", 0o660, 0o770),
])
def test_every_file_under_the_state_root_is_private_and_what_runs_for_the_user_keeps_its_umask(
        fake_kit, work, tmp_path, share, file_mode, dir_mode):
    env = {"ORCHESTRATOR_SHARE": share} if share else {}
    out = run(fake_kit, "launch_agent", "a1", "--cwd", str(work), "--on-complete", "touch hook.txt", "--wait", "--json", "hello", **env)
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    for script, args in (("launch_parallel", ("--names", "b1,b2", "--wait", "one", "two")),  # slots, a queue
                         ("check_status", ()), ("tail_agent", ("a1",)), ("clear_outputs", ("b1",))):  # readers; an archive
        done = run(fake_kit, script, *args, **env)
        assert done.returncode == 0, (script, done.stderr)
    found = assert_modes(fake_kit.root, file_mode, dir_mode)
    one_of_each(found, run_id)
    assert any(path.startswith("outputs/archive/") for path in found)
    # the CLI (its argv dump) and the hook (in the worker's folder) wrote with the caller's umask
    dumps = list((tmp_path / "argv").glob("*.json"))
    assert len(dumps) == 3 and {mode_of(p) for p in dumps} == {0o644}
    assert mode_of(work / "hook.txt") == 0o644
    assert json.loads(dumps[0].read_text())["env"].get("ORCHESTRATOR_CALLER_UMASK") == "0022"


def test_a_stricter_user_umask_reaches_the_cli_as_it_is(fake_kit, work, tmp_path):
    out = run(fake_kit, "launch_agent", "a1", "--cwd", str(work), "--wait", "hello", umask=0o027)
    assert out.returncode == 0, out.stderr
    (dump,) = (tmp_path / "argv").glob("*.json")
    assert mode_of(dump) == 0o640
    assert_modes(fake_kit.root, 0o600, 0o700)


def test_an_unknown_share_setting_is_refused_in_one_line_and_nothing_is_written(fake_kit):
    out = run(fake_kit, "launch_agent", "a1", "hello", ORCHESTRATOR_SHARE="world")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "ORCHESTRATOR_SHARE='world'" in out.stderr and "group" in out.stderr
    assert list(fake_kit.root.iterdir()) == []


def test_a_worktree_is_the_users_checkout_in_a_private_folder(fake_kit, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = {"cwd": repo, "check": True, "capture_output": True, "umask": USER_UMASK}
    subprocess.run(["git", "init", "-q"], **git)
    (repo / "a.txt").write_text("a")
    (repo / "a.txt").chmod(0o644)
    subprocess.run(["git", "add", "a.txt"], **git)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "a"], **git)
    out = run(fake_kit, "launch_agent", "w1", "--cwd", str(repo), "--isolation", "worktree", "--wait", "--json", "hello")
    assert out.returncode == 0, out.stderr
    tree = Path(json.loads(out.stdout).get("worktree", {}).get("path") or fake_kit.record("w1")["worktree"]["path"])
    assert mode_of(tree / "a.txt") == 0o644 and mode_of(tree) == 0o755, "git checks out with the user's umask"
    found = assert_modes(fake_kit.root, 0o600, 0o700, skip=(tree,))
    assert found["workspaces/w1"] == ("dir", 0o700)


def test_the_real_cli_writes_the_users_files_with_the_users_umask(real_kit, work):
    out = run(real_kit, "launch_agent", "r1", "--cwd", str(work), "--allowed-tools", "Bash", "--wait", "--json",
              "make it [[bash: touch made.txt]]")
    assert out.returncode == 0, out.stderr
    assert mode_of(work / "made.txt") == 0o644
    one_of_each(assert_modes(real_kit.root, 0o600, 0o700), json.loads(out.stdout)["run_id"], "r1")


def test_a_slurm_run_is_private_too(fake_kit, slurm_cluster, work, tmp_path):
    from test_slurm import wait_job_ended  # the cluster's helpers

    fake_kit.env.update(slurm_cluster.env, ORCHESTRATOR_SLURM_SETTLE="0")
    out = run(fake_kit, "launch_agent", "s1", "--executor", "slurm", "--cwd", str(work), "--json", "hello",
              ORCHESTRATOR_SHARE="group")
    assert out.returncode == 0, out.stderr
    rec = fake_kit.wait_terminal("s1")
    assert rec["status"] == "completed"
    wait_job_ended(slurm_cluster, rec["slurm_job_id"])  # its log is Slurm's --output too: written to the end
    found = assert_modes(fake_kit.root, 0o660, 0o770)
    assert any(path.endswith(".sbatch") for path in found)
    (dump,) = (tmp_path / "argv").glob("*.json")
    assert mode_of(dump) == 0o644, "the job's CLI got the launcher's caller's umask back"


# -- the module, in-process ---------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_command_run_in_process_leaves_the_umask_and_environment_as_they_were(fake_kit):
    before = _umask()
    caller = os.environ.get(modes.CALLER_UMASK_ENV)
    code, _, err = run_cli("check_status", env=fake_kit.env)
    assert (code, err) == (0, "")
    assert _umask() == before and os.environ.get(modes.CALLER_UMASK_ENV) == caller


@pytest.mark.parametrize(("share", "file_mode", "dir_mode"), [("", 0o600, 0o700), ("private", 0o600, 0o700), ("group", 0o660, 0o770)])
def test_the_modes_of_each_setting(monkeypatch, share, file_mode, dir_mode):
    monkeypatch.setenv(modes.SHARE_ENV, share)
    assert (modes.file_mode(), modes.dir_mode()) == (file_mode, dir_mode)
    assert modes.private_umask() == 0o777 & ~dir_mode


def test_a_supervisor_takes_the_callers_umask_from_its_launcher(monkeypatch):
    monkeypatch.setenv(modes.CALLER_UMASK_ENV, "0002")
    monkeypatch.setenv(modes.SHARE_ENV, "bogus")  # the launcher refused it already: private, never a crash
    before = _umask()
    undo = modes.adopt_private_umask(launched=True)
    try:
        assert _umask() == 0o077 and modes.user_umask() == 0o002
        assert modes.current_umask() == 0o077
    finally:
        undo()
    assert _umask() == before and modes.user_umask() == 0o002  # undone: the variable, as before
