"""Reading runs back and acting on them: liveness (``lost``), stopping, waiting.

Whether a run's supervisor lives, and how its processes are stopped, is its
executor's to tell (:class:`..executors.base.Executor`; on this machine, the
supervisor's life lock and PIDs checked by their start times).  This module
decides what to ask, asks each executor once for many records, and records
what follows through :mod:`..records.lifecycle`.  A run of an executor this
toolkit does not know is never judged, stopped or rewritten.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

from ..core.errors import BadRecord, NotFound, OrchestratorError, StorageError
from ..core.paths import NAME_RE
from ..core.programs import command
from ..core.states import TRANSITIONS, State
from ..executors.base import Liveness, Verdict
from ..executors.registry import UnknownExecutor, all_executors, executor_of
from ..records import lifecycle
from ..records.shape import parse_time
from ..records.status_record import RecordStore, StatusRecord

# psutil is imported by the executor only where a process is looked at:
# check_status and wait_agents read records and probe locks, and do not pay for it.

#: Seconds between re-reads of the records while waiting when no event came:
#: catches a supervisor that died without touching its record.
RECHECK_S = 2.0
#: ``follow`` re-reads every record (not only active and new ones) on every
#: FULL_EVERY-th periodic pass.
FULL_EVERY = 15
#: Seconds ``stop`` waits for the record once the CLI is gone and the supervisor
#: lives, before it reports the run stopped with the record still to come.
STOPPED_RECORD_WAIT_S = 2.0


def liveness(store: RecordStore, recs: list[StatusRecord], *, deep: bool = False) -> list[Liveness]:
    """Each of ``recs``' :class:`..executors.base.Liveness`, in order: each executor asked once, for all its records.

    ``deep`` also asks whether the supervisor, the CLI and leftovers run (a process scan locally).
    """
    groups: dict[str, list[StatusRecord]] = {}
    for rec in recs:
        groups.setdefault(rec.spec.executor, []).append(rec)
    answers: dict[int, Liveness] = {}
    for group in groups.values():
        probed = executor_of(group[0]).probe(store.paths, group, deep=deep)
        answers.update({id(rec): answer for rec, answer in zip(group, probed, strict=True)})
    return [answers[id(rec)] for rec in recs]


def is_alive(store: RecordStore, rec: StatusRecord) -> bool:
    """True if ``rec`` is active and its supervisor is not known to be gone (asked of the run's executor).

    A supervisor whose liveness cannot be told (UNKNOWN: a scheduler that does not
    answer, an executor this toolkit does not know) counts as alive: nothing is
    judged on no answer.
    """
    return rec.state.is_active and liveness(store, [rec])[0].verdict is not Verdict.GONE


def hook_running(store: RecordStore, rec: StatusRecord, known: Liveness | None = None) -> bool:
    """True if ``rec``'s run has ended but its ``--on-complete`` hook has not recorded its outcome
    and the run's supervisor may still be running it (its executor's :meth:`..executors.base.Executor.probe`
    does not say GONE; locally, the life lock is held).

    While it is true the name is held: a launch or resume is refused (exit 3), a wait goes on.

    Args:
        known: ``rec``'s liveness if already asked (:func:`liveness`).
    """
    if not rec.hook_unfinished:
        return False
    return (known or liveness(store, [rec])[0]).verdict is not Verdict.GONE


def reconcile(store: RecordStore, rec: StatusRecord, known: Liveness | None = None) -> StatusRecord:
    """End an active record whose supervisor is gone, and return it.

    It ends ``lost`` (the outcome is unknown), or in the state its executor
    knows the run came to (e.g. ``memory_exceeded``: a scheduler killed the
    job for its memory), with the executor's reason as ``error``.  The check
    is repeated under the record's lock, so a supervisor that ends the run at
    the same moment wins.  If the state root cannot be written (read-only,
    full), the record is returned ended without being stored: a reader
    reports the truth without needing to write it.

    An ended record that still says its ``--on-complete`` hook runs while its
    supervisor is gone (:func:`hook_running` is false) gets the hook's outcome
    as unknown (:func:`_hook_orphaned`).

    Args:
        known: ``rec``'s liveness if already asked (:func:`liveness`, for many records at once).

    Raises:
        BadRecord: the record became unreadable meanwhile.
    """
    if not rec.state.is_active:
        return _hook_orphaned(store, rec, known)
    answer = known or liveness(store, [rec])[0]
    if answer.verdict is not Verdict.GONE:
        return rec
    end = answer.ended if answer.ended is not None and rec.state in TRANSITIONS[answer.ended] else State.LOST
    error = answer.reason or "the supervisor is gone; the run's outcome is unknown"
    try:
        return lifecycle.change_state(
            store, rec.agent, rec.run_id, end, when=lambda cur: cur.state in TRANSITIONS[end] and not is_alive(store, cur),
            error=error,
        ) or store.read(rec.agent) or rec
    except StorageError:
        shown = copy.deepcopy(rec)
        lifecycle.move(shown, end, error=error)
        return shown


#: ``on_complete``'s error when the supervisor ended while its hook ran.
HOOK_ORPHANED = "the supervisor ended before the hook's outcome was written; the outcome is unknown"


def _hook_orphaned(store: RecordStore, rec: StatusRecord, known: Liveness | None = None) -> StatusRecord:
    """``rec`` (ended), or, if it says its hook runs (``{"argv", "running": true}``) but its supervisor
    is gone, the record with ``on_complete`` = ``{"argv", "exit_code": None, "error": HOOK_ORPHANED}``
    (written under the lock if the file still says so; shown unwritten if the state root cannot be written)."""

    def says_running(r: StatusRecord) -> bool:
        return isinstance(r.on_complete, dict) and r.on_complete.get("running") is True

    if not says_running(rec) or hook_running(store, rec, known):
        return rec

    def note(cur: StatusRecord) -> StatusRecord | None:
        if not says_running(cur):
            return None
        cur.on_complete = {"argv": cur.on_complete.get("argv"), "exit_code": None, "error": HOOK_ORPHANED}
        return cur

    try:
        return lifecycle.update_run(store, rec.agent, rec.run_id, note) or rec
    except StorageError:
        return note(copy.deepcopy(rec)) or rec


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
    read: list[StatusRecord] = []
    missing = []
    for name in wanted:
        try:
            rec = store.read(name)
        except BadRecord as bad:
            if unreadable is None:
                raise
            unreadable.append(bad)
            continue
        if rec is None:
            missing.append(name)
        else:
            read.append(rec)
    if missing:
        raise NotFound(f"no such agent: {', '.join(missing)} (known: {', '.join(store.paths.known_agents()) or 'none'})")
    answers = liveness(store, read)
    out = []
    for rec, answer in zip(read, answers, strict=True):
        try:
            now = reconcile(store, rec, answer)
        except BadRecord as bad:
            if unreadable is None:
                raise
            unreadable.append(bad)
            continue
        if newly_lost is not None and now.state is State.LOST and rec.state is not State.LOST:
            newly_lost.append(now)
        out.append(now)
    return out


def stop(store: RecordStore, name: str, grace_s: float | None = None) -> tuple[str, StatusRecord | None]:
    """Stop agent ``name``'s run.

    An active run: its executor asks the supervisor to stop, which stops the
    whole tree (SIGTERM, grace, SIGKILL) and records ``killed``; ``grace_s``
    overrides the run's own grace period.  If the supervisor is gone or does
    not finish in time, what is left of the tree is stopped here and the
    record is marked ``killed``.  A ``lost`` run's orphaned tree is stopped;
    its record stays ``lost``.  An ended run whose ``--on-complete`` hook
    runs (:func:`hook_running`): its supervisor is asked to stop the hook (the
    same way, with the same grace), and this waits for its outcome in the
    record (the grace plus 5 s at most).  Any other ended run is left alone.
    (:func:`stop_many` for several agents.)

    Returns:
        ``(what, record)``: ``what`` is ``stopped``, ``orphans-stopped``,
        ``hook-stopped`` (the run had ended; its ``--on-complete`` hook was
        running and is stopped: its supervisor records ``on_complete`` with the
        error "stopped by request (signal 15)") or ``not-running``.

    Raises:
        NotFound: the agent has no record (exit 4).
        OrchestratorError: the run's executor could not stop it, or is not one this
            toolkit knows (exit 69); nothing was recorded.
    """
    what, rec = stop_many(store, [name], grace_s)[0]
    if isinstance(rec, OrchestratorError):
        raise rec
    return what, rec


#: Agents :func:`stop_many` works on at once: their record writes overlap, and so do the waits for
#: supervisors asked to stop (each up to its grace plus 5 s).  A scheduler's jobs are asked about and
#: cancelled together whatever this is (:meth:`..executors.base.Executor.stop` takes many runs).
STOP_WORKERS = 16
#: Runs :func:`stop_many` hands to their executor at once (with ``force``) while it marks more ``killed``:
#: the executor's work (Slurm: one ``scancel`` of these jobs) overlaps the record writes of the next.
#: Measured on the test cluster: 1,000 records marked in about 1.2 s, one scancel of 1,000 jobs
#: 0.3-0.55 s, of 200 about 0.1 s: the stop of 1,000 ends about 0.1 s after the last mark, not 0.4 s.
STOP_BATCH = 200


def stop_many(
    store: RecordStore, names: list[str], grace_s: float | None = None
) -> list[tuple[str, StatusRecord | None | OrchestratorError]]:
    """:func:`stop` of each of ``names``, each executor asked once for all its runs where stop() asks it of one.

    In order: every record is read and its liveness asked of its executor, once
    for all (:func:`liveness`; one ``squeue`` for Slurm's), and reconciled.  A run
    that is not active (``lost``, ended with its hook running, ended) or whose
    executor is unknown goes through stop()'s steps alone.  Each active run is
    handled by a pool of :data:`STOP_WORKERS` threads, as stop() does, up to where
    its executor is asked: its grace is written if given, and a run no supervisor
    has claimed yet is marked ``killed``.  Each executor is asked for many runs at
    once (:meth:`..executors.base.Executor.stop`: Slurm cancels them with one
    ``scancel``): with ``force``, for the runs marked ``killed``, :data:`STOP_BATCH`
    at a time while the next are marked (what they left: the job, orphans they were
    handed); then without, once for the supervisors of all the others.  Last,
    again in the pool, each asked supervisor is awaited, and a
    run whose supervisor is gone or stuck is stopped with ``force`` and marked
    ``killed``, as stop() does.

    Returns:
        One answer per name, in order: stop()'s ``(what, record)``, or
        ``("error", the OrchestratorError stop() would have raised)`` (e.g. the
        agent has no record, exit 4, or Slurm could not be asked, exit 69: the
        others are still stopped).  Other exceptions propagate.
    """
    answers: list[tuple[str, StatusRecord | None | OrchestratorError] | None] = [None] * len(names)
    read: dict[int, StatusRecord] = {}
    for i, name in enumerate(names):
        try:
            rec = store.read(name)
        except OrchestratorError as exc:  # unreadable meanwhile
            answers[i] = ("error", exc)
            continue
        if rec is None:
            answers[i] = ("error", NotFound(f"no such agent: {name}; see {command('check_status')}"))
        else:
            read[i] = rec
    active: dict[int, StatusRecord] = {}
    alone: list[int] = []
    for i, known in zip(read, liveness(store, list(read.values())), strict=True):
        try:
            rec = reconcile(store, read[i], known)
        except OrchestratorError as exc:
            answers[i] = ("error", exc)
            continue
        read[i] = rec
        if rec.state.is_active and not isinstance(executor_of(rec), UnknownExecutor):
            active[i] = rec
        else:
            alone.append(i)

    def grace_of(rec: StatusRecord) -> float:
        return grace_s if grace_s is not None else float(rec.spec.limits.kill_grace_s)

    def not_active(i: int) -> None:
        answers[i] = _caught(lambda: _stop_inactive(store, read[i], grace_of(read[i]), grace_s))

    claimed: dict[int, StatusRecord] = {}

    def stop_left(runs: dict[int, StatusRecord]) -> None:  # runs just marked killed: their executors stop what they left
        for i, answer in _ask_executors(runs, grace_of, force=True).items():
            answers[i] = ("error", answer) if isinstance(answer, OrchestratorError) else ("stopped", runs[i])

    def to_executor(i: int) -> None:
        rec = active[i]
        try:
            if grace_s is not None:
                _ask_grace(store, rec, grace_s)
            if rec.supervisor_pid is not None:
                claimed[i] = rec
                return
            cur = _mark_before_claim(store, rec)
        except OrchestratorError as exc:
            answers[i] = ("error", exc)
            return
        if cur is not None and cur.run_id == rec.run_id and not cur.state.is_terminal:
            claimed[i] = cur  # its supervisor claimed it meanwhile
        elif cur is not None and cur.run_id == rec.run_id:
            unclaimed.put(i, cur)
        else:
            answers[i] = ("stopped", cur)

    def finish(i: int) -> None:
        answers[i] = _caught(lambda: _finish_claimed(store, claimed[i], grace_of(claimed[i]), asked[i]))

    asked: dict[int, bool] = {}
    with _Pool(len(active) + len(alone)) as pool:
        inactive_done = pool.start(not_active, alone)  # alongside: a hook's stop waits for its outcome
        with _Batches(stop_left) as unclaimed:
            pool.each(to_executor, list(active))
        for i, answer in _ask_executors(claimed, grace_of, force=False).items():
            if isinstance(answer, OrchestratorError):
                answers[i] = ("error", answer)
            else:
                asked[i] = answer
        pool.each(finish, list(asked))
        inactive_done()
    return answers  # type: ignore[return-value]  # every name has its answer by now


def _caught(step: Callable[[], tuple[str, StatusRecord | None]]) -> tuple[str, StatusRecord | None | OrchestratorError]:
    """``step()``'s answer, or ``("error", the OrchestratorError it raised)``."""
    try:
        return step()
    except OrchestratorError as exc:
        return "error", exc


class _Pool:
    """:data:`STOP_WORKERS` threads for :func:`stop_many`'s steps per agent, none for one agent (run in place)."""

    def __init__(self, agents: int) -> None:
        self._pool = None
        if agents > 1:
            from concurrent.futures import ThreadPoolExecutor  # threads: only a stop of several agents

            self._pool = ThreadPoolExecutor(max_workers=min(STOP_WORKERS, agents), thread_name_prefix="stop")

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc_info[0] is not None)

    def start(self, step: Callable[[int], None], items: list[int]) -> Callable[[], None]:
        """Start ``step`` on each of ``items``; returns the function that waits for them all (re-raising a bug)."""
        if self._pool is None:
            self.each(step, items)
            return lambda: None
        futures = [self._pool.submit(step, i) for i in items]

        def wait() -> None:
            for future in futures:
                future.result()

        return wait

    def each(self, step: Callable[[int], None], items: list[int]) -> None:
        """``step`` on each of ``items``, in the pool; returns when all are done (re-raising a bug)."""
        if self._pool is None:
            for i in items:
                step(i)
        else:
            for _ in self._pool.map(step, items):
                pass


class _Batches:
    """Runs handed to ``ask`` :data:`STOP_BATCH` at a time while more are still being added, so that
    asking (e.g. one ``scancel`` for their jobs) overlaps the work that adds runs (writing records):
    a thread of its own asks for each full batch; leaving the ``with``, even by an exception, asks
    for the rest (in the caller's thread when there was no full batch) and waits.  An exception of
    ``ask`` (a bug) is raised there, and nothing more is asked.
    """

    def __init__(self, ask: Callable[[dict[int, StatusRecord]], None]) -> None:
        import threading  # only a stop of several agents

        self._ask = ask
        self._added: dict[int, StatusRecord] = {}
        self._full: list[dict[int, StatusRecord]] = []
        self._done = False
        self._failure: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._asking, name="stop-batches", daemon=True)  # started by the first full batch

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._changed:
            self._done = True
            rest, self._added = self._added, {}
            self._changed.notify()
        if self._thread.ident is not None:
            self._thread.join()
        if rest and self._failure is None:
            self._ask(rest)
        if self._failure is not None and exc_info[0] is None:
            raise self._failure

    def put(self, key: int, rec: StatusRecord) -> None:
        """Add run ``rec`` (``key``: its index in the caller's answers) to the next batch."""
        with self._changed:
            self._added[key] = rec
            if len(self._added) < STOP_BATCH:
                return
            self._full.append(self._added)
            self._added = {}
            if self._thread.ident is None:
                self._thread.start()
            self._changed.notify()

    def _asking(self) -> None:
        while True:
            with self._changed:
                while not self._full and not self._done:
                    self._changed.wait()
                if not self._full:
                    return
                batch = self._full.pop(0)
            try:
                self._ask(batch)
            except BaseException as exc:  # noqa: BLE001 - a bug: raised in the caller's thread by __exit__
                self._failure = exc
                return


def _ask_executors(
    runs: dict[int, StatusRecord], grace_of: Callable[[StatusRecord], float], *, force: bool
) -> dict[int, bool | OrchestratorError]:
    """:meth:`..executors.base.Executor.stop` of ``runs``, each executor once for all its runs; its answers by key."""
    groups: dict[str, list[int]] = {}
    for i, rec in runs.items():
        groups.setdefault(rec.spec.executor, []).append(i)
    out: dict[int, bool | OrchestratorError] = {}
    for group in groups.values():
        executor = executor_of(runs[group[0]])
        answers = executor.stop([(runs[i], grace_of(runs[i])) for i in group], force=force)
        out.update(zip(group, answers, strict=True))
    return out


def _ask(rec: StatusRecord, grace: float, *, force: bool = False) -> bool:
    """:meth:`..executors.base.Executor.stop` of run ``rec`` alone: its answer, or its OrchestratorError raised."""
    answer = executor_of(rec).stop([(rec, grace)], force=force)[0]
    if isinstance(answer, OrchestratorError):
        raise answer
    return answer


def _stop_inactive(store: RecordStore, rec: StatusRecord, grace: float, grace_s: float | None) -> tuple[str, StatusRecord | None]:
    """:func:`stop` of a reconciled run that is not active, or whose executor is unknown.

    Raises:
        OrchestratorError: the run's executor could not stop it, or is not one this toolkit knows (exit 69).
    """
    if isinstance(executor_of(rec), UnknownExecutor):
        if rec.state.is_active:
            _ask(rec, grace)  # raises: never stopped, never rewritten
        return "not-running", rec  # an ended run: nothing of it is this toolkit's to stop
    if rec.state is State.LOST:
        return ("orphans-stopped" if _ask(rec, grace, force=True) else "not-running"), rec
    if hook_running(store, rec):
        return _stop_hook(store, rec, grace, grace_s)
    return "not-running", rec


def _finish_claimed(store: RecordStore, rec: StatusRecord, grace: float, asked: bool) -> tuple[str, StatusRecord | None]:
    """The end of :func:`stop` of an active run whose supervisor was asked to stop (``asked``: its
    executor found one to ask): wait for the supervisor to record the end; if it is gone or stuck,
    stop what is left of the run here and mark it ``killed``.

    Raises:
        OrchestratorError: the run's executor could not stop what is left (exit 69).
    """
    cur, done = _await_supervisor(store, rec, grace) if asked else (rec, False)
    if done:
        return "stopped", cur
    # The supervisor is gone, or stuck with its CLI alive: stop what is left ourselves.
    try:
        cur = store.read(rec.agent) or cur
    except BadRecord:
        pass
    _ask(cur, grace, force=True)
    ended = lifecycle.change_state(store, rec.agent, rec.run_id, State.KILLED, error="stopped by request (the supervisor did not respond)")
    return "stopped", ended or store.read(rec.agent)


def _stop_hook(store: RecordStore, rec: StatusRecord, grace: float, grace_s: float | None) -> tuple[str, StatusRecord | None]:
    """Ask the supervisor of ended run ``rec`` to stop its ``--on-complete`` hook (SIGTERM, as a stop of
    the run), and wait (the grace plus 5 s at most) until the hook's outcome is in the record or
    the supervisor is gone.  Returns ``("hook-stopped", record as last read)``, or ``not-running``
    if the hook ended meanwhile.

    Raises:
        OrchestratorError: the executor could not be asked (exit 69).
    """
    if grace_s is not None:
        _ask_grace(store, rec, grace_s)
    if not _ask(rec, grace):
        return "not-running", rec
    deadline = time.monotonic() + grace + 5.0
    cur: StatusRecord | None = rec
    while time.monotonic() < deadline:
        try:
            cur = store.read(rec.agent)
        except BadRecord:
            pass  # damaged meanwhile: the supervisor rewrites it from its copy
        if cur is None or cur.run_id != rec.run_id or not hook_running(store, cur):
            break
        time.sleep(0.05)
    return "hook-stopped", cur


def _ask_grace(store: RecordStore, rec: StatusRecord, grace_s: float) -> None:
    """Tell the run's supervisor the grace period to use when it stops the tree (the record's ``stop_grace_s``)."""

    def ask(cur: StatusRecord) -> StatusRecord:
        cur.stop_grace_s = grace_s
        return cur

    try:
        lifecycle.update_run(store, rec.agent, rec.run_id, ask)
    except StorageError:
        pass  # a full or read-only state root: the run's own grace applies; stopping goes on


def _mark_before_claim(store: RecordStore, rec: StatusRecord) -> StatusRecord | None:
    """Mark ``killed`` a run launched a moment ago whose supervisor has not claimed it yet; the record now.

    Marked under the record's lock, its claim finds nothing to do and it
    exits without starting the CLI; if it has claimed meanwhile, the record
    now names it (and is returned, still active).  Once it has ended, its
    executor stops what it left (a job still queued, orphans of a lost run it
    was handed, not yet stopped): :func:`stop_many` asks with ``force``.
    """
    return lifecycle.change_state(
        store, rec.agent, rec.run_id, State.KILLED, when=lambda c: c.supervisor_pid is None,
        error="stopped by request before it started",
    ) or store.read(rec.agent)


def _await_supervisor(store: RecordStore, rec: StatusRecord, grace: float) -> tuple[StatusRecord, bool]:
    """Wait (the grace plus 5 s at most) for the asked supervisor to record the end of its run.

    Returns:
        ``(record as last read, done)``: done if the record is terminal (or
        another run's), or if the CLI is gone while the supervisor lives for
        :data:`STOPPED_RECORD_WAIT_S`: its record normally follows at once; if
        it cannot be written (a full or read-only state root) the supervisor
        keeps retrying, doing its job, so it is left alone.  Not done: the
        supervisor is gone, or stuck with its CLI alive.
    """
    executor = executor_of(rec)
    deadline = time.monotonic() + grace + 5.0
    cli_gone_at: float | None = None
    cur = rec
    while time.monotonic() < deadline:
        try:
            cur = store.read(rec.agent) or cur
        except BadRecord:
            pass  # damaged meanwhile: the supervisor rewrites it from its copy
        if cur.run_id != rec.run_id or cur.state.is_terminal:
            return cur, True
        now = executor.probe(store.paths, [cur], deep=True)[0]
        if not now.cli_running:
            if not now.supervisor_running:
                return cur, False
            cli_gone_at = cli_gone_at or time.monotonic()
            if time.monotonic() - cli_gone_at > STOPPED_RECORD_WAIT_S:
                return cur, True
        time.sleep(0.05)
    return cur, False


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
    stop_on: Callable[[list[StatusRecord]], bool] | None = None,
) -> list[StatusRecord] | None:
    """Block until every named agent's record is terminal and its ``--on-complete`` hook, if any,
    has recorded its outcome (:func:`hook_running`: the name is free again); with ``any_``: one of them.

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
        stop_on: called with each read's records, after the changes are reported: True ends
            the wait there (``wait_agents.py``: an awaited agent asks a permission question).

    Returns:
        The readable records as last read, or None if ``timeout`` passed first.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    from .watch import DirWatcher  # watchdog: only a follow loads it, never a reader or a launch

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
            if stop_on is not None and stop_on(recs):
                return recs
            ended = len([r for r in recs if r.state.is_terminal and not hook_running(store, r)]) + len(bad)
            if (any_ and ended) or ended == len(recs) + len(bad):
                return recs
            wait = recheck_s
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = min(wait, left)
            watcher.wait(wait)


def has_leftovers(store: RecordStore, rec: StatusRecord) -> bool:
    """True if processes of ``rec``'s run are still alive though its supervisor is gone (its executor tells)."""
    return bool(liveness(store, [rec], deep=True)[0].leftovers)


def stop_unreadable(store: RecordStore, bad: BadRecord, grace_s: float | None = None) -> str:
    """Stop the run of an agent whose record is unreadable, if its supervisor lives.

    The record cannot say which executor runs it, so every executor is asked
    (:meth:`..executors.base.Executor.unreadable_runs`); the supervisor stops its tree
    and rewrites its record from its own copy.

    Returns:
        ``stopped`` or ``not-running``.

    Raises:
        OrchestratorError: an executor could not be asked while a run may still run (exit 69).
    """
    grace = 10.0 if grace_s is None else grace_s
    stopped = [e for e in all_executors() if e.unreadable_runs(store.paths, bad.name, stop_grace_s=grace)]
    return "stopped" if stopped else "not-running"


def unreadable_alive(store: RecordStore, bad: BadRecord) -> bool:
    """True if some executor still runs a supervisor of the agent whose record is unreadable."""
    return any(e.unreadable_runs(store.paths, bad.name) for e in all_executors())


def _read_all_quietly(store: RecordStore, names: list[str]) -> list[StatusRecord]:
    """The records of ``names``, reconciled, skipping any that is gone or cannot be read (a follower goes on)."""
    read = []
    for name in names:
        try:
            rec = store.read(name)
        except (OrchestratorError, OSError):  # BadRecord included
            continue
        if rec is not None:
            read.append(rec)
    answers = liveness(store, read)
    out = []
    for rec, answer in zip(read, answers, strict=True):
        try:
            out.append(reconcile(store, rec, answer))
        except (OrchestratorError, OSError):
            pass
    return out


def follow(
    store: RecordStore,
    report: Callable[[list[tuple[StatusRecord, str | None]], list[StatusRecord]], None],
    *,
    stop: Callable[[], bool] = lambda: False,
    recheck_s: float = RECHECK_S,
    tick_s: float | None = None,
    on_start: Callable[[list[StatusRecord]], None] | None = None,
) -> None:
    """Report every change of any agent under the state root, until ``stop()`` is true.

    Agents launched later are reported too.  What is there when it starts is
    taken as known (handed to ``on_start``), not reported as changes.  Wakes on
    filesystem events (watchdog) and re-reads only the records that changed;
    every ``recheck_s`` seconds it re-reads the active ones, which reconciles
    supervisors that died without a word to ``lost``, and every
    :data:`FULL_EVERY`-th time all of them.  A state change is reported once:
    the key is the run id and status.  A record that cannot be read is skipped.

    Args:
        store: the records.
        report: called with each read: ``(changes, records read)``, the changes as
            :func:`new_changes` gives them (oldest first); a record may have news
            other than its state (``wait_agents.py``'s questions and deliveries).
        stop: polled after each wake; True ends the follow.
        recheck_s: seconds between periodic passes.
        tick_s: seconds between looks at ``stop`` without an event (default ``recheck_s``).
        on_start: called once with the records there at the start: every change after it is reported.
    """
    from .watch import DirWatcher  # watchdog: only a wait loads it, never a reader or a launch

    def settled(name: str) -> bool:
        # an ended record changes only by a write, and a write wakes us
        return name in seen and not State(seen[name][1]).is_active

    seen: dict[str, tuple[str, str]] = {}
    with DirWatcher(store.paths.status_dir) as watcher:
        start = _read_all_quietly(store, store.paths.known_agents())
        new_changes(start, seen)  # the starting point: not reported
        last_pass, passes = time.monotonic(), 0
        if on_start is not None:
            on_start(start)
        while not stop():
            watcher.wait(min(tick_s, recheck_s) if tick_s else recheck_s)
            if stop():
                return
            changed = {n[: -len(".json")] for n in watcher.take_changed()}
            if time.monotonic() - last_pass >= recheck_s:  # however busy, a periodic pass now and then
                passes += 1
                last_pass = time.monotonic()
                full = passes % FULL_EVERY == 0  # finds even a change whose event was lost (inotify overflow)
                names = [n for n in store.paths.known_agents() if full or n in changed or not settled(n)]
            elif not changed:
                continue
            else:
                names = sorted(n for n in changed if NAME_RE.fullmatch(n))
            recs = _read_all_quietly(store, names)
            report(new_changes(recs, seen), recs)
