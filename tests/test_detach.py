"""How a local run's supervisor is started: forked from the launcher, or a fresh interpreter (executors/detach.py).

A forked supervisor must keep what a spawned one guaranteed: none of the
caller's descriptors (a master's Bash tool waits for its pipes to close), stdin
``/dev/null``, stdout and stderr the run's log, its own session, so that it
outlives the caller's process group being killed (a tool call's timeout kills
the group).
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import AGENTS, process_gone, wait_until

from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.executors import detach
from claude_orchestrator.executors.local import supervisors_by_name
from claude_orchestrator.usecases import launch


@pytest.fixture
def gate(tmp_path) -> Path:
    """A path for ``[[fake: until:PATH]]``: creating it lets the gated CLIs finish (done after the test too)."""
    path = tmp_path / "gate"
    yield path
    path.touch()


def _links(pid: int) -> dict[int, str]:
    """Descriptor number -> what it is (``/proc/PID/fd``'s links: a path, ``pipe:[INODE]``, ...)."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
    return found


def _read_to_end(fd: int, deadline_s: float = 30.0) -> bytes:
    """What is left on pipe ``fd`` until every writer has closed it; fails after ``deadline_s`` (a deadline, not a delay)."""
    data = b""
    end = time.monotonic() + deadline_s
    while True:
        left = end - time.monotonic()
        assert left > 0, f"a process still holds the caller's pipe open; read so far: {data!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize(
    ("script", "options", "names", "forked"),
    [
        ("launch_agent", ["--wait"], ["solo"], True),  # its caller waits: forked (the CLI starts sooner)
        ("launch_agent", [], ["alone"], False),  # nobody waits: a fresh interpreter (the launch returns sooner)
        ("launch_parallel", [], ["f1", "f2", "f3"], True),  # a fan-out: forked from one prepared launcher
    ],
)
def test_a_supervisor_keeps_none_of_the_callers_descriptors_and_outlives_its_process_group(fake_kit, gate, script, options, names, forked):
    task = f"[[fake: until:{gate}]] work"
    args = [names[0], task] if script == "launch_agent" else ["--names", ",".join(names), *[task] * len(names)]
    extra_r, extra_w = os.pipe()  # a descriptor the caller leaves open for its children, as a tool's harness may
    out_r, out_w = os.pipe()  # the caller's stdout: a master's Bash tool reads it until every writer has closed it
    launcher = shlex.join([sys.executable, str(AGENTS / f"{script}.py"), *options, *args])
    # a command line that launches (and may wait), in one process group with a shell that lives on
    shell = subprocess.Popen(["bash", "-c", f"{launcher} & exec sleep 3600"], env=fake_kit.env,
                             stdin=subprocess.DEVNULL, stdout=out_w, stderr=subprocess.STDOUT,
                             pass_fds=(extra_w,), start_new_session=True, cwd=str(fake_kit.root))
    os.close(out_w)
    open_fds = [extra_r, extra_w, out_r]
    try:
        recs = [fake_kit.wait_running(n) for n in names]
        pipes = {f"pipe:[{os.fstat(fd).st_ino}]" for fd in (extra_r, out_r)}
        for rec in recs:
            sup = rec["supervisor_pid"]
            cmdline = psutil.Process(sup).cmdline()
            if forked:
                assert str(AGENTS / f"{script}.py") in cmdline, f"forked from the launcher, not spawned: {cmdline}"
            else:
                assert "claude_orchestrator.supervisor" in cmdline, f"a fresh interpreter, not forked: {cmdline}"
            links = _links(sup)
            assert not pipes & set(links.values()), f"{rec['agent']}'s supervisor holds the caller's pipes: {links}"
            assert links[0] == os.devnull, links
            held = sorted(v for v in links.values() if v.endswith(".lock"))  # its own record's lock comes and goes
            status = fake_kit.root.resolve() / "status"
            assert str(status / f"{rec['agent']}.supervisor.lock") in held, held
            others = [v for v in held for n in names if n != rec["agent"] and v.startswith(str(status / f"{n}."))]
            assert not others, f"another run's locks: {others}"
            assert len([v for v in held if "/.slots/" in v]) <= 1, f"at most its own slot: {held}"
            assert links[1] == links[2] == os.path.realpath(rec["log_file"]), links
            assert os.getsid(sup) != os.getsid(shell.pid), "a session of its own (its middle process's), not the caller's"
            assert os.getpgid(sup) != os.getpgid(shell.pid)

        os.killpg(shell.pid, signal.SIGKILL)  # the caller's whole process group (a waiting launcher too), as a tool call's timeout does
        shell.wait(timeout=30)
        os.close(extra_w)
        open_fds.remove(extra_w)
        _read_to_end(out_r)  # fails if a supervisor holds the caller's stdout: only the killed group did
        assert all(not process_gone(r["supervisor_pid"], r["supervisor_started"]) for r in recs)
        gate.touch()
        for name in names:
            assert fake_kit.wait_terminal(name)["status"] == "completed", "the runs went on without their caller"
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
        for fd in open_fds:
            os.close(fd)


def test_a_launcher_that_runs_threads_spawns_a_fresh_interpreter(fake_kit, gate, monkeypatch):
    """Forking a process with threads would copy one thread and whatever locks the others held: never done."""
    for key, value in fake_kit.env.items():
        monkeypatch.setenv(key, value)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert not detach.can_fork()
        paths = StatePaths(fake_kit.root)
        rec = launch.launch(paths, "threaded", f"[[fake: until:{gate}]] x")
        running = fake_kit.wait_running("threaded")
        assert rec.run_id == running["run_id"]
        assert "claude_orchestrator.supervisor" in psutil.Process(running["supervisor_pid"]).cmdline()
        assert [p.pid for p in supervisors_by_name(paths, "threaded")] == [running["supervisor_pid"]]
    finally:
        stop.set()
        other.join()
    gate.touch()
    assert fake_kit.wait_terminal("threaded")["status"] == "completed"


def test_supervisors_of_an_unreadable_record_are_found_by_their_life_lock_whichever_way_they_started(fake_kit, gate):
    assert fake_kit.run("launch_parallel", "--names", "u1,u2", f"[[fake: until:{gate}]] a", f"[[fake: until:{gate}]] b").returncode == 0
    recs = {n: fake_kit.wait_running(n) for n in ("u1", "u2")}
    paths = StatePaths(fake_kit.root)
    for name, rec in recs.items():
        assert [p.pid for p in supervisors_by_name(paths, name)] == [rec["supervisor_pid"]]
    gate.touch()
    for name in recs:
        assert fake_kit.wait_terminal(name)["status"] == "completed"


FAILING_FORK = """
import json, os, sys
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.usecases import launch

real_fork, me, calls = os.fork, os.getpid(), []

def fork():
    if os.getpid() == me:  # the launcher's forks, not the middle processes'
        calls.append(1)
        if len(calls) == 2:
            raise BlockingIOError(11, "Resource temporarily unavailable")
    return real_fork()

os.fork = fork
gate = sys.argv[1]
recs = launch.launch_many(StatePaths(sys.argv[2]), [(n, f"[[fake: until:{gate}]] {n}", None) for n in ("k1", "k2", "k3")])
print(json.dumps([[r.status.value, r.error] for r in recs]))
"""


def test_a_fork_that_fails_is_that_runs_answer_and_the_others_start(fake_kit, gate):
    """The process limit reached at the second fork (EAGAIN): that run is recorded failed, saying so; the others run."""
    done = subprocess.run([sys.executable, "-c", FAILING_FORK, str(gate), str(fake_kit.root)], env=fake_kit.env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    (s1, _), (s2, error), (s3, _) = json.loads(done.stdout)
    assert (s1, s2, s3) == ("starting", "failed", "starting")
    assert "could not start the supervisor" in error and "Resource temporarily unavailable" in error, error
    assert fake_kit.record("k2")["status"] == "failed"
    gate.touch()
    assert fake_kit.wait_terminal("k1")["status"] == fake_kit.wait_terminal("k3")["status"] == "completed"


CHUNKED = """
import json, sys
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.executors import detach
from claude_orchestrator.executors.local import LocalExecutor
from claude_orchestrator.usecases import launch

sizes, submit = [], LocalExecutor.submit

def counted(self, paths, runs):
    sizes.append(len(runs))
    return submit(self, paths, runs)

LocalExecutor.submit = counted
launch.LAUNCH_CHUNK = 2
detach.GATE_WAIT_S = 3600  # the runs start only because this process exits (its gates open)
recs = launch.launch_many(StatePaths(sys.argv[1]), [(f"c{i}", "[[fake: ok]] x", None) for i in range(5)])
print(json.dumps({"sizes": sizes, "statuses": [r.status.value for r in recs]}))
"""


def test_a_fan_out_is_claimed_and_submitted_in_chunks(fake_kit):
    """A claimed run holds descriptors until it is submitted: a fan-out of 1,000 must not hold 3,000 at once."""
    done = subprocess.run([sys.executable, "-c", CHUNKED, str(fake_kit.root)], env=fake_kit.env,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert said["sizes"] == [2, 2, 1]
    assert set(said["statuses"]) <= {"starting", "queued"}, said  # the default --max-parallel queues some
    for i in range(5):
        assert fake_kit.wait_terminal(f"c{i}")["status"] == "completed"


OPENED = """
import json, sys
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.executors import detach
from claude_orchestrator.records.status_record import RecordStore
from claude_orchestrator.usecases import control, launch

detach.GATE_WAIT_S = 3600
paths = StatePaths(sys.argv[1])
launch.launch_many(paths, [(n, "[[fake: ok]] x", None) for n in ("g1", "g2")])
detach.open_gates()  # as a launcher about to wait does (launch_parallel.py --wait)
recs = control.wait_for(RecordStore(paths), ["g1", "g2"], timeout=60)
print(json.dumps([r.status.value for r in recs] if recs else None))
"""


def test_a_fan_out_s_supervisors_start_when_the_launcher_opens_their_gate_to_wait(fake_kit):
    """They wait at a gate until their launcher exits (so that they do not take the cores from it); a launcher
    that waits for them opens it first, or it would wait for ever."""
    done = subprocess.run([sys.executable, "-c", OPENED, str(fake_kit.root)], env=fake_kit.env,
                          capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["completed", "completed"]


GATED = """
import sys
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.executors import detach
from claude_orchestrator.usecases import launch

detach.GATE_WAIT_S = 3600
launch.launch_many(StatePaths(sys.argv[1]), [(n, "[[fake: ok]] x", None) for n in ("w1", "w2")])
print("launched", flush=True)
sys.stdin.read()  # until the test lets this launcher exit
"""


def test_supervisors_waiting_at_their_gate_already_hold_none_of_the_callers_descriptors(fake_kit):
    """A launcher that lives on keeps its fan-out's supervisors at the gate; meanwhile they must not keep the
    caller's pipes open (a master's Bash tool would wait for them), and they start when it exits."""
    launcher = subprocess.Popen([sys.executable, "-c", GATED, str(fake_kit.root)], env=fake_kit.env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert launcher.stdout.readline() == b"launched\n", launcher.stderr.read() if launcher.poll() is not None else ""
        caller_pipe = f"pipe:[{os.fstat(launcher.stdout.fileno()).st_ino}]"
        paths = StatePaths(fake_kit.root)
        for name in ("w1", "w2"):
            sups = wait_until(lambda n=name: supervisors_by_name(paths, n), what=f"{name}'s supervisor at its gate")
            wait_until(lambda s=sups[0]: caller_pipe not in _links(s.pid).values(),
                       what=f"{name}'s supervisor to let go of the caller's stdout while it waits")
            assert fake_kit.record(name)["status"] == "starting", "held at the gate: not claimed while its launcher lives"
        launcher.stdin.close()  # the launcher exits: the gates open
        assert launcher.wait(timeout=30) == 0
        for name in ("w1", "w2"):
            assert fake_kit.wait_terminal(name)["status"] == "completed"
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
