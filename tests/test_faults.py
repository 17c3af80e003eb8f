"""Fault injection (issue 11): bad records, full and read-only disks, an untrusted
stream, lost supervisors, symlinks and unexpected exceptions, with real processes.

Every script runs as a user runs it (``Toolkit.run``) against the fake
``claude`` (tests/fake_claude.py); no script may print a traceback, whatever
it is given (:func:`run` checks every run).  The disk faults mount a tmpfs or a
read-only bind mount over the test's state root: they need root (or
CAP_SYS_ADMIN) and are skipped, saying why, only where mounting fails.
Task input (contract section 2) is tested in test_task_input.py.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from conftest import Toolkit, kill_if_ours, process_gone, stop_leftovers, wait_cli_quiet, wait_until

from claude_orchestrator.claude.invocation import ClaudeOptions
from claude_orchestrator.core.limits import RunLimits
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.records.shape import utc_now
from claude_orchestrator.records.status_record import RecordStore, StatusRecord

#: sysexits' EX_SOFTWARE and EX_IOERR (ExitCode.INTERNAL, ExitCode.IO_ERROR).
INTERNAL, IO_ERROR = 70, 74


# -- helpers -------------------------------------------------------------------


def run(kit: Toolkit, script: str, *args: str, timeout: float = 30, **kwargs) -> subprocess.CompletedProcess:
    """``kit.run`` that also fails the test if the script printed a traceback."""
    out = kit.run(script, *args, timeout=timeout, **kwargs)
    assert "Traceback" not in out.stderr, f"{script} {args} printed a traceback:\n{out.stderr}"
    return out


def one_line(stderr: str) -> str:
    """The one line an error is reported in (the contract: errors are one line on stderr)."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


def _status_of(kit: Toolkit, name: str) -> str | None:
    rec = kit.record(name)
    return rec["status"] if rec else None


def _tmp_files(root: Path) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        found += [os.path.join(folder, n) for n in dirs + files if n.endswith(".tmp")]
    return found


@pytest.fixture
def gate(tmp_path, fake_kit) -> Path:
    """A path for ``[[fake: until:PATH]]``: creating it lets the gated CLIs finish (done after the test too)."""
    path = tmp_path / "gate"
    yield path
    path.touch()


# -- mounts --------------------------------------------------------------------


def _mount(*args: str) -> None:
    """``mount ARGS``, or skip the test saying exactly why it cannot be done here."""
    try:
        done = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no `mount` command on this machine (util-linux); the disk-fault tests mount a tmpfs or a read-only bind mount")
    if done.returncode != 0:
        pytest.skip(
            f"`mount {' '.join(args)}` failed with status {done.returncode}: {done.stderr.strip() or '(no message)'}; "
            f"mounting needs root or CAP_SYS_ADMIN (this is uid {os.getuid()})"
        )


def _umount(path: Path) -> None:
    done = subprocess.run(["umount", str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:  # something still has it open: detach it now, it goes when they do
        subprocess.run(["umount", "-l", str(path)], capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` bind-mounted over itself, read-only, for the duration."""
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,ro,bind", str(path))
        yield
    finally:
        _umount(path)


@pytest.fixture
def tmpfs_kit(fake_kit, gate):
    """The fake kit on a 2 MiB tmpfs mounted over the state root (unmounted after the test).

    Processes of the runs are checked for (and killed) before the unmount, as
    conftest's state_root fixture would do after it.
    """
    root = fake_kit.root
    _mount("-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(root))
    leaked: list[psutil.Process] = []
    try:
        yield fake_kit
    finally:
        leaked = stop_leftovers(root)
        psutil.wait_procs(leaked, timeout=5)
        _umount(root)
    assert not leaked, f"processes left running: {leaked}"


def _quiet(kit: Toolkit, name: str) -> dict:
    """Until the supervisor has written what the CLI's start gave it (the init event's model, its tree).

    A supervisor that is replacing a file while the disk fills frees the old
    copy's space and would find the disk not quite full; after this it writes
    nothing until the CLI says more, so a disk filled now stays full.
    """
    return wait_until(lambda: (r := kit.record(name)) and r.get("model") == "fake-model" and r.get("tree") and r,
                      what=f"{name}'s record to take in the CLI's start")


def _hold_full(kit: Toolkit, rec: dict, seconds: float = 1.0) -> None:
    """Keep the disk full a while after the CLI ended, so the supervisor must write its end on a full disk.

    Meanwhile its supervisor stays alive (retrying), unless its record already
    says how the run ended; one that exited leaving the record active fails the test.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        exited = process_gone(rec["supervisor_pid"], rec["supervisor_started"])  # before the read: it may end the run meanwhile
        status = _status_of(kit, rec["agent"])
        if status not in ("starting", "running"):
            return
        assert not exited, f"the supervisor exited leaving the record {status}; log:\n{Path(rec['log_file']).read_text()}"
        time.sleep(0.05)


def _record_after_space_returns(kit: Toolkit, rec: dict, filler: Path, what: str) -> dict:
    """Once the CLI of ``rec`` has exited on the full disk (``what`` it waits for), hold the disk full a while,
    free the space, and return the record that no longer says running."""
    wait_until(lambda: process_gone(rec["pid"], rec["pid_started"]), timeout=15, what=what)
    _hold_full(kit, rec)
    filler.unlink()
    return wait_until(lambda: (r := kit.record(rec["agent"])) and r["status"] != "running" and r, timeout=20,
                      what="the final record once there is space")


def _fill(root: Path) -> Path:
    """Fill the file system of ``root`` to the last byte; returns the filler file (delete it to free the space)."""
    filler = root / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        chunk = 1 << 20
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    probe = root / "probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as full:
            os.write(fd, b"x")
        assert full.value.errno == errno.ENOSPC, "the file system is not full"
    finally:
        os.close(fd)
        probe.unlink()
    return filler


# -- 1. unreadable records -------------------------------------------------------
#
# The check_status test runs once per shape; the others put every shape into
# one state root at once (a bad record each), which also shows that several bad
# records hide neither the good ones nor each other, at a fraction of the cost.

GOOD = "good"  # a good agent (the one the "other_agent" shape names)
_DEEP = 100_000


def _record(name: str, **changes) -> dict:
    """A plausible ended record of agent ``name``, as a dict."""
    rec = {
        "schema": 1, "agent": name, "run_id": "20260101T000000Z-abcdef", "task": "an old task", "status": "completed",
        "created": "2026-01-01T00:00:00.000Z", "started": "2026-01-01T00:00:00.100Z", "finished": "2026-01-01T00:00:01.000Z",
        "status_changed": "2026-01-01T00:00:01.000Z", "duration_s": 0.9, "num_turns": 1, "exit_code": 0, "is_error": False,
        "result": "old result",
    }
    rec.update(changes)
    return rec


def _without(rec: dict, key: str) -> dict:
    del rec[key]
    return rec


def _whole(name: str) -> bytes:
    return json.dumps(_record(name), indent=2).encode()


#: The contract's unreadable shapes of status/NAME.json: shape -> bytes of agent NAME's file.
BAD_SHAPES = {
    "empty": lambda name: b"",
    "truncated": lambda name: _whole(name)[: len(_whole(name)) // 2],
    "not_json": lambda name: b"status: completed\nagent: " + name.encode() + b"\n",
    "not_utf8": lambda name: _whole(name).replace(b"an old task", b"an old \xff\xfe task"),
    "list": lambda name: json.dumps([_record(name)]).encode(),
    "string": lambda name: json.dumps("completed").encode(),
    "empty_object": lambda name: b"{}",
    "no_agent": lambda name: json.dumps(_without(_record(name), "agent")).encode(),
    "unknown_status": lambda name: json.dumps(_record(name, status="exploded")).encode(),
    "wrong_types": lambda name: json.dumps(_record(name, num_turns="many")).encode(),
    "other_agent": lambda name: json.dumps(_record(GOOD)).encode(),
    "infinite_number": lambda name: _whole(name).replace(b'"num_turns": 1', b'"duration_s": 1e400, "num_turns": 1'),
    "partial_tokens": lambda name: json.dumps(_record(name, tokens={"input": 1})).encode(),
    "bad_time": lambda name: json.dumps(_record(name, status_changed="yesterday")).encode(),
    "deeply_nested": lambda name: b'{"agent": "%s", "status": "completed", "x": ' % name.encode() + b"[" * _DEEP + b"]" * _DEEP + b"}",
}
#: One bad agent per shape, for the tests that hold them all at once.
BAD_NAMES = {shape: f"bad-{shape}" for shape in BAD_SHAPES}


def _write_bad(kit: Toolkit, shape: str, name: str) -> Path:
    path = kit.root / "status" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(BAD_SHAPES[shape](name))
    return path


def _write_all_bad(kit: Toolkit) -> dict[str, Path]:
    """Every bad shape at once: agent name -> its record's path."""
    return {name: _write_bad(kit, shape, name) for shape, name in BAD_NAMES.items()}


def _abs_status(kit: Toolkit, name: str) -> str:
    """The absolute path of status/NAME.json, as the scripts name it."""
    return str(kit.root.resolve() / "status" / f"{name}.json")


def _launch_gated(kit: Toolkit, name: str, gate: Path, *extra: str) -> dict:
    out = run(kit, "launch_agent", name, f"[[fake: until:{gate}]]", "--kill-grace", "1", *extra)
    assert out.returncode == 0, out.stderr
    return kit.wait_running(name)


@pytest.mark.parametrize("shape", list(BAD_SHAPES))
def test_check_status_shows_an_unreadable_record_beside_the_good_ones(fake_kit, shape):
    bad = "corrupt"
    assert run(fake_kit, "launch_agent", GOOD, "[[fake: ok]] x", "--wait").returncode == 0
    path = _write_bad(fake_kit, shape, bad)
    where = _abs_status(fake_kit, bad)

    table = run(fake_kit, "check_status")
    assert table.returncode == 0, table.stderr
    assert re.search(rf"^{GOOD}\s+completed\b", table.stdout, re.M), table.stdout
    assert re.search(rf"^{bad}\s+unreadable\b", table.stdout, re.M), table.stdout
    assert any(where in line and f"clear_outputs.py {bad} --purge" in line for line in table.stderr.splitlines()), table.stderr

    for flag in ("--json", "--full"):
        out = run(fake_kit, "check_status", flag)
        assert out.returncode == 0, out.stderr
        items = json.loads(out.stdout)
        assert sorted(i["agent"] for i in items) == sorted([GOOD, bad]), items
        by_name = {i["agent"]: i for i in items}
        assert by_name[GOOD]["status"] == "completed"
        if flag == "--full":
            assert by_name[GOOD]["run_id"] and by_name[GOOD]["log_file"], "--full shows the good records whole"
        item = by_name[bad]
        assert item["status"] == "unreadable" and item["status_file"] == where, item
        assert isinstance(item.get("error"), str) and item["error"], item

    named = run(fake_kit, "check_status", bad)
    assert named.returncode == 0, named.stderr
    assert re.search(rf"^{bad}\s+unreadable\b", named.stdout, re.M), named.stdout
    assert where in named.stderr

    launch = run(fake_kit, "launch_agent", bad, "[[fake: ok]] x")
    assert launch.returncode == 2, launch.stdout + launch.stderr
    line = one_line(launch.stderr)
    assert where in line and "clear_outputs" in line, line
    assert path.read_bytes() == BAD_SHAPES[shape](bad), "a refused launch leaves the file as it was"


def test_check_status_with_every_bad_shape_and_a_running_agent(fake_kit, gate):
    _launch_gated(fake_kit, GOOD, gate)
    bad = _write_all_bad(fake_kit)
    out = run(fake_kit, "check_status", "--json")
    assert out.returncode == 0, out.stderr
    by_name = {i["agent"]: i for i in json.loads(out.stdout)}
    assert sorted(by_name) == sorted([GOOD, *bad])
    assert by_name[GOOD]["status"] == "running"
    assert {n: by_name[n]["status"] for n in bad} == dict.fromkeys(bad, "unreadable")
    table = run(fake_kit, "check_status")
    assert table.returncode == 0 and re.search(rf"^{GOOD}\s+running\b", table.stdout, re.M), table.stdout + table.stderr
    for name in bad:
        assert re.search(rf"^{name}\s+unreadable\b", table.stdout, re.M), table.stdout
        assert _abs_status(fake_kit, name) in table.stderr
    gate.touch()
    assert fake_kit.wait_terminal(GOOD)["status"] == "completed"


def test_wait_agents_acts_on_the_good_agents_and_counts_the_unreadable_ones(fake_kit, gate):
    _launch_gated(fake_kit, GOOD, gate)
    bad = list(_write_all_bad(fake_kit))
    every = fake_kit.start("wait_agents")
    named = fake_kit.start("wait_agents", GOOD, *bad)
    as_json = fake_kit.start("wait_agents", GOOD, *bad, "--json")
    short = fake_kit.start("wait_agents", GOOD, *bad, "--timeout", "1")

    every.expect(rf"^\d\d:\d\d:\d\d {GOOD}: running")
    named.expect(rf"^\d\d:\d\d:\d\d {GOOD}: running")
    for name in bad:
        named.expect(rf"^\d\d:\d\d:\d\d {name}: unreadable")
        as_json.expect(rf'"agent": ?"{name}".*"status": ?"unreadable"')
    code, lines, _ = short.finish()
    assert code == 124, lines
    assert _status_of(fake_kit, GOOD) == "running"

    gate.touch()
    code, lines, _ = every.finish()
    assert code == 0, lines
    assert lines[-1] == "all ended: 1 completed", "without names it waits for the good active agents only"

    code, lines, _ = named.finish()
    assert code == 1, lines
    assert any(f"{GOOD}: running -> completed" in line for line in lines), lines
    assert "1 completed" in lines[-1] and f"{len(bad)} unreadable" in lines[-1], lines[-1]

    code, lines, _ = as_json.finish()
    assert code == 1, lines
    events = [json.loads(line) for line in lines]
    for name in bad:
        mine = [e for e in events if e.get("agent") == name]
        assert len(mine) == 1 and mine[0]["event"] == "change" and mine[0]["status"] == "unreadable", (name, events)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["exit_code"] == 1, summary
    assert summary["counts"] == {"completed": 1, "unreadable": len(bad)}, summary
    assert summary["agents"] == {GOOD: "completed", **dict.fromkeys(bad, "unreadable")}, summary


def test_kill_agent_stops_the_good_agents_and_refuses_the_unreadable_ones(fake_kit, gate):
    rec = _launch_gated(fake_kit, GOOD, gate)
    bad = _write_all_bad(fake_kit)
    for name in bad:
        out = run(fake_kit, "kill_agent", name)
        assert out.returncode == 2, f"{name}: {out.stdout}{out.stderr}"
        assert _abs_status(fake_kit, name) in one_line(out.stderr)
    assert _status_of(fake_kit, GOOD) == "running", "refusing them stops nothing else"

    every = run(fake_kit, "kill_agent", "--all", "--grace", "1")
    assert every.returncode == 0, every.stderr
    for name in bad:
        assert _abs_status(fake_kit, name) in every.stderr, f"{name} is not mentioned"
    assert _status_of(fake_kit, GOOD) == "killed"
    assert process_gone(rec["pid"], rec["pid_started"])
    assert all(p.read_bytes() == BAD_SHAPES[s](n) for (s, n), p in zip(BAD_NAMES.items(), bad.values(), strict=True))


def test_clear_outputs_removes_unreadable_records_so_the_names_work_again(fake_kit):
    root = fake_kit.root
    assert run(fake_kit, "launch_agent", GOOD, "[[fake: ok]] x", "--wait").returncode == 0
    bad = _write_all_bad(fake_kit)
    for name, path in bad.items():
        out = run(fake_kit, "clear_outputs", name, "--purge")
        assert out.returncode == 0, f"{name}: {out.stderr}"
        assert not path.exists(), name
    assert _status_of(fake_kit, GOOD) == "completed", "only their files go"
    out = run(fake_kit, "launch_parallel", "--names", ",".join(bad), *(["[[fake: ok]] x"] * len(bad)), "--wait", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {n: _status_of(fake_kit, n) for n in bad} == dict.fromkeys(bad, "completed")

    _write_all_bad(fake_kit)
    out = run(fake_kit, "clear_outputs", *bad, "--force")
    assert out.returncode == 0, out.stderr
    assert not [p for p in bad.values() if p.exists()]

    _write_all_bad(fake_kit)
    out = run(fake_kit, "clear_outputs", "--all")
    assert out.returncode == 0, out.stderr
    assert not [p for p in bad.values() if p.exists()] and not (root / "status" / f"{GOOD}.json").exists(), "good and bad alike"

    _write_all_bad(fake_kit)
    out = run(fake_kit, "clear_outputs", "--all", "--purge")
    assert out.returncode == 0, out.stderr
    assert not [p for p in bad.values() if p.exists()]


# -- 3. full or read-only disk -----------------------------------------------------


def _storage_error(out: subprocess.CompletedProcess, root: Path, strerror: str) -> str:
    assert out.returncode == IO_ERROR, f"exit {out.returncode}: {out.stdout}{out.stderr}"
    line = one_line(out.stderr)
    assert f"cannot write {root}" in line and strerror in line, line
    return line


def test_a_read_only_state_root_is_reported_not_crashed_on(fake_kit):
    root = fake_kit.root.resolve()
    assert run(fake_kit, "launch_agent", "done", "[[fake: ok]] x", "--wait").returncode == 0
    before = (root / "status" / "done.json").read_bytes()
    with read_only(root):
        _storage_error(run(fake_kit, "launch_agent", "fresh", "[[fake: ok]] x"), root, "Read-only file system")
        _storage_error(run(fake_kit, "launch_parallel", "--names", "p1,p2", "x", "y"), root, "Read-only file system")
        _storage_error(run(fake_kit, "resume_agent", "done", "more"), root, "Read-only file system")
        _storage_error(run(fake_kit, "clear_outputs", "done"), root, "Read-only file system")
        _storage_error(run(fake_kit, "clear_outputs", "--all", "--purge"), root, "Read-only file system")

        table = run(fake_kit, "check_status")
        assert table.returncode == 0, table.stderr
        assert re.search(r"^done\s+completed\b", table.stdout, re.M), table.stdout
        listed = run(fake_kit, "check_status", "--json")
        assert listed.returncode == 0 and json.loads(listed.stdout)[0]["status"] == "completed"
        waited = run(fake_kit, "wait_agents", "done", "--timeout", "10")
        assert waited.returncode == 0, waited.stdout + waited.stderr
    assert (root / "status" / "done.json").read_bytes() == before


def test_a_state_root_under_a_regular_file_is_reported(fake_kit, tmp_path):
    plain = tmp_path / "plainfile"
    plain.write_text("not a folder")
    kit = Toolkit(plain / "home", dict(fake_kit.env, ORCHESTRATOR_HOME=str(plain / "home")))
    for script, args in (("launch_agent", ("a1", "x")), ("launch_parallel", ("--names", "p1,p2", "x", "y"))):
        out = run(kit, script, *args, cwd=tmp_path)
        assert out.returncode == IO_ERROR, f"{script}: exit {out.returncode}: {out.stdout}{out.stderr}"
        line = one_line(out.stderr)
        assert str(plain) in line and "Not a directory" in line, line
    status = run(kit, "check_status", cwd=tmp_path)
    assert status.returncode in (0, IO_ERROR), status.stdout + status.stderr
    assert plain.read_text() == "not a folder"


def test_a_full_disk_refuses_launches_whole_and_still_shows_a_lost_run(tmpfs_kit, tmp_path, gate):
    kit, root = tmpfs_kit, tmpfs_kit.root.resolve()
    work = tmp_path / "work"
    work.mkdir()
    rec = _launch_gated(kit, "held", gate, "--cwd", str(work))
    try:
        _quiet(kit, "held")
        _fill(root)
        _storage_error(run(kit, "launch_agent", "second", "[[fake: ok]] x", "--cwd", str(work)), root, "No space left on device")
        _storage_error(run(kit, "launch_parallel", "--names", "p1,p2", "x", "y", "--cwd", str(work)), root, "No space left on device")
        for name in ("second", "p1", "p2"):
            assert not (root / "status" / f"{name}.json").exists(), f"a record of {name} was left"
        wait_until(lambda: not _tmp_files(root), timeout=5, what=f"no temp files left: {_tmp_files(root)}")

        os.kill(rec["supervisor_pid"], signal.SIGKILL)
        os.kill(rec["pid"], signal.SIGKILL)
        wait_until(lambda: process_gone(rec["supervisor_pid"], rec["supervisor_started"]) and process_gone(rec["pid"], rec["pid_started"]),
                   what="the supervisor and its CLI gone")
        listed = run(kit, "check_status", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [(i["agent"], i["status"]) for i in json.loads(listed.stdout)] == [("held", "lost")]
        table = run(kit, "check_status")
        assert table.returncode == 0 and re.search(r"^held\s+lost\b", table.stdout, re.M), table.stdout + table.stderr
        waited = run(kit, "wait_agents", "held", "--timeout", "10")
        assert waited.returncode == 1 and "lost" in waited.stdout, waited.stdout + waited.stderr
        assert not _tmp_files(root)
    finally:
        kill_if_ours(rec["supervisor_pid"], rec["supervisor_started"])
        kill_if_ours(rec["pid"], rec["pid_started"])


def test_a_supervisor_on_a_full_disk_finishes_its_run_when_space_returns(tmpfs_kit, tmp_path, gate):
    kit, root = tmpfs_kit, tmpfs_kit.root.resolve()
    work = tmp_path / "work"
    work.mkdir()
    task = f"[[fake: until:{gate}]]"
    out = run(kit, "launch_agent", "full", task, "--cwd", str(work), "--kill-grace", "1", "--timeout", "60")
    assert out.returncode == 0, out.stderr
    rec = kit.wait_running("full")
    _quiet(kit, "full")
    filler = _fill(root)
    gate.touch()
    final = _record_after_space_returns(kit, rec, filler, "the CLI to exit on a full disk")
    assert final["status"] == "completed", final
    assert (root / "outputs" / "full_latest.txt").read_text() == "FAKE: " + task + "\n"


def test_a_timeout_stops_the_cli_on_a_full_disk(tmpfs_kit, tmp_path):
    kit, root = tmpfs_kit, tmpfs_kit.root.resolve()
    work = tmp_path / "work"
    work.mkdir()
    out = run(kit, "launch_agent", "slow", "[[fake: hang]]", "--cwd", str(work), "--timeout", "3", "--kill-grace", "1")
    assert out.returncode == 0, out.stderr
    rec = kit.wait_running("slow")
    _quiet(kit, "slow")
    filler = _fill(root)
    assert not process_gone(rec["pid"], rec["pid_started"]), "the disk filled only after the timeout (machine too slow?)"
    final = _record_after_space_returns(kit, rec, filler, "the timeout to stop the CLI on a full disk")
    assert final["status"] == "timeout", final


# -- 4. the CLI's stream is untrusted -------------------------------------------------


def test_odd_stream_lines_are_logged_and_skipped(fake_kit):
    task = "[[fake: odd_stream]] odd"
    out = run(fake_kit, "launch_agent", "odd", task, "--wait", "--json", "--kill-grace", "1", timeout=90)
    rec = fake_kit.record("odd")
    assert out.returncode == 0, f"{out.stdout}{out.stderr}\nlog:\n{Path(rec['log_file']).read_text()[-3000:] if rec else ''}"
    assert rec["status"] == "completed" and rec["result"] == "FAKE: " + task, rec
    assert (fake_kit.root / "outputs" / "odd_latest.txt").read_text() == "FAKE: " + task + "\n"
    assert rec["num_turns"] == 1 and rec["tokens"] == {"input": 10, "output": 5}
    assert isinstance(rec["session_id"], str) and rec["model"] == "fake-model", "odd init fields are not taken"
    assert (fake_kit.root / "sessions" / "odd_session.txt").read_text().strip() == rec["session_id"]
    log = Path(rec["log_file"]).read_text(encoding="utf-8", errors="replace")
    assert re.search(r"skip|ignor", log, re.I), f"the log says nothing of the skipped lines:\n{log[-3000:]}"
    assert len(log) < 1 << 20, "the log holds the huge line"
    for args in ((), ("--raw",)):
        shown = run(fake_kit, "tail_agent", "odd", *args)
        assert shown.returncode == 0, shown.stderr
    assert run(fake_kit, "check_status", "--json").returncode == 0


#: Runs the supervisor with a fault injected once its CLI runs (the first RSS sample of the tree).
SUPERVISOR_WITH_A_FAULT = r"""
import sys
from claude_orchestrator.core import locks
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.supervisor import entry, tree

root, name, run_id = sys.argv[1:4]
if not hasattr(tree.ProcessTree, "sample"):
    sys.exit("test_faults: ProcessTree.sample is gone; inject the fault elsewhere")


def sample(self, *args, **kwargs):
    raise RuntimeError("injected supervisor fault")


tree.ProcessTree.sample = sample
alive = locks.try_lock(StatePaths(root).alive_lock(name))  # the life lock, as the launcher hands it over
sys.exit(entry.main(["--root", root, "--alive-fd", str(alive), name, run_id]))
"""


def test_a_supervisor_internal_error_stops_its_cli_and_says_why(fake_kit, fake_claude, tmp_path):
    paths = StatePaths(fake_kit.root)
    paths.ensure()
    name, run_id, task = "crashy", "20260101T000000Z-c0ffee", "[[fake: hang]]"
    work = tmp_path / "work"
    work.mkdir()
    paths.run_dir(name).mkdir(parents=True)
    task_file = paths.run_dir(name) / f"{run_id}.task"
    task_file.write_bytes(task.encode())
    now = utc_now()
    limits = RunLimits(timeout_s=30, kill_grace_s=1, memory_limit_mb=0, max_parallel=0)
    RecordStore(paths).write(StatusRecord.from_dict({
        "agent": name, "run_id": run_id, "task": task, "status": "starting", "created": now, "status_changed": now,
        "cwd": str(work), "session_id": str(uuid.uuid4()), "output_file": str(paths.latest_output(name)),
        "transcript_file": str(paths.transcript(name, run_id)), "log_file": str(paths.log(name, run_id)), "task_file": str(task_file),
        "options": {"claude": ClaudeOptions().to_dict(), "claude_bin": str(fake_claude), "fork": False, "limits": limits.to_dict(),
                    "on_complete": None, "profile": None, "after": [], "after_any": False, "context_from": None},
    }))
    sup = None
    try:
        sup = subprocess.run(
            [sys.executable, "-c", SUPERVISOR_WITH_A_FAULT, str(paths.root), name, run_id],
            env=fake_kit.env, cwd=str(paths.root), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        final = fake_kit.record(name)
        log = paths.log(name, run_id)
        assert sup.returncode == INTERNAL, f"exit {sup.returncode}: {sup.stderr}\nlog:\n{log.read_text() if log.exists() else ''}"
        assert final["pid"], "the fault came before the CLI started"
        assert process_gone(final["pid"], final["pid_started"]), "the CLI outlived its crashed supervisor"
        assert final["status"] == "failed", final
        assert "internal error" in final["error"] and str(log) in final["error"], final["error"]
    finally:
        rec = fake_kit.record(name) or {}
        kill_if_ours(rec.get("pid"), rec.get("pid_started"))


# -- 5. no orphans after a lost supervisor --------------------------------------------


@pytest.mark.parametrize(
    ("mode", "relaunch"),
    [("hang", "launch_agent"), ("hang", "launch_parallel"), ("hang", "resume_agent"), ("setsid_grandchild", "launch_agent")],
)
def test_relaunching_a_lost_agent_first_stops_its_orphans(fake_kit, tmp_path, gate, mode, relaunch):
    work = tmp_path / "work"
    work.mkdir()
    out = run(fake_kit, "launch_agent", "orphan", f"[[fake: {mode}]]", "--cwd", str(work), "--kill-grace", "1")
    assert out.returncode == 0, out.stderr
    rec = fake_kit.wait_running("orphan")
    wait_cli_quiet(rec)
    left = [(rec["pid"], rec["pid_started"])]
    try:
        if mode == "setsid_grandchild":
            pid_file = work / "grandchild.pid"
            gc = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the grandchild"))
            left.append((gc, psutil.Process(gc).create_time()))
            wait_until(lambda: any(e[0] == gc for e in (fake_kit.record("orphan").get("tree") or [])),
                       what="the grandchild in the record's tree")
        os.kill(rec["supervisor_pid"], signal.SIGKILL)
        wait_until(lambda: process_gone(rec["supervisor_pid"], rec["supervisor_started"]), what="the supervisor gone")
        shown = run(fake_kit, "check_status", "--json", "orphan")
        assert shown.returncode == 0 and json.loads(shown.stdout)[0]["status"] == "lost", shown.stdout + shown.stderr
        assert not any(process_gone(*p) for p in left), "the orphans run on until someone stops them"

        task = f"[[fake: until:{gate}]] again"
        args = {"launch_agent": ("orphan", task), "launch_parallel": ("--names", "orphan", task), "resume_agent": ("orphan", task)}
        out = run(fake_kit, relaunch, *args[relaunch], "--cwd", str(work), "--kill-grace", "1")
        assert out.returncode == 0, out.stderr  # (how fast it returns is bench/'s to measure, not a test's)
        wait_until(lambda: (r := fake_kit.record("orphan")) and r["run_id"] != rec["run_id"] and r["status"] == "running",
                   what="the new run running")
        for pid, started in left:
            assert process_gone(pid, started), f"process {pid} of the lost run still runs beside the new one"
        gate.touch()
        assert fake_kit.wait_terminal("orphan")["status"] == "completed"
    finally:
        for pid, started in left:
            kill_if_ours(pid, started)


# -- 6. symlinks are never followed out of the state root -------------------------------


def _outside(tmp_path: Path) -> Path:
    """Files outside the state root that the links point at."""
    out = tmp_path / "outside"
    (out / "dir" / "sub").mkdir(parents=True)
    (out / "dir" / "keep.txt").write_text("keep me")
    (out / "dir" / "sub" / "deep.txt").write_text("deep")
    (out / "latest.txt").write_text("someone else's latest")
    (out / "session.txt").write_text("someone else's session")
    (out / "ws").mkdir()
    (out / "ws" / "work.txt").write_text("work")
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    found = {}
    for base, _, files in os.walk(folder):
        for f in files:
            p = Path(base) / f
            found[str(p.relative_to(folder))] = p.read_bytes()
    return found


def _links(root: Path, name: str, outside: Path, entries=("run_dir", "latest", "session", "workspace")) -> dict[Path, Path]:
    """Replace agent ``name``'s entries with symlinks to ``outside``; returns link -> target."""
    every = {
        "run_dir": (root / "outputs" / name, outside / "dir"),
        "latest": (root / "outputs" / f"{name}_latest.txt", outside / "latest.txt"),
        "session": (root / "sessions" / f"{name}_session.txt", outside / "session.txt"),
        "workspace": (root / "workspaces" / name, outside / "ws"),
    }
    made = {}
    for key in entries:
        link, target = every[key]
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        link.symlink_to(target)
        made[link] = target
    return made


def _symlinks_under(folder: Path) -> dict[str, str]:
    found = {}
    for base, dirs, files in os.walk(folder):
        for n in dirs + files:
            p = os.path.join(base, n)
            if os.path.islink(p):
                found[p] = os.readlink(p)
    return found


@pytest.mark.parametrize("purge", [False, True], ids=["archive", "purge"])
def test_clearing_symlinked_entries_moves_or_removes_the_links_only(fake_kit, tmp_path, purge):
    root = fake_kit.root
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    flag = ("--purge",) if purge else ()
    assert run(fake_kit, "launch_agent", "linked", "[[fake: ok]] x", "--wait").returncode == 0
    links = _links(root, "linked", outside)

    out = run(fake_kit, "clear_outputs", "linked", *flag)
    assert out.returncode == 0, out.stderr
    assert not [link for link in links if os.path.lexists(link)], "the links are gone from their places"
    assert _snapshot(outside) == before, "a target was touched"
    assert fake_kit.record("linked") is None
    archived = _symlinks_under(root / "outputs" / "archive")
    if purge:
        assert not archived
    else:
        assert sorted(archived.values()) == sorted(str(t) for t in links.values()), "the archive holds the links themselves"

    again = run(fake_kit, "clear_outputs", "--all", *flag)
    assert again.returncode == 0, again.stderr
    links = _links(root, "linked", outside)  # the links once more, without a record this time
    third = run(fake_kit, "clear_outputs", "linked", *flag)
    assert third.returncode == 0, third.stderr
    assert not [link for link in links if os.path.lexists(link)]
    assert _snapshot(outside) == before, "a target was touched"


def test_a_launch_never_writes_through_a_symlinked_entry(fake_kit, tmp_path):
    root = fake_kit.root
    outside = _outside(tmp_path)
    before = _snapshot(outside)
    (root / "outputs").mkdir(parents=True, exist_ok=True)
    _links(root, "sneaky", outside, entries=("run_dir",))
    out = run(fake_kit, "launch_agent", "sneaky", "[[fake: ok]] x")
    assert out.returncode == 2, out.stdout + out.stderr
    assert str(root.resolve() / "outputs" / "sneaky") in one_line(out.stderr)
    assert fake_kit.record("sneaky") is None, "a refused launch leaves no record"
    assert _snapshot(outside) == before

    # Links at the result and session files: a launch may refuse, or replace them; never write through them.
    (root / "outputs" / "sneaky").unlink()
    _links(root, "sneaky", outside, entries=("latest", "session"))
    out = run(fake_kit, "launch_agent", "sneaky", "[[fake: ok]] x", "--wait")
    assert out.returncode in (0, 2), out.stdout + out.stderr
    if out.returncode == 0:
        latest = root / "outputs" / "sneaky_latest.txt"
        assert not latest.is_symlink() and latest.read_text() == "FAKE: [[fake: ok]] x\n"
        assert not (root / "sessions" / "sneaky_session.txt").is_symlink()
    assert _snapshot(outside) == before, "a write went through a symlink out of the state root"


# -- 7. no traceback, ever ---------------------------------------------------------------

#: (script, a function its main calls, arguments that get it there)
INTERNAL_FAULTS = [
    ("check_status", "claude_orchestrator.usecases.control.read_records", []),
    ("wait_agents", "claude_orchestrator.usecases.control.wait_for", ["done"]),
    ("kill_agent", "claude_orchestrator.usecases.control.stop_many", ["done"]),
    ("clear_outputs", "claude_orchestrator.usecases.cleanup.clear", ["done"]),
    ("launch_agent", "claude_orchestrator.usecases.launch.launch", ["fresh", "a task"]),
    ("launch_parallel", "claude_orchestrator.usecases.launch.launch_many", ["task one", "task two"]),
    ("resume_agent", "claude_orchestrator.usecases.launch.resume", ["done", "more"]),
    ("tail_agent", "claude_orchestrator.claude.transcript_view.render", ["done"]),
]


def _ended_agent(root: Path, name: str = "done") -> None:
    """A completed agent with a record, a session and a transcript, written directly."""
    paths = StatePaths(root)
    paths.ensure()
    paths.run_dir(name).mkdir(parents=True, exist_ok=True)
    transcript = paths.transcript(name, "r1")
    transcript.write_text(json.dumps({"type": "system", "subtype": "init", "session_id": "s1"}) + "\n")
    paths.session(name).write_text(str(uuid.uuid4()) + "\n")
    now = utc_now()
    RecordStore(paths).write(StatusRecord.from_dict({
        "agent": name, "run_id": "r1", "task": "t", "status": "completed", "created": now, "started": now, "finished": now,
        "status_changed": now, "cwd": str(root), "transcript_file": str(transcript), "log_file": str(paths.log(name, "r1")),
        "output_file": str(paths.latest_output(name)),
    }))


@pytest.mark.parametrize(("script", "target", "args"), INTERNAL_FAULTS, ids=[f[0] for f in INTERNAL_FAULTS])
def test_an_unexpected_exception_is_one_line_and_exit_70(state_root, fake_claude, monkeypatch, capsys, script, target, args):
    monkeypatch.setenv("CLAUDE_BIN", str(fake_claude))
    _ended_agent(state_root)

    def boom(*_args, **_kwargs):
        raise RuntimeError("injected fault for the test")

    monkeypatch.setattr(target, boom)
    code = importlib.import_module(f"claude_orchestrator.commands.{script}").main(list(args))
    captured = capsys.readouterr()
    assert code == INTERNAL, f"exit {code}: {captured.err}"
    assert "Traceback" not in captured.out + captured.err
    line = one_line(captured.err)
    m = re.fullmatch(rf"{script}\.py: internal error: (.+); the traceback is in (.+)", line)
    assert m and "injected fault for the test" in m.group(1), line
    where = Path(m.group(2))
    assert where.is_file() and where.resolve().is_relative_to(state_root.resolve() / "status" / ".errors"), where
    text = where.read_text()
    assert "Traceback" in text and "injected fault for the test" in text


# -- found in review: stopping, relaunching and odd entries ----------------------------


def test_a_relaunch_stopped_at_once_still_stops_the_lost_runs_orphans(fake_kit, tmp_path, gate):
    """Killing the new run before (or after) its supervisor claimed it: the lost run's CLI is stopped all the same."""
    out = run(fake_kit, "launch_agent", "twice", "[[fake: hang]]", "--kill-grace", "1")
    assert out.returncode == 0, out.stderr
    rec = fake_kit.wait_running("twice")
    wait_cli_quiet(rec)
    old = (rec["pid"], rec["pid_started"])
    try:
        os.kill(rec["supervisor_pid"], signal.SIGKILL)
        wait_until(lambda: process_gone(rec["supervisor_pid"], rec["supervisor_started"]), what="the supervisor gone")
        assert run(fake_kit, "launch_agent", "twice", f"[[fake: until:{gate}]] again", "--kill-grace", "1").returncode == 0
        stopped = run(fake_kit, "kill_agent", "twice", "--grace", "1")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        wait_until(lambda: process_gone(*old), timeout=15, what="the lost run's CLI to be stopped")
        assert fake_kit.wait_terminal("twice")["status"] == "killed"
    finally:
        kill_if_ours(*old)


def test_kill_on_a_full_disk_stops_the_tree_and_the_record_follows_when_space_returns(tmpfs_kit, tmp_path):
    kit = tmpfs_kit
    out = run(kit, "launch_agent", "full", "[[fake: hang]]", "--kill-grace", "1")
    assert out.returncode == 0, out.stderr
    rec = _quiet(kit, "full")
    filler = _fill(kit.root)
    try:
        stopped = run(kit, "kill_agent", "full")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert process_gone(rec["pid"], rec["pid_started"]), "the CLI is stopped although nothing can be written"
        assert not process_gone(rec["supervisor_pid"], rec["supervisor_started"]), "its supervisor is left to record the end"
    finally:
        filler.unlink()
    done = kit.wait_terminal("full")
    assert done["status"] == "killed", done


def test_odd_entries_in_the_queue_and_slot_folders_do_not_block_launches(fake_kit):
    status = fake_kit.root / "status"
    (status / ".queue" / "00000000000000000001-ghost").mkdir(parents=True)
    (status / ".slots" / "slot-0.lock").mkdir(parents=True)
    out = run(fake_kit, "launch_agent", "q1", "[[fake: ok]] x", "--max-parallel", "2", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert fake_kit.record("q1")["status"] == "completed"


def test_a_profiles_file_that_is_a_folder_is_bad_input(fake_kit, tmp_path):
    fake_kit.env["ORCHESTRATOR_PROFILES"] = str(tmp_path)
    out = run(fake_kit, "launch_agent", "p1", "--profile", "reviewer", "x")
    assert out.returncode == 2, out.stderr
    assert str(tmp_path) in one_line(out.stderr)


def test_a_result_file_that_can_never_be_written_does_not_hold_the_name(fake_kit):
    """A folder where outputs/NAME_latest.txt goes: the run ends, and the name is free at once (no hour of retries)."""
    (fake_kit.root / "outputs" / "blocked_latest.txt").mkdir(parents=True)
    first = run(fake_kit, "launch_agent", "blocked", "[[fake: ok]] x", "--wait")
    assert first.returncode == 0, first.stdout + first.stderr
    rec = fake_kit.record("blocked")
    wait_until(lambda: process_gone(rec["supervisor_pid"], rec["supervisor_started"]), what="the supervisor to exit")
    again = run(fake_kit, "launch_agent", "blocked", "[[fake: ok]] y", "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
