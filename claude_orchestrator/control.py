"""Reading runs back and acting on them: liveness (``lost``), stopping, waiting.

Liveness is the supervisor's life lock (``status/<agent>.supervisor.lock``):
held while the supervisor lives, dropped by the kernel when it dies.  PIDs in
a record are used only to signal, and only together with their start times.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import locks
from .errors import BadRecord, NotFound, OrchestratorError, StorageError
from .paths import NAME_RE
from .record import RecordStore, StatusRecord, parse_time, utc_now
from .states import State

if TYPE_CHECKING:
    import psutil

# psutil (and .procs, which imports it) is imported where a process is
# looked at, not here: check_status and wait_agents read records and probe
# locks, and do not pay for it.

#: Seconds between re-reads of the records while waiting when no event came:
#: catches a supervisor that died without touching its record.
RECHECK_S = 2.0
#: ``follow`` re-reads every record (not only active and new ones) on every
#: FULL_EVERY-th periodic pass.
FULL_EVERY = 15
#: Seconds ``stop`` waits for the record once the CLI is gone and the supervisor
#: lives, before it reports the run stopped with the record still to come.
STOPPED_RECORD_WAIT_S = 2.0


def is_alive(store: RecordStore, rec: StatusRecord) -> bool:
    """True if ``rec`` is active and its supervisor still holds the agent's life lock."""
    return rec.state.is_active and locks.is_held(store.paths.alive_lock(rec.agent))


def supervisor_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live supervisor process (PID and start time checked), or None."""
    from . import procs

    return procs.find_process(rec.supervisor_pid, rec.supervisor_started)


def cli_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live CLI process (PID and start time checked), or None."""
    from . import procs

    return procs.find_process(rec.pid, rec.pid_started)


def leftover_tree(rec: StatusRecord) -> list[psutil.Process]:
    """Processes of a run whose supervisor is gone: its CLI, every descendant
    the supervisor recorded (``tree``), and the orphans of an earlier lost run
    handed to it (``orphans``) that its supervisor has not stopped yet; each
    verified by its start time."""
    from . import procs

    entries = [[rec.pid, rec.pid_started], *(rec.extra.get("tree") or []), *(rec.extra.get("orphans") or [])]
    return procs.find_entries(entries)


def reconcile(store: RecordStore, rec: StatusRecord) -> StatusRecord:
    """Mark an active record whose supervisor is gone as ``lost``, and return it.

    The check is repeated under the record's lock, so a supervisor that ends
    the run at the same moment wins.  If the state root cannot be written
    (read-only, full), the record is returned as ``lost`` without being
    stored: a reader reports the truth without needing to write it.

    Raises:
        BadRecord: the record became unreadable meanwhile.
    """
    if not rec.state.is_active or is_alive(store, rec):
        return rec

    def mutate(cur: StatusRecord | None) -> StatusRecord | None:
        if cur is None or cur.run_id != rec.run_id or not cur.state.is_active or is_alive(store, cur):
            return None
        cur.transition(
            State.LOST,
            error=f"the supervisor{f' (pid {cur.supervisor_pid})' if cur.supervisor_pid else ''} is gone; the run's outcome is unknown",
            last_activity=utc_now(),
        )
        return cur

    try:
        return store.update(rec.agent, mutate) or rec
    except StorageError:
        import copy

        return mutate(copy.deepcopy(rec)) or rec


def read_records(
    store: RecordStore,
    names: list[str] | None = None,
    newly_lost: list[StatusRecord] | None = None,
    unreadable: list[BadRecord] | None = None,
) -> list[StatusRecord]:
    """Records of ``names`` (default: every agent), reconciled.

    Records this call marked ``lost`` are also appended to ``newly_lost``.
    With ``unreadable``, a record that cannot be read is appended there and
    the others are still returned (one bad file never hides the rest);
    without it, the first one raises.

    Raises:
        NotFound: a named agent has no record (and no unreadable file).
        BadRecord: a record is unreadable and ``unreadable`` is None.
    """
    wanted = names if names else store.paths.known_agents()
    out = []
    missing = []
    for name in wanted:
        try:
            rec = store.read(name)
            if rec is None:
                missing.append(name)
                continue
            now = reconcile(store, rec)
        except BadRecord as bad:
            if unreadable is None:
                raise
            unreadable.append(bad)
            continue
        if newly_lost is not None and now.state is State.LOST and rec.state is not State.LOST:
            newly_lost.append(now)
        out.append(now)
    if missing:
        raise NotFound(f"no such agent: {', '.join(missing)} (known: {', '.join(store.paths.known_agents()) or 'none'})")
    return out


def stop(store: RecordStore, name: str, grace_s: float | None = None) -> tuple[str, StatusRecord | None]:
    """Stop agent ``name``'s run.

    An active run: SIGTERM to its supervisor, which stops the whole tree
    (SIGTERM, grace, SIGKILL) and records ``killed``; ``grace_s`` overrides the
    run's own grace period.  If the supervisor is gone or does not finish in
    time, what is left of the tree is stopped here and the record is marked
    ``killed``.  A ``lost`` run's orphaned tree is stopped; its record stays
    ``lost``.  Any other ended run is left alone.

    Returns:
        ``(what, record)``: ``what`` is ``stopped``, ``orphans-stopped`` or
        ``not-running``.

    Raises:
        NotFound: the agent has no record (exit 4).
    """
    import psutil

    from . import procs

    rec = store.read(name)
    if rec is None:
        raise NotFound(f"no such agent: {name}; see python3 agents/check_status.py")
    rec = reconcile(store, rec)
    run_grace = float((rec.options.get("limits") or {}).get("kill_grace_s", 10.0))
    grace = grace_s if grace_s is not None else run_grace
    if rec.state is State.LOST:
        left = leftover_tree(rec)
        if left:
            procs.stop_tree(left, grace_s=grace, pgid=rec.pid if cli_process(rec) else None)
            return "orphans-stopped", rec
        return "not-running", rec
    if not rec.state.is_active:
        return "not-running", rec

    if grace_s is not None:

        def ask(cur: StatusRecord | None) -> StatusRecord | None:
            if cur is None or cur.run_id != rec.run_id:
                return None
            cur.extra["stop_grace_s"] = grace_s
            return cur

        try:
            store.update(name, ask)
        except StorageError:
            pass  # a full or read-only state root: the run's own grace applies; stopping goes on
    if rec.supervisor_pid is None:
        # Launched a moment ago: the supervisor has not claimed the run yet.
        # Marked killed under the record's lock, its claim finds nothing to do
        # and it exits without starting the CLI; if it has claimed meanwhile,
        # the record now names it and it is signalled below.
        def before_claim(cur: StatusRecord | None) -> StatusRecord | None:
            if cur is None or cur.run_id != rec.run_id or cur.supervisor_pid is not None or not cur.state.is_active:
                return None
            cur.transition(State.KILLED, error="stopped by request before it started", last_activity=utc_now())
            return cur

        cur = store.update(name, before_claim)
        if cur is None or cur.run_id != rec.run_id or cur.state.is_terminal:
            if cur is not None and cur.run_id == rec.run_id and (left := leftover_tree(cur)):
                procs.stop_tree(left, grace_s=grace)  # orphans of a lost run it was handed, not yet stopped
            return "stopped", cur
        rec = cur
    sup = supervisor_process(rec)
    if sup is not None:
        try:
            sup.send_signal(signal.SIGTERM)
        except psutil.Error:
            sup = None
    deadline = time.monotonic() + grace + 5.0
    cli_gone_at: float | None = None
    cur = rec
    while sup is not None and time.monotonic() < deadline:
        try:
            cur = store.read(name) or cur
        except BadRecord:
            pass  # damaged meanwhile: the supervisor rewrites it from its copy
        if cur.run_id != rec.run_id or cur.state.is_terminal:
            return "stopped", cur
        if cli_process(cur) is None:
            if not sup.is_running():
                break
            # The supervisor has stopped the tree; its record normally follows at once.  If it
            # cannot be written (full or read-only state root) the supervisor keeps retrying:
            # it is doing its job, so it is left alone.
            cli_gone_at = cli_gone_at or time.monotonic()
            if time.monotonic() - cli_gone_at > STOPPED_RECORD_WAIT_S:
                return "stopped", cur
        time.sleep(0.05)
    # The supervisor is gone, or stuck with its CLI alive: stop what is left ourselves.
    try:
        cur = store.read(name) or cur
    except BadRecord:
        pass
    cli = cli_process(cur)
    stuck = supervisor_process(cur) if cli is not None else None
    left = leftover_tree(cur) + ([stuck] if stuck else [])
    if left:
        procs.stop_tree(left, grace_s=grace, pgid=cur.pid if cli is not None else None)

    def mutate(c: StatusRecord | None) -> StatusRecord | None:
        if c is None or c.run_id != rec.run_id or c.state.is_terminal:
            return None
        c.transition(State.KILLED, error="stopped by request (the supervisor did not respond)", last_activity=utc_now())
        return c

    return "stopped", store.update(name, mutate)


def new_changes(recs: list[StatusRecord], seen: dict[str, tuple[str, str]]) -> list[tuple[StatusRecord, str | None]]:
    """The records whose run or status differs from ``seen`` (which is updated), oldest change first.

    Args:
        recs: records just read.
        seen: ``agent -> (run_id, status)`` as last reported; updated in place.

    Returns:
        ``(record, previous status)`` pairs, sorted by :meth:`StatusRecord.changed_at`;
        ``previous`` is None for a run not seen before (a new agent, or a new run of one).
    """
    out = []
    for r in recs:
        before = seen.get(r.agent)
        now = (r.run_id, str(r.status))
        if before != now:
            seen[r.agent] = now
            out.append((r, before[1] if before and before[0] == r.run_id else None))
    out.sort(key=lambda change: parse_time(change[0].changed_at()) or 0.0)
    return out


def wait_for(
    store: RecordStore,
    names: list[str],
    timeout: float | None = None,
    *,
    any_: bool = False,
    on_change: Callable[[StatusRecord, str | None], None] | None = None,
    recheck_s: float = RECHECK_S,
    unreadable: dict[str, BadRecord] | None = None,
    on_unreadable: Callable[[BadRecord], None] | None = None,
) -> list[StatusRecord] | None:
    """Block until every named agent's record is terminal (with ``any_``: one of them).

    A watchdog observer on ``status/`` is started *before* the first read, so
    a record that turns terminal in between is never missed; every wake, and a
    re-check every ``recheck_s`` seconds, re-reads the records (reconciling
    vanished supervisors to ``lost``).  An unreadable record counts as ended
    (nothing can be learnt from it); it is kept in ``unreadable`` (by name)
    and reported once to ``on_unreadable``.

    Args:
        store: the records.
        names: the agents to wait for.
        timeout: seconds to wait at most; None waits as long as it takes.
        any_: return as soon as one of them has ended.
        on_change: called with ``(record, previous status or None)`` for each
            run or status seen for the first time or changed, oldest change first.
        unreadable: filled with the named agents whose record is unreadable now.
        on_unreadable: called once for each record found unreadable.

    Returns:
        The readable records as last read, or None if ``timeout`` passed first.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    from .watch import DirWatcher

    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[str, tuple[str, str]] = {}
    bad_now: dict[str, BadRecord] = unreadable if unreadable is not None else {}
    with DirWatcher(store.paths.status_dir) as watcher:
        while True:
            bad: list[BadRecord] = []
            recs = read_records(store, names, unreadable=bad)
            for r, previous in new_changes(recs, seen):
                if on_change is not None:
                    on_change(r, previous)
            for b in bad:  # after the changes: a waiter's lines stay in time order
                if b.name not in bad_now and on_unreadable is not None:
                    on_unreadable(b)
            bad_now.clear()
            bad_now.update({b.name: b for b in bad})
            ended = len([r for r in recs if r.state.is_terminal]) + len(bad)
            if (any_ and ended) or ended == len(recs) + len(bad):
                return recs
            wait = recheck_s
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = min(wait, left)
            watcher.wait(wait)


def supervisors_by_name(store: RecordStore, name: str) -> list[psutil.Process]:
    """Live supervisor processes of agent ``name`` under this state root, found by their command line.

    For a run whose record cannot be read (so its PIDs are unknown) while its
    life lock is held: the supervisor runs ``python -m claude_orchestrator.supervisor
    --root ROOT ... NAME RUN_ID`` (:func:`.launcher.supervisor_command`).
    """
    import psutil

    root = str(store.paths.root)
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "claude_orchestrator.supervisor" in cmd and len(cmd) >= 2 and cmd[-2] == name and root in cmd:
            found.append(p)
    return found


def stop_unreadable(store: RecordStore, bad: BadRecord, grace_s: float | None = None) -> str:
    """Stop the run of an agent whose record is unreadable, if its supervisor lives.

    SIGTERM to the supervisor (found by :func:`supervisors_by_name`), which
    stops its tree and rewrites its record from its own copy; waits for its
    life lock to drop (the grace plus 5 s), then SIGKILLs it.

    Returns:
        ``stopped`` or ``not-running``.
    """
    import psutil

    from . import procs

    if not locks.is_held(store.paths.alive_lock(bad.name)):
        return "not-running"
    sups = supervisors_by_name(store, bad.name)
    tree: dict[int, psutil.Process] = {}
    for p in sups:  # its CLI is its child (it is a subreaper): known now, before anything exits
        try:
            tree.update({c.pid: c for c in p.children(recursive=True)})
            p.terminate()
        except psutil.Error:
            pass
    deadline = time.monotonic() + (10.0 if grace_s is None else grace_s) + 5.0
    while locks.is_held(store.paths.alive_lock(bad.name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if locks.is_held(store.paths.alive_lock(bad.name)):  # stuck: stop it and its whole tree ourselves
        procs.stop_tree([*sups, *tree.values()], grace_s=0.0)
    return "stopped" if sups else "not-running"


def _read_all_quietly(store: RecordStore, names: list[str]) -> list[StatusRecord]:
    """The records of ``names``, reconciled, skipping any that is gone or cannot be read (a follower goes on)."""
    out = []
    for name in names:
        try:
            rec = store.read(name)
            if rec is not None:
                out.append(reconcile(store, rec))
        except (OrchestratorError, OSError):  # BadRecord included
            pass
    return out


def follow(
    store: RecordStore,
    on_change: Callable[[StatusRecord, str | None], None],
    *,
    stop: Callable[[], bool] = lambda: False,
    recheck_s: float = RECHECK_S,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Report every state change of any agent under the state root, until ``stop()`` is true.

    Agents launched later are reported too.  What is there when it starts is
    taken as known, not reported.  Wakes on filesystem events (watchdog)
    and re-reads only the records that changed; every ``recheck_s`` seconds
    it re-reads the active ones, which reconciles supervisors that died
    without a word to ``lost``, and every :data:`FULL_EVERY`-th time all of
    them.  A change is reported once: the key is
    the run id and status.  A record that cannot be read is skipped.

    Args:
        store: the records.
        on_change: called with ``(record, previous status or None)``, oldest change first.
        stop: polled after each wake; True ends the follow.
        recheck_s: seconds between periodic passes.
        on_ready: called once the starting point is read: every change after it is reported.
    """
    from .watch import DirWatcher

    def settled(name: str) -> bool:
        # an ended record changes only by a write, and a write wakes us
        return name in seen and not State(seen[name][1]).is_active

    seen: dict[str, tuple[str, str]] = {}
    with DirWatcher(store.paths.status_dir) as watcher:
        new_changes(_read_all_quietly(store, store.paths.known_agents()), seen)  # the starting point: not reported
        last_pass, passes = time.monotonic(), 0
        if on_ready is not None:
            on_ready()
        while not stop():
            watcher.wait(recheck_s)
            if stop():
                return
            changed = {n[: -len(".json")] for n in watcher.take_changed()}
            if time.monotonic() - last_pass >= recheck_s:  # however busy, a periodic pass now and then
                passes += 1
                last_pass = time.monotonic()
                full = passes % FULL_EVERY == 0  # finds even a change whose event was lost (inotify overflow)
                names = [n for n in store.paths.known_agents() if full or n in changed or not settled(n)]
            else:
                names = sorted(n for n in changed if NAME_RE.fullmatch(n))
            recs = _read_all_quietly(store, names)
            for r, previous in new_changes(recs, seen):
                on_change(r, previous)
