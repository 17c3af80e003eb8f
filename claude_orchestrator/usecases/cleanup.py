"""Clearing agents: archive (or delete) their status, session and output files."""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

from ..core.errors import BadRecord, Conflict, NotFound, StorageError
from ..core.paths import NAME_RE, StatePaths, validate_name
from ..core.programs import command
from ..core.states import State
from ..records.status_record import RecordStore
from .control import hook_running, read_records, stop, stop_unreadable, unreadable_alive
from .isolation import remove_worktree, worktree_state


def agents_with_files(paths: StatePaths) -> list[str]:
    """Every agent that has any file in the state root (record, session, output, runs)."""
    names = set(paths.known_agents())
    if paths.sessions_dir.is_dir():
        names |= {p.name[: -len("_session.txt")] for p in paths.sessions_dir.glob("*_session.txt")}
    if paths.outputs_dir.is_dir():
        for p in paths.outputs_dir.iterdir():  # a symlink counts as the entry it is, whatever it points to
            if p.name.endswith("_latest.txt") and (p.is_symlink() or p.is_file()):
                names.add(p.name[: -len("_latest.txt")])
            elif p != paths.archive_dir and (p.is_symlink() or p.is_dir()):
                names.add(p.name)
    return sorted(n for n in names if NAME_RE.fullmatch(n) and n.lower() != "archive")


def new_archive_dir(paths: StatePaths) -> Path:
    """A fresh ``outputs/archive/<UTC timestamp>[-N]/`` folder (created).

    Raises:
        StorageError: ``outputs/archive`` is a symlink (archiving must not
            leave the state root) or cannot be made.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if paths.archive_dir.is_symlink():
        raise StorageError(paths.archive_dir, OSError(errno.ELOOP, "it is a symlink; remove it (the archive stays inside the state root)"))
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
    store = RecordStore(paths)
    targets = _targets(paths, names)
    with_records = [n for n in targets if paths.status(n).exists()]
    unreadable: list[BadRecord] = []
    records = read_records(store, with_records, unreadable=unreadable)
    stopped = _stop_active(store, records, unreadable, force=force, grace_s=grace_s)
    worktrees = {r.agent: r.worktree for r in records if r.worktree}
    if worktrees and not force:
        _refuse_worktrees_with_work(worktrees)
    archive = None if purge or not targets else new_archive_dir(paths)
    cleared = {name: _clear_one(store, name, worktrees.get(name), archive) for name in targets}
    return {"archive": str(archive) if archive else None, "cleared": cleared, "stopped": stopped}


def _targets(paths: StatePaths, names: list[str] | None) -> list[str]:
    """The agents to clear: ``names`` (each checked, each with files), or every agent with files.

    Raises:
        BadInput: a bad name (exit 2).  NotFound: a named agent has no file at all (exit 4).
    """
    if not names:
        return agents_with_files(paths)
    for n in names:
        validate_name(n)
    known = set(agents_with_files(paths))
    missing = [n for n in names if n not in known]
    if missing:
        raise NotFound(f"no files for agent(s): {', '.join(missing)}; see {command('check_status')}")
    return list(dict.fromkeys(names))


def _stop_active(store: RecordStore, records: list, unreadable: list[BadRecord], *, force: bool, grace_s: float | None) -> list[str]:
    """Stop the active runs among ``records`` (and the live supervisors of unreadable records, and
    the running ``--on-complete`` hooks of ended runs) if ``force``.

    A lost run's orphaned processes are stopped too: once its record is gone
    nothing would know they belong to a run.  Returns the names stopped.

    Raises:
        Conflict: one is active and ``force`` is false (exit 3); nothing is stopped.
    """
    # An unreadable record tells nothing; its executor may still know a supervisor runs it.
    running_bad = [b for b in unreadable if unreadable_alive(store, b)]
    hooked = {r.agent for r in records if hook_running(store, r)}  # an ended run whose --on-complete hook runs
    active = [f"{r.agent} ({r.status})" for r in records if r.state.is_active]
    active += [f"{r.agent} ({r.status}, its --on-complete hook running)" for r in records if r.agent in hooked]
    active += [f"{b.name} (unreadable record, supervisor alive)" for b in running_bad]
    if active and not force:
        raise Conflict(f"refusing to clear active agent(s): {', '.join(active)}; wait for them, or add --force to stop them first")
    stopped = [b.name for b in running_bad if stop_unreadable(store, b, grace_s=grace_s) == "stopped"]
    for r in records:
        if r.state.is_active or r.state is State.LOST or r.agent in hooked:
            what, _ = stop(store, r.agent, grace_s=grace_s)
            if what != "not-running":
                stopped.append(r.agent)
    return stopped


def _refuse_worktrees_with_work(worktrees: dict[str, dict]) -> None:
    """Raise :class:`Conflict` (exit 3) if a worktree holds uncommitted changes or commits outside its base."""
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


def _clear_one(store: RecordStore, name: str, worktree: dict | None, archive: Path | None) -> list[str]:
    """Remove the agent's worktree (checked, or forced) and move (or delete) its files; the paths cleared."""
    paths = store.paths
    moved = []
    files = paths.agent_files(name)
    if worktree:
        remove_worktree(worktree)
        moved.append(f"worktree {worktree['path']} and branch {worktree['branch']} (removed)")
    with store.locked(name):
        for src in files:
            if _remove_or_archive(src, paths.root, archive):
                moved.append(str(src.relative_to(paths.root)))
    return moved


def _remove_or_archive(src: Path, root: Path, archive: Path | None) -> bool:
    """Delete ``src`` (``archive`` None) or move it to the same place under ``archive``; False if it is not there.

    A symlink is removed or moved as the link it is: what it points to, in or
    out of the state root, is never touched.  A folder is deleted without
    following the symlinks inside it.

    Raises:
        StorageError: it cannot be removed or moved (read-only state root, ...) (exit 74).
    """
    try:
        if not os.path.lexists(src):
            return False
        if archive is None:
            if src.is_dir() and not src.is_symlink():
                shutil.rmtree(src)
            else:
                src.unlink()
        else:
            dest = archive / src.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(src, dest)  # within one file system; a link moves as a link
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.move(str(src), str(dest))  # another file system (outputs/ linked to another disk): copies links as links
    except OSError as exc:
        raise StorageError(exc.filename or src, exc) from exc
    return True
