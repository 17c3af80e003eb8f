"""The state root read for the console and the report: the board (every agent as JSON-ready data) and one agent's page.

Everything here is read from files an agent or a supervisor wrote, so it is
untrusted input: names are validated before they touch a path, paths come from
:class:`..core.paths.StatePaths` (never from a record's own ``*_file`` keys),
symlinks are not followed out of the state root, and files are read up to a
size.  The shapes are in docs/web.md (:func:`..usecases.board.agent_row` for an agent).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from ..claude import transcript_view
from ..core.errors import BadRecord, NotFound
from ..core.locks import queue_positions
from ..core.paths import RUN_ID_RE, StatePaths, validate_name
from ..records.channel import read_json
from ..records.shape import utc_now
from ..records.status_record import RecordStore, StatusRecord
from ..usecases import board
from ..usecases.control import read_records

#: Version of the board's JSON shape.
BOARD_VERSION = 1
#: Earlier runs of one agent shown on the timeline (the newest); the rest stay on disk.
EARLIER_RUNS = 50
#: Bytes of a transcript an agent page shows at most: the end of a longer one.
TRANSCRIPT_MAX_BYTES = 4 << 20
#: Bytes of the result an agent page shows at most.
RESULT_MAX_BYTES = 1 << 20
#: Seconds ``git diff --stat`` may take for a worktree's diff stat.
GIT_TIMEOUT_S = 10.0


def _read_capped(path: Path, limit: int, tail: bool = False) -> tuple[bytes, bool] | None:
    """Up to ``limit`` bytes of a regular file that is not a symlink (its end with ``tail``); ``(data, cut)``, or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):  # a regular file, not a FIFO or a device
            return None
        cut = st.st_size > limit
        if cut and tail:
            os.lseek(fd, st.st_size - limit, os.SEEK_SET)
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(limit), cut
    except OSError:
        return None
    finally:
        os.close(fd)


def earlier_runs(paths: StatePaths, name: str, limit: int = EARLIER_RUNS) -> list[StatusRecord]:
    """The last records of agent ``name``'s earlier runs (``outputs/NAME/RUN_ID.record.json``), oldest first.

    Files that are not such a record of this agent (garbled, another agent's,
    a symlink) are skipped; at most the ``limit`` newest run IDs are read.
    """
    folder = paths.run_dir(name)
    try:
        found = sorted(e.name[: -len(".record.json")] for e in os.scandir(folder) if e.name.endswith(".record.json"))
    except OSError:
        return []
    runs = []
    for run_id in found[-limit:]:
        data = read_json(folder / f"{run_id}.record.json") if RUN_ID_RE.fullmatch(run_id) else None
        try:
            rec = StatusRecord.from_dict(data) if data is not None else None
        except (ValueError, TypeError):
            continue
        if rec is not None and rec.agent == name and rec.run_id == run_id:
            runs.append(rec)
    return runs


def rows(store: RecordStore, recs: list[StatusRecord], now: float | None = None) -> list[dict[str, Any]]:
    """The console's rows of ``recs`` (:func:`..usecases.board.agent_row`), with queue places and earlier runs."""
    positions = queue_positions(store.paths) if any(str(r.status) == "queued" for r in recs) else {}
    now = time.time() if now is None else now
    return [board.agent_row(r, positions, earlier_runs(store.paths, r.agent), now) for r in recs]


def unreadable_items(bad: list[BadRecord]) -> list[dict[str, str]]:
    """``[{"name", "error"}]`` for records that cannot be read."""
    return [{"name": b.name, "error": str(b)[:500]} for b in bad]


def read_board(store: RecordStore, names: list[str] | None = None, *, live: bool = True) -> tuple[dict[str, Any], list[StatusRecord]]:
    """Every agent (or ``names``), reconciled as ``check_status.py`` does: ``(board, records)``.

    The board is ``{"version", "live", "now", "generated_at", "root", "agents", "unreadable", "totals"}``.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    bad: list[BadRecord] = []
    recs = sorted(read_records(store, names, unreadable=bad), key=lambda r: r.agent)
    now = time.time()
    data = {
        "version": BOARD_VERSION,
        "live": live,
        "now": now,
        "generated_at": utc_now(now),
        "root": str(store.paths.root),
        "agents": rows(store, recs, now),
        "unreadable": unreadable_items(bad),
        "totals": board.totals(recs, now),
    }
    return data, recs


def _kind(text: str) -> str:
    """The kind of a rendered transcript entry (:func:`..claude.transcript_view.render_event`), for styling."""
    for prefix, kind in (("── session", "session"), ("!  API retry", "retry"), ("» message", "message"), ("→ ", "tool"),
                         ("← result", "result"), ("✗ result", "error"), ("══ done", "done"), ("══ error", "error")):
        if text.startswith(prefix):
            return kind
    return "text"


def transcript_items(path: Path, limit: int = TRANSCRIPT_MAX_BYTES) -> tuple[list[dict[str, str]], bool]:
    """A transcript as ``tail_agent.py`` renders it, one ``{"kind", "text"}`` per event: ``(items, cut)``.

    Only the last ``limit`` bytes of a longer transcript are read (``cut`` is
    then True); a line that is not a JSON object is skipped.
    """
    got = _read_capped(path, limit, tail=True)
    if got is None:
        return [], False
    data, cut = got
    lines = data.split(b"\n")
    if cut:
        lines = lines[1:]  # the first is a partial line
    items = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and (text := transcript_view.render_event(event)):
            items.append({"kind": _kind(text), "text": text})
    return items, cut


def diffstat(paths: StatePaths, name: str, worktree: dict[str, Any] | None) -> str | None:
    """``git diff --stat`` of a worktree run's work against the commit its worktree started from
    (``base_commit``: committed and uncommitted changes), and how many files git does not track yet;
    None when the run has no worktree or git cannot tell.

    The record names the worktree, and a record is untrusted input: git runs only in a folder inside the
    agent's own ``workspaces/NAME/`` (where ``--isolation worktree`` makes them), with the repository's
    own commands off (``core.fsmonitor``, external diff drivers, text conversions).
    """
    if not isinstance(worktree, dict) or not isinstance(worktree.get("path"), str):
        return None
    base = worktree.get("base_commit")
    if not isinstance(base, str) or not re.fullmatch(r"[0-9a-f]{7,64}", base):
        return None
    try:
        where = Path(worktree["path"]).resolve(strict=True)
        if not where.is_relative_to(paths.workspace(name).resolve(strict=True)) or not where.is_dir():
            return None
    except (OSError, ValueError):
        return None
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(where), "-c", "core.fsmonitor=false", *args], capture_output=True, text=True,
                                  timeout=GIT_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL, errors="replace")
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    stat = git("diff", "--stat", "--no-ext-diff", "--no-textconv", base, "--")
    if stat is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=normal") or ""
    untracked = sum(1 for line in status.splitlines() if line.startswith("??"))
    text = stat.rstrip() or "no changes to tracked files"
    return text + (f"\n{untracked} untracked file{'' if untracked == 1 else 's'}" if untracked else "")


def run_output(paths: StatePaths, rec: StatusRecord, transcript_limit: int = TRANSCRIPT_MAX_BYTES) -> dict[str, Any]:
    """A run's transcript as ``tail_agent.py`` renders it (its last ``transcript_limit`` bytes) and the agent's
    result: ``{"transcript", "transcript_truncated", "result"}``, read from the state root's own layout."""
    items, cut = ([], False)
    if RUN_ID_RE.fullmatch(rec.run_id):
        items, cut = transcript_items(paths.transcript(rec.agent, rec.run_id), transcript_limit)
    result = _read_capped(paths.latest_output(rec.agent), RESULT_MAX_BYTES)
    return {"transcript": items, "transcript_truncated": cut,
            "result": result[0].decode("utf-8", "replace") if result else None}


def agent_detail(store: RecordStore, name: str) -> dict[str, Any]:
    """Agent ``name``'s page: ``{"agent", "record", "transcript", "transcript_truncated", "result", "diffstat"}``.

    Raises:
        BadInput: an invalid name (exit 2). NotFound: no such agent (exit 4).
        BadRecord: its record cannot be read (exit 2).
    """
    validate_name(name)
    recs = read_records(store, [name])
    if not recs:
        raise NotFound(f"no such agent: {name}")
    rec = recs[0]
    return {
        "agent": rows(store, [rec])[0],
        "record": rec.to_dict(),
        **run_output(store.paths, rec),
        "diffstat": diffstat(store.paths, name, rec.worktree),
    }
