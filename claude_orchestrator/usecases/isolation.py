"""Isolated workspaces: a folder per agent, or a git worktree per run.

``dir``: the agent works in ``workspaces/<agent>/`` under the state root.
``worktree``: the agent works in ``workspaces/<agent>/<run_id>/``, a git
worktree of the repository at ``--cwd`` on a new branch
``orchestrator/<agent>/<run_id>`` started from that repository's HEAD, so
parallel agents never write the same tree (as Moderator and Claude Code's
own background agents do).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from ..core.errors import BadInput
from ..core.modes import user_umask
from ..core.paths import StatePaths, refuse_symlink

ISOLATIONS = ("none", "dir", "worktree")


def _git(*args: str, cwd: Path | str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(["git", *args], cwd=str(cwd), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
                              umask=user_umask())  # the worktree is the user's checkout: the user's modes
    except FileNotFoundError:
        raise BadInput("--isolation worktree needs git, which is not installed") from None
    if check and done.returncode != 0:
        raise BadInput(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def prepare(paths: StatePaths, name: str, run_id: str, isolation: str, cwd: Path) -> tuple[Path, dict[str, Any] | None]:
    """Make the agent's workspace; returns ``(working directory, worktree info or None)``.

    Args:
        isolation: ``none`` (work in ``cwd``), ``dir`` or ``worktree``.
        cwd: the caller's directory; for ``worktree``, inside the repository.

    Raises:
        BadInput: an unknown isolation, or ``cwd`` is not in a git repository
            with at least one commit.
    """
    if isolation == "none":
        return cwd, None
    if isolation == "dir":
        work = paths.workspace(name)
        refuse_symlink(work)
        work.mkdir(parents=True, exist_ok=True)
        return work, None
    if isolation != "worktree":
        raise BadInput(f"unknown isolation {isolation!r}; use one of {', '.join(ISOLATIONS)}")
    top = _git("rev-parse", "--show-toplevel", cwd=cwd, check=False)
    if top.returncode != 0:
        raise BadInput(f"--isolation worktree: {cwd} is not inside a git repository; give --cwd a repository")
    repo = Path(top.stdout.strip())
    head = _git("rev-parse", "--verify", "HEAD", cwd=repo, check=False)
    if head.returncode != 0:
        raise BadInput(f"--isolation worktree: {repo} has no commit yet to branch from")
    base_branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=repo).stdout.strip()
    branch = f"orchestrator/{name}/{run_id}"
    work = paths.workspace(name) / run_id
    refuse_symlink(work.parent)
    work.parent.mkdir(parents=True, exist_ok=True)
    _git("worktree", "add", "-q", "-b", branch, str(work), "HEAD", cwd=repo)
    info = {"path": str(work), "branch": branch, "repo": str(repo), "base_commit": head.stdout.strip(), "base_branch": base_branch}
    # Work in the same place inside the tree as the caller (e.g. a package folder).
    rel = Path(cwd).resolve().relative_to(repo.resolve()) if Path(cwd).resolve() != repo.resolve() else Path()
    return (work / rel if (work / rel).is_dir() else work), info


def worktree_state(info: dict[str, Any]) -> tuple[list[str], int]:
    """``(uncommitted paths, commits on the branch not in its base)`` of a worktree."""
    path = Path(info["path"])
    dirty = []
    if path.is_dir():
        status = _git("status", "--porcelain", cwd=path, check=False)
        dirty = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    # Commits not in the base branch as it is now (so merged work counts as safe),
    # or, for a detached base, not in the commit the branch started from.
    base = info.get("base_branch") if info.get("base_branch") not in (None, "", "HEAD") else info["base_commit"]
    ahead = _git("rev-list", "--count", f"{base}..{info['branch']}", cwd=info["repo"], check=False)
    commits = int(ahead.stdout.strip() or 0) if ahead.returncode == 0 else 0
    return dirty, commits


def remove_worktree(info: dict[str, Any]) -> None:
    """Remove a run's worktree and delete its branch, whatever they hold.

    Callers check :func:`worktree_state` first when work must not be lost.
    """
    repo = info["repo"]
    if not Path(repo).is_dir():
        return
    if Path(info["path"]).exists():
        _git("worktree", "remove", "--force", info["path"], cwd=repo, check=False)
    _git("worktree", "prune", cwd=repo, check=False)
    _git("branch", "-D", info["branch"], cwd=repo, check=False)
