"""Unit tests of claude_orchestrator/lifecycle.py: the one writer of a run's state.

In process, against a temp state root: the whole table of moves, the time
stamps a move makes, change_state's "nothing written" cases, and create.
"""

from __future__ import annotations

import itertools

import pytest

from claude_orchestrator.commands import guard
from claude_orchestrator.core import errors
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import TRANSITIONS, State
from claude_orchestrator.records import lifecycle, status_record
from claude_orchestrator.records.lifecycle import IllegalMove
from claude_orchestrator.records.shape import parse_time
from claude_orchestrator.records.status_record import RecordStore, StatusRecord

NAME = "agent1"
RUN = "20260101T000000Z-aaaaaa"
T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:00:12.500Z"
T2 = "2026-01-01T00:01:00.000Z"

ALL_PAIRS = list(itertools.product(State, State))
ACTIVE_PAIRS = [(s, t) for s, t in ALL_PAIRS if not s.is_terminal]
TERMINAL_PAIRS = [(s, t) for s, t in ALL_PAIRS if s.is_terminal]


def _id(pair: tuple[State, State]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def make(status: State = State.RUNNING, **fields) -> StatusRecord:
    return StatusRecord(agent=NAME, run_id=RUN, task="a task", status=status, **fields)


@pytest.fixture
def store(tmp_path) -> RecordStore:
    return RecordStore(StatePaths(tmp_path))


def snapshot(store: RecordStore, name: str = NAME):
    """What a write would change: the file's bytes and mtime, and the status folder's listing (lock files aside)."""
    path = store.paths.status(name)
    folder = store.paths.status_dir
    listing = sorted(p.name for p in folder.iterdir() if p.suffix != ".lock") if folder.is_dir() else []
    if not path.exists():
        return None, None, listing
    return path.read_bytes(), path.stat().st_mtime_ns, listing


# --- the table of moves ---------------------------------------------------


def test_illegal_move_is_a_bug_not_a_usage_error(tmp_path, monkeypatch, capsys):
    assert not issubclass(IllegalMove, errors.OrchestratorError)
    monkeypatch.setenv("ORCHESTRATOR_HOME", str(tmp_path))  # where guarded logs the traceback

    def body() -> int:
        raise IllegalMove(NAME, State.COMPLETED, State.RUNNING)

    assert guard.guarded("x.py", body) == 70
    assert "internal error" in capsys.readouterr().err


def test_illegal_move_names_the_move():
    exc = IllegalMove(NAME, State.QUEUED, State.RUNNING)
    assert (exc.agent, exc.source, exc.target) == (NAME, State.QUEUED, State.RUNNING)
    assert "queued" in str(exc) and "running" in str(exc) and NAME in str(exc)


@pytest.mark.parametrize("pair", ALL_PAIRS, ids=_id)
def test_move_follows_the_table(pair):
    source, target = pair
    rec = make(source)
    if source in TRANSITIONS[target]:
        lifecycle.move(rec, target, now=T1)
        assert rec.status is target
        assert rec.state is target
    else:
        before = make(source)
        with pytest.raises(IllegalMove) as info:
            lifecycle.move(rec, target, now=T1, error="never set")
        assert (info.value.source, info.value.target) == (source, target)
        assert rec == before  # refused before anything changed


@pytest.mark.parametrize("pair", ACTIVE_PAIRS, ids=_id)
def test_change_state_follows_the_table_for_an_active_run(store, pair):
    source, target = pair
    store.write(make(source))
    if source in TRANSITIONS[target]:
        moved = lifecycle.change_state(store, NAME, RUN, target)
        assert moved is not None and moved.status is target
        assert store.read(NAME).status is target
    else:
        before = snapshot(store)
        with pytest.raises(IllegalMove):
            lifecycle.change_state(store, NAME, RUN, target, edit=lambda r: setattr(r, "pid", 1))
        assert snapshot(store) == before


@pytest.mark.parametrize("pair", TERMINAL_PAIRS, ids=_id)
def test_change_state_leaves_an_ended_run_alone(store, pair):
    """The first end wins: any move of an ended run is refused quietly (a race, not a bug)."""
    source, target = pair
    store.write(make(source, finished=T0))
    before = snapshot(store)
    assert lifecycle.change_state(store, NAME, RUN, target) is None
    assert snapshot(store) == before


def test_every_state_has_a_row():
    assert set(TRANSITIONS) == set(State)
    assert lifecycle.INITIAL == {State.WAITING, State.QUEUED, State.STARTING}


# --- stamps ----------------------------------------------------------------


def test_move_stamps_status_changed_and_last_activity():
    rec = make(State.QUEUED, last_activity=T0)
    lifecycle.move(rec, State.STARTING, now=T1)
    assert (rec.status_changed, rec.last_activity) == (T1, T1)
    assert rec.started is None and rec.finished is None and rec.duration_s is None


def test_move_defaults_now_to_the_current_time():
    rec = make(State.QUEUED)
    lifecycle.move(rec, State.STARTING)
    assert parse_time(rec.status_changed) is not None
    assert rec.last_activity == rec.status_changed


def test_move_keeps_a_given_last_activity():
    rec = make(State.RUNNING, started=T0)
    lifecycle.move(rec, State.COMPLETED, now=T2, last_activity=T1)
    assert rec.last_activity == T1


def test_running_stamps_started():
    rec = make(State.STARTING)
    lifecycle.move(rec, State.RUNNING, now=T1)
    assert rec.started == T1


def test_running_keeps_a_given_started():
    rec = make(State.STARTING)
    lifecycle.move(rec, State.RUNNING, now=T1, started=T0)
    assert rec.started == T0
    assert rec.status_changed == T1


def test_terminal_stamps_finished_and_duration_from_started():
    rec = make(State.RUNNING, created="2025-12-31T23:00:00.000Z", started=T0)
    lifecycle.move(rec, State.COMPLETED, now=T1)
    assert rec.finished == T1
    assert rec.status_changed == T1
    assert rec.duration_s == 12.5


def test_terminal_keeps_a_given_finished():
    """A supervisor passes the time the run ended, however late it writes it."""
    rec = make(State.RUNNING, started=T0)
    lifecycle.move(rec, State.FAILED, now=T2, finished=T1, error="boom", exit_code=3)
    assert rec.finished == T1
    assert rec.status_changed == T1  # the change happened when the run ended
    assert rec.last_activity == T2
    assert rec.duration_s == 12.5
    assert (rec.error, rec.exit_code) == ("boom", 3)


def test_terminal_duration_from_created_when_never_started():
    rec = make(State.WAITING, created=T0)
    lifecycle.move(rec, State.SKIPPED, now=T1)
    assert rec.started is None
    assert rec.duration_s == 12.5


def test_terminal_without_any_start_time_has_no_duration():
    rec = make(State.QUEUED)
    lifecycle.move(rec, State.KILLED, now=T1)
    assert rec.finished == T1 and rec.duration_s is None


def test_terminal_duration_never_negative():
    rec = make(State.RUNNING, started=T2)
    lifecycle.move(rec, State.LOST, now=T1)
    assert rec.duration_s == 0.0


def test_move_sets_fields():
    rec = make(State.RUNNING, started=T0)
    lifecycle.move(rec, State.TIMEOUT, now=T1, error="timed out", stop_reason="timeout", is_error=True)
    assert (rec.error, rec.stop_reason, rec.is_error) == ("timed out", "timeout", True)


# --- change_state ------------------------------------------------------------


def test_change_state_writes_and_returns_the_moved_record(store):
    store.write(make(State.RUNNING, started=T0))
    moved = lifecycle.change_state(store, NAME, RUN, State.COMPLETED, exit_code=0, finished=T1)
    assert moved is not None
    assert (moved.status, moved.exit_code, moved.finished, moved.duration_s) == (State.COMPLETED, 0, T1, 12.5)
    assert store.read(NAME) == moved


def test_change_state_missing_record_writes_nothing(store):
    assert lifecycle.change_state(store, NAME, RUN, State.KILLED) is None
    assert not store.paths.status(NAME).exists()


def test_change_state_another_runs_record_writes_nothing(store):
    store.write(make(State.RUNNING))
    before = snapshot(store)
    assert lifecycle.change_state(store, NAME, "another-run", State.KILLED) is None
    assert snapshot(store) == before


def test_change_state_when_false_writes_nothing(store):
    store.write(make(State.RUNNING))
    before = snapshot(store)
    seen = []

    def when(rec: StatusRecord) -> bool:
        seen.append(rec.status)
        return False

    assert lifecycle.change_state(store, NAME, RUN, State.LOST, when=when) is None
    assert seen == [State.RUNNING]  # asked about the stored record
    assert snapshot(store) == before


def test_change_state_when_true_moves(store):
    store.write(make(State.RUNNING))
    moved = lifecycle.change_state(store, NAME, RUN, State.LOST, when=lambda r: r.pid is None, error="gone")
    assert moved is not None and moved.status is State.LOST and moved.error == "gone"


def test_change_state_applies_edit_in_the_same_write(store, monkeypatch):
    store.write(make(State.STARTING))
    writes = []
    real = status_record.write_atomic

    def counting(path, text, durable=True):
        writes.append(durable)
        real(path, text, durable=durable)

    monkeypatch.setattr(status_record, "write_atomic", counting)

    def edit(rec: StatusRecord) -> None:
        rec.pid, rec.pid_started = 4242, 1.5
        rec.status_changed = "edited"  # the move's stamps come after the edit

    moved = lifecycle.change_state(store, NAME, RUN, State.RUNNING, edit=edit, durable=False)
    assert writes == [False]
    stored = store.read(NAME)
    assert stored == moved
    assert (stored.status, stored.pid, stored.pid_started) == (State.RUNNING, 4242, 1.5)
    assert stored.status_changed != "edited"


def test_change_state_uses_the_fallback_for_an_unreadable_file(store):
    store.paths.status_dir.mkdir(parents=True)
    store.paths.status(NAME).write_bytes(b"\x00garbage{")
    fallback = make(State.RUNNING, started=T0, pid=7)
    moved = lifecycle.change_state(store, NAME, RUN, State.COMPLETED, fallback=fallback, finished=T1)
    assert moved is not None and moved.status is State.COMPLETED and moved.pid == 7
    assert store.read(NAME) == moved
    assert fallback.status is State.RUNNING and fallback.finished is None  # the caller's copy is untouched


def test_change_state_fallback_of_another_run_writes_nothing(store):
    store.paths.status_dir.mkdir(parents=True)
    store.paths.status(NAME).write_bytes(b"not json")
    before = snapshot(store)
    fallback = StatusRecord(agent=NAME, run_id="other", task="", status=State.RUNNING)
    assert lifecycle.change_state(store, NAME, RUN, State.COMPLETED, fallback=fallback) is None
    assert snapshot(store) == before


def test_change_state_unreadable_file_without_fallback_raises(store):
    store.paths.status_dir.mkdir(parents=True)
    store.paths.status(NAME).write_bytes(b"not json")
    before = snapshot(store)
    with pytest.raises(errors.BadRecord):
        lifecycle.change_state(store, NAME, RUN, State.KILLED)
    assert snapshot(store) == before


def test_change_state_illegal_move_of_an_active_run_raises(store):
    store.write(make(State.QUEUED))
    before = snapshot(store)
    with pytest.raises(IllegalMove):
        lifecycle.change_state(store, NAME, RUN, State.COMPLETED)
    assert snapshot(store) == before


# --- create ------------------------------------------------------------------


@pytest.mark.parametrize("initial", sorted(lifecycle.INITIAL, key=list(State).index), ids=str)
def test_create_writes_the_decided_state(store, initial):
    seen = []

    def decide(current):
        seen.append(current)
        return initial

    rec = lifecycle.create(store, make(State.STARTING), decide)
    assert seen == [None]
    assert rec.status is initial
    assert parse_time(rec.created) is not None and rec.status_changed == rec.created
    assert store.read(NAME) == rec


def test_create_keeps_a_given_created(store):
    rec = lifecycle.create(store, make(State.STARTING, created=T0), lambda cur: State.QUEUED)
    assert (rec.created, rec.status_changed) == (T0, T0)


def test_create_sees_and_replaces_the_previous_record(store):
    store.write(StatusRecord(agent=NAME, run_id="old", task="old", status=State.COMPLETED))
    seen = []
    lifecycle.create(store, make(State.STARTING), lambda cur: seen.append(cur.run_id) or State.STARTING)
    assert seen == ["old"]
    assert store.read(NAME).run_id == RUN


@pytest.mark.parametrize("state", sorted(set(State) - lifecycle.INITIAL, key=list(State).index), ids=str)
def test_create_refuses_a_state_a_run_cannot_start_in(store, state):
    with pytest.raises(IllegalMove):
        lifecycle.create(store, make(State.STARTING), lambda cur: state)
    assert not store.paths.status(NAME).exists()


def test_create_decide_raising_leaves_no_file(store):
    def decide(current):
        raise errors.Conflict("busy")

    with pytest.raises(errors.Conflict):
        lifecycle.create(store, make(State.STARTING), decide)
    assert not store.paths.status(NAME).exists()
    assert [p for p in store.paths.status_dir.iterdir() if p.suffix != ".lock"] == []


def test_create_decide_raising_keeps_the_previous_record(store):
    store.write(StatusRecord(agent=NAME, run_id="old", task="old", status=State.RUNNING))
    before = snapshot(store)
    with pytest.raises(errors.Conflict):
        lifecycle.create(store, make(State.STARTING), lambda cur: (_ for _ in ()).throw(errors.Conflict("busy")))
    assert snapshot(store) == before
