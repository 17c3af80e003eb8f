"""Clearing agents: archive (or delete) their status, session and output files."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .errors import Conflict, NotFound
from .paths import NAME_RE, StatePaths, validate_name
from .record import RecordStore
from .states import State


def agents_with_files(paths: StatePaths) -> list[str]:
    """Every agent that has any file in the state root (record, session, output, runs)."""
    names = set(paths.known_agents())
    if paths.sessions_dir.is_dir():
        names |= {p.name[: -len("_session.txt")] for p in paths.sessions_dir.glob("*_session.txt")}
    if paths.outputs_dir.is_dir():
        for p in paths.outputs_dir.iterdir():
            if p.is_file() and p.name.endswith("_latest.txt"):
                names.add(p.name[: -len("_latest.txt")])
            elif p.is_dir() and p != paths.archive_dir:
                names.add(p.name)
    return sorted(n for n in names if NAME_RE.fullmatch(n) and n.lower() != "archive")


def new_archive_dir(paths: StatePaths) -> Path:
    """A fresh ``outputs/archive/<UTC timestamp>[-N]/`` folder (created)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    paths.archive_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = paths.archive_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError("could not create an archive folder")


def clear(
    paths: StatePaths,
    names: list[str] | None,
    *,
    purge: bool = False,
    force: bool = False,
    grace_s: float | None = None,
) -> dict:
    """Archive (or with ``purge`` delete) the files of ``names`` (None: every agent).

    Each agent's files move to ``outputs/archive/<timestamp>/`` keeping their
    place in the layout (``status/x.json``, ``sessions/x_session.txt``,
    ``outputs/x_latest.txt``, ``outputs/x/``).  Lock files stay.

    A run's git worktree (``--isolation worktree``) and its branch are
    removed only if they hold no uncommitted change and no commit outside
    the base; otherwise nothing is cleared (exit 3), unless ``force``.

    Returns:
        ``{"archive": str | None, "cleared": {name: [relative paths]}, "stopped": [names]}``.

    Raises:
        NotFound: a named agent has no file at all (exit 4).
        Conflict: an agent is active, or its worktree holds work, and ``force``
            is false (exit 3); nothing is cleared.

    ``grace_s`` overrides the runs' own grace period between SIGTERM and SIGKILL.
    """
    from .control import read_records, stop

    store = RecordStore(paths)
    if names:
        for n in names:
            validate_name(n)
        known = set(agents_with_files(paths))
        missing = [n for n in names if n not in known]
        if missing:
            raise NotFound(f"no files for agent(s): {', '.join(missing)}; see python3 agents/check_status.py")
        targets = list(dict.fromkeys(names))
    else:
        targets = agents_with_files(paths)

    with_records = [n for n in targets if paths.status(n).exists()]
    records = read_records(store, with_records)
    active = [r for r in records if r.state.is_active]
    stopped = []
    if active and not force:
        listed = ", ".join(f"{r.agent} ({r.status})" for r in active)
        raise Conflict(f"refusing to clear active agent(s): {listed}; wait for them, or add --force to stop them first")
    # Active runs are stopped; a lost run's orphaned processes too, since once
    # its record is gone nothing would know they belong to a run.
    for r in records:
        if r.state.is_active or r.state is State.LOST:
            what, _ = stop(store, r.agent, grace_s=grace_s)
            if what != "not-running":
                stopped.append(r.agent)

    worktrees = {r.agent: r.extra["worktree"] for r in records if r.extra.get("worktree")}
    if worktrees and not force:
        from .isolation import worktree_state

        busy = []
        for name, info in worktrees.items():
            dirty, commits = worktree_state(info)
            if dirty or commits:
                busy.append(f"{name} ({len(dirty)} uncommitted change(s), {commits} commit(s) on {info['branch']})")
        if busy:
            raise Conflict(
                f"refusing to clear agent(s) whose worktree holds work: {'; '.join(busy)}; "
                "merge or discard it, or add --force to remove it anyway"
            )
    archive = None if purge or not targets else new_archive_dir(paths)
    cleared: dict[str, list[str]] = {}
    for name in targets:
        moved = []
        files = paths.agent_files(name)
        info = worktrees.get(name)
        if info:
            from .isolation import remove_worktree

            remove_worktree(info)  # checked above, or --force
            moved.append(f"worktree {info['path']} and branch {info['branch']} (removed)")
        workspace = paths.root / "workspaces" / name
        if workspace.exists():
            files.append(workspace)
        with store.locked(name):
            for src in files:
                if not src.exists():
                    continue
                rel = src.relative_to(paths.root)
                if purge:
                    if src.is_dir():
                        shutil.rmtree(src)
                    else:
                        src.unlink()
                else:
                    dest = archive / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(src), str(dest))  # a rename within one file system
                moved.append(str(rel))
        cleared[name] = moved
    return {"archive": str(archive) if archive else None, "cleared": cleared, "stopped": stopped}
