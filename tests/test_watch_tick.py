"""check_status --watch ticks: while an agent is active the live view is redrawn each second with
times that move, re-reading only the records that changed; with none active it is redrawn only on a change.

The in-process tests run :func:`check_status.watch` in the test's thread with stdout a :class:`Screen`:
each redraw is a frame, and the test acts when a frame is drawn (writes a record, or stops the watch
as Ctrl-C does).  The wall clock the watch shows times against is the test's (:class:`Clock`), moved
one second per frame, so successive frames differ by exactly that, however slow the machine.
"""

from __future__ import annotations

import contextlib
import os
import re
import time

import pytest
from filelock import lock_descriptor

from claude_orchestrator.commands import check_status, render
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import State
from claude_orchestrator.records.shape import utc_now
from claude_orchestrator.records.status_record import RecordStore, StatusRecord
from claude_orchestrator.usecases import watch as watch_module

#: Seconds after which a watch that has not been stopped fails its test (a deadline, not a measure).
DEADLINE_S = 120.0


class Clock:
    """check_status's ``time`` module, but for ``time()``: the wall clock the test sets (monotonic time is real)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str):
        return getattr(time, name)


class Screen:
    """``sys.stdout`` for the watch: what is written up to a flush is a frame; ``on_frame(frames)`` runs then
    (it may write records, or raise KeyboardInterrupt, which ends the watch as Ctrl-C does)."""

    def __init__(self, on_frame) -> None:
        self.frames: list[str] = []
        self.on_frame = on_frame
        self._text: list[str] = []

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self._text.append(text)
        return len(text)

    def flush(self) -> None:
        self.frames.append("".join(self._text))
        self._text.clear()
        self.on_frame(self.frames)


class Kit:
    """A state root, a fake wall clock, the records read (by agent), and a deadline for every wait of the watcher."""

    def __init__(self, root, monkeypatch) -> None:
        self.paths = StatePaths(root)
        self.paths.ensure()
        self.store = RecordStore(self.paths)
        self.clock = Clock(time.time())
        self.reads: list[str] = []
        self.locks = contextlib.ExitStack()
        monkeypatch.setattr(check_status, "time", self.clock)
        monkeypatch.setattr(check_status, "WATCH_TICK_S", 0.01)  # the wall clock is the test's: quick ticks lose nothing
        monkeypatch.setattr(check_status, "WATCH_RECHECK_S", 3600.0)  # no quiet re-check unless a test asks for one
        real_read = RecordStore.read

        def read(store, name):
            self.reads.append(name)
            return real_read(store, name)

        monkeypatch.setattr(RecordStore, "read", read)
        real_wait = watch_module.DirWatcher.wait
        deadline = time.monotonic() + DEADLINE_S

        def wait(watcher, timeout):
            left = deadline - time.monotonic()
            assert left > 0, f"the watch was not stopped within {DEADLINE_S} s"
            return real_wait(watcher, left if timeout is None else min(timeout, left))

        monkeypatch.setattr(watch_module.DirWatcher, "wait", wait)

    def write(self, name: str, status: State, *, ran_s: float = 0.0, turns: int = 0, alive: bool = False) -> None:
        """Write ``name``'s record; a run that started ``ran_s`` seconds ago (on the test's clock) if active;
        ``alive``: hold its life lock, as its supervisor would (until the test ends)."""
        started = utc_now(self.clock.now - ran_s)
        finished = None if status in (State.RUNNING, State.QUEUED, State.WAITING, State.STARTING) else utc_now(self.clock.now)
        rec = StatusRecord(agent=name, run_id="r1", task="t", status=status, started=started, finished=finished, num_turns=turns)
        self.store.write(rec)
        if alive:
            fd = os.open(self.paths.alive_lock(name), os.O_RDWR | os.O_CREAT)
            self.locks.callback(os.close, fd)
            assert lock_descriptor(fd, blocking=False)

    def taken_reads(self) -> list[str]:
        """The agents whose records were read since the last call."""
        reads, self.reads = self.reads, []
        return reads

    def watch(self, on_frame, names: list[str] | None = None, summary: bool = False) -> list[str]:
        """Run the watch until ``on_frame`` (or a spy) raises KeyboardInterrupt; its frames."""
        self.reads = []
        screen = Screen(on_frame)
        with contextlib.redirect_stdout(screen):
            assert check_status.watch(self.store, names, summary) == 0
        return screen.frames


@pytest.fixture
def kit(state_root, monkeypatch):
    k = Kit(state_root, monkeypatch)
    with k.locks:
        yield k


def cells(frame: str, agent: str) -> dict[str, str]:
    """The table row of ``agent`` in ``frame`` by column (AGENT, STATUS, ELAPSED, TURNS, ...)."""
    lines = frame.splitlines()
    head = next(line for line in lines if line.startswith("AGENT"))
    row = next(line for line in lines if line.split()[:1] == [agent])
    return dict(zip(re.split(r"\s{2,}", head), re.split(r"\s{2,}", row), strict=False))


def updated_line(frame: str) -> str:
    return frame.rstrip("\n").splitlines()[-1]


def stamp(t: float) -> str:
    return f"updated {time.strftime('%H:%M:%S', time.localtime(t))}; Ctrl-C to stop"


def test_a_running_agent_ticks_and_only_changed_records_are_read(kit):
    kit.write("busy", State.RUNNING, ran_s=100, alive=True)
    kit.write("done", State.COMPLETED)
    seen: list[tuple[str, str, list[str]]] = []  # per frame: busy's ELAPSED and TURNS, the records read before it

    def on_frame(frames):
        frame = frames[-1]
        busy = cells(frame, "busy")
        seen.append((busy["ELAPSED"], busy["TURNS"], kit.taken_reads()))
        assert updated_line(frame) == stamp(kit.clock.now), "the updated line says when this frame was drawn"
        assert cells(frame, "done")["STATUS"] == "completed"
        if len(frames) == 2:
            kit.write("busy", State.RUNNING, ran_s=101, turns=3)  # a change (the same start; its life lock is still held)
        if busy["TURNS"] == "3":
            raise KeyboardInterrupt
        kit.clock.now += 1.0

    kit.watch(on_frame)
    assert sorted(seen[0][2]) == ["busy", "done"], "the first frame reads every record"
    assert seen[0][0] == render.fmt_duration(100) and seen[1][0] == render.fmt_duration(101), seen[:2]
    assert seen[1][2] == [], "a tick re-reads no record"
    elapsed = [e for e, _, _ in seen]
    assert len(set(elapsed)) == len(elapsed), f"every frame's ELAPSED moved: {elapsed}"
    later = [name for _, _, reads in seen[2:] for name in reads]
    assert later and set(later) == {"busy"}, f"only the changed record is read again: {later}"


def test_summary_ticks_too(kit):
    kit.write("busy", State.RUNNING, ran_s=100, alive=True)
    kit.write("done", State.COMPLETED, ran_s=5)

    def on_frame(frames):
        if len(frames) == 3:
            raise KeyboardInterrupt
        kit.clock.now += 1.0

    frames = kit.watch(on_frame, summary=True)
    bodies = [f.rstrip("\n").splitlines()[:-1] for f in frames]
    assert bodies[0] != bodies[1] != bodies[2], "the summary's times move from frame to frame"
    busy = [next(line for line in b if line.startswith("busy")) for b in bodies]
    assert len(set(busy)) == 3, f"busy's run time moves: {busy}"
    assert kit.taken_reads() == ["busy", "done"], "only the first frame read the records"


@pytest.mark.parametrize("recheck_s", [3600.0, 0.0], ids=["no-recheck", "recheck-every-wait"])
def test_with_no_active_agent_nothing_is_redrawn_until_a_record_changes(kit, monkeypatch, recheck_s):
    monkeypatch.setattr(check_status, "WATCH_RECHECK_S", recheck_s)
    kit.write("done", State.COMPLETED, turns=1)
    kit.write("gone", State.FAILED, turns=1)
    quiet = 5  # waits that time out with no change: each would be a tick's redraw if the watch ticked
    waits: list[tuple[float | None, int]] = []  # each wait's timeout, and the frames drawn before it
    frames_now: list[int] = [0]
    real_wait = watch_module.DirWatcher.wait

    def wait(watcher, timeout):
        waits.append((timeout, frames_now[0]))
        if len(waits) <= quiet:
            return False  # the timeout passed, and nothing changed
        if len(waits) == quiet + 1:
            kit.write("done", State.COMPLETED, turns=7)  # the one change: the watcher sees it
        return real_wait(watcher, timeout)

    monkeypatch.setattr(watch_module.DirWatcher, "wait", wait)

    def on_frame(frames):
        frames_now[0] = len(frames)
        if len(frames) == 2:
            raise KeyboardInterrupt

    frames = kit.watch(on_frame)
    assert cells(frames[0], "done")["TURNS"] == "1" and cells(frames[1], "done")["TURNS"] == "7"
    assert [n for _, n in waits[: quiet + 1]] == [1] * (quiet + 1), "no redraw while nothing was active and nothing changed"
    if recheck_s:
        assert all(t > check_status.WATCH_TICK_S for t, _ in waits[:quiet]), f"it waited for a change, not a tick: {waits}"
    # the quiet re-checks (recheck-every-wait) read every record and, finding what is shown unchanged, drew nothing


def test_ticking_stops_when_the_last_active_agent_ends(kit, monkeypatch):
    kit.write("busy", State.RUNNING, ran_s=3, alive=True)
    ended = []
    idle_waits = []
    real_wait = watch_module.DirWatcher.wait

    def wait(watcher, timeout):
        if not ended:
            return real_wait(watcher, timeout)
        idle_waits.append(timeout)
        if len(idle_waits) > 5:
            raise KeyboardInterrupt  # five quiet waits with the agent ended: no frame came of them
        return False

    monkeypatch.setattr(watch_module.DirWatcher, "wait", wait)

    def on_frame(frames):
        status = cells(frames[-1], "busy")["STATUS"]
        assert not ended, "no redraw after the end: nothing changed and nothing is active"
        if len(frames) == 2:
            kit.write("busy", State.COMPLETED, ran_s=4)
        if status == "completed":
            ended.append(len(frames))
        kit.clock.now += 1.0

    frames = kit.watch(on_frame)
    assert ended == [len(frames)] and len(frames) >= 3
    assert all(t > check_status.WATCH_TICK_S for t in idle_waits), idle_waits


def test_a_supervisor_gone_quietly_is_found_by_the_recheck(kit, monkeypatch):
    monkeypatch.setattr(check_status, "WATCH_RECHECK_S", 0.0)  # every wait is a re-check
    supervisor = contextlib.ExitStack()  # its life lock
    fd = os.open(kit.paths.alive_lock("busy"), os.O_RDWR | os.O_CREAT)
    supervisor.callback(os.close, fd)
    assert lock_descriptor(fd, blocking=False)
    kit.write("busy", State.RUNNING, ran_s=3)

    def on_frame(frames):
        status = cells(frames[-1], "busy")["STATUS"]
        if len(frames) == 1:
            supervisor.close()  # the supervisor dies without touching its record
        if status == "lost":
            raise KeyboardInterrupt

    with supervisor:
        frames = kit.watch(on_frame)
    assert cells(frames[0], "busy")["STATUS"] == "running"
    assert kit.store.read("busy").status == State.LOST


def test_a_new_agent_shows_up_and_a_cleared_one_goes(kit):
    kit.write("old", State.COMPLETED)

    def on_frame(frames):
        agents = [line.split()[0] for line in frames[-1].splitlines()[1:] if line and not line.startswith("updated")]
        if len(frames) == 1:
            assert agents == ["old"]
            kit.write("new", State.COMPLETED)
        elif agents == ["new", "old"]:
            kit.paths.status("old").unlink()
        elif agents == ["new"]:
            raise KeyboardInterrupt

    kit.watch(on_frame)


def test_watch_script_ticks_while_a_run_goes_on(fake_kit):
    """The script as a user runs it (and make dashboard's first pane): the real clock, a redraw each second."""
    assert fake_kit.run("launch_agent", "w1", "[[fake: hang]]").returncode == 0
    fake_kit.wait_running("w1")
    with fake_kit.start("check_status", "--watch") as watcher:
        elapsed: list[str] = []
        while len(set(elapsed)) < 2:  # two frames apart: the run's ELAPSED has moved
            frame = "\n".join(watcher.out.until(lambda ls: ls[-1].startswith("updated ")))
            assert cells(frame, "w1")["STATUS"] == "running", frame
            elapsed.append(cells(frame, "w1")["ELAPSED"])
        assert fake_kit.run("kill_agent", "w1", "--grace", "1").returncode == 0
        watcher.expect(r"^w1\s+killed")
