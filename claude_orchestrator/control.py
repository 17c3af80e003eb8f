"""Reading runs back: liveness (``lost``), stopping, and waiting.

Kept apart from the launch path because it needs psutil.
"""

from __future__ import annotations

import signal
import time

import psutil

from . import procs
from .errors import NotFound
from .paths import StatePaths
from .record import RecordStore, StatusRecord, parse_time, utc_now
from .states import State

#: How often a wait re-reads the records, in seconds.
POLL_S = 0.2


def supervisor_process(rec: StatusRecord) -> psutil.Process | None:
    """The live supervisor of ``rec``, or None if it is gone.

    Trusted only with its start time.  A supervisor that was just spawned and
    has not yet stored its start time is accepted if it started after the
    launch was recorded (a reused PID would be older).
    """
    if rec.supervisor_started is not None:
        return procs.find_process(rec.supervisor_pid, rec.supervisor_started)
    created = parse_time(rec.created)
    if rec.supervisor_pid and created is not None:
        return procs.started_after(rec.supervisor_pid, created)
    return None


def cli_process(rec: StatusRecord) -> psutil.Process | None:
    """The run's live CLI process (PID and start time checked), or None."""
    return procs.find_process(rec.pid, rec.pid_started)


#: A record in ``starting`` with no supervisor PID yet is given this long (s)
#: before it is judged lost: the launcher writes the PID right after the spawn.
STARTING_GRACE_S = 10.0


def is_alive(rec: StatusRecord) -> bool:
    """True if an active record's supervisor is still running."""
    if not rec.state.is_active:
        return False
    if rec.supervisor_pid is None:
        created = parse_time(rec.created) or 0.0
        return time.time() - created < STARTING_GRACE_S
    return supervisor_process(rec) is not None


def reconcile(store: RecordStore, rec: StatusRecord) -> StatusRecord:
    """Mark an active record whose supervisor is gone as ``lost``, and return it.

    The check is repeated under the record's lock, so a supervisor that ends
    the run at the same moment wins.
    """
    if not rec.state.is_active or is_alive(rec):
        return rec

    def mutate(cur: StatusRecord | None) -> StatusRecord | None:
        if cur is None or cur.run_id != rec.run_id or not cur.state.is_active or is_alive(cur):
            return None
        cur.transition(
            State.LOST,
            error=f"the supervisor (pid {cur.supervisor_pid}) is gone; the run's outcome is unknown",
            last_activity=utc_now(),
        )
        return cur

    return store.update(rec.agent, mutate) or rec


def read_records(store: RecordStore, names: list[str] | None = None) -> list[StatusRecord]:
    """Records of ``names`` (default: every agent), reconciled.

    Raises:
        NotFound: a named agent has no record.
    """
    wanted = names if names else store.paths.known_agents()
    out = []
    missing = []
    for name in wanted:
        rec = store.read(name)
        if rec is None:
            missing.append(name)
            continue
        out.append(reconcile(store, rec))
    if missing:
        raise NotFound(f"no such agent: {', '.join(missing)} (known: {', '.join(store.paths.known_agents()) or 'none'})")
    return out


def stop(store: RecordStore, name: str, grace_s: float = 10.0) -> StatusRecord | None:
    """Stop agent ``name``'s run if it is active, and return its final record.

    SIGTERM to the supervisor, which stops the CLI's process group (SIGTERM,
    grace, SIGKILL) and records ``killed``.  If the supervisor is gone or does
    not finish within ``grace_s`` + 5 s, the CLI's tree is stopped directly
    and the record is marked ``killed`` here.  A finished run is left as it is.
    """
    rec = store.read(name)
    if rec is None or not rec.state.is_active:
        return rec
    sup = supervisor_process(rec)
    if sup is not None:
        try:
            sup.send_signal(signal.SIGTERM)
        except psutil.Error:
            sup = None
    deadline = time.monotonic() + grace_s + 5.0
    while sup is not None and time.monotonic() < deadline:
        cur = store.read(name)
        if cur is None or cur.run_id != rec.run_id or cur.state.is_terminal:
            return cur
        time.sleep(0.05)
    # The supervisor is gone or stuck: stop what is left ourselves.
    cur = store.read(name) or rec
    leftovers = [p for p in (supervisor_process(cur), cli_process(cur)) if p is not None]
    if leftovers:
        procs.stop_tree(leftovers, grace_s=grace_s, pgid=cur.pid if cli_process(cur) else None)

    def mutate(c: StatusRecord | None) -> StatusRecord | None:
        if c is None or c.run_id != rec.run_id or c.state.is_terminal:
            return None
        c.transition(State.KILLED, error="stopped by request (supervisor did not respond)", last_activity=utc_now())
        return c

    return store.update(name, mutate)


def wait_for(store: RecordStore, names: list[str], timeout: float | None = None) -> list[StatusRecord] | None:
    """Block until every named agent's record is terminal; return the records.

    Returns None if ``timeout`` seconds passed first.  Records whose
    supervisor vanished are reconciled to ``lost`` on the way.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        recs = read_records(store, names)
        if all(r.state.is_terminal for r in recs):
            return recs
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(POLL_S)


def paths_store(root=None) -> RecordStore:
    """A :class:`RecordStore` on ``root`` (default: the configured state root)."""
    return RecordStore(StatePaths(root))
