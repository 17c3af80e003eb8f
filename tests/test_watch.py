"""Waiting and watching: wait_agents, the watchdog wake-up and its polling fallback,
live progress, summaries, tail_agent -f, --on-complete and the tmux dashboard."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import typing

import pytest
from conftest import run_cli, wait_until

from claude_orchestrator.commands.render import fmt_duration
from claude_orchestrator.core.files import write_atomic
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import State
from claude_orchestrator.records.lifecycle import move
from claude_orchestrator.records.shape import parse_time
from claude_orchestrator.records.status_record import RecordStore, StatusRecord
from claude_orchestrator.usecases import watch
from claude_orchestrator.usecases.control import wait_for


def test_wait_returns_when_the_agent_completes(fake_kit, tmp_path):
    gate = tmp_path / "gate"
    assert fake_kit.run("launch_agent", "a1", f"[[fake: until:{gate}]]").returncode == 0
    with fake_kit.start("wait_agents", "a1") as waiter:
        first = waiter.out.next()  # the waiter has read a1's record, and its watcher was on before that read
        assert " a1: " in first and "completed" not in first, first
        gate.write_text("go")  # only now can a1 end
        lines = [first, *waiter.out.until(lambda ls: ls[-1].startswith("all ended"))]
        assert waiter.wait() == 0, waiter.err.seen
    assert any("-> completed" in line for line in lines), lines
    assert lines[-1] == "all ended: 1 completed"
    assert fake_kit.record("a1")["status"] == "completed"


def test_wait_any_returns_on_the_first_to_end(fake_kit):
    assert fake_kit.run("launch_parallel", "--names", "quick,stuck", "[[fake: slow:0.3]]", "[[fake: hang]]").returncode == 0
    out = fake_kit.run("wait_agents", "--any", "quick", "stuck", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]  # JSON lines only
    assert events[-1]["event"] == "summary" and events[-1]["counts"]["completed"] == 1
    assert fake_kit.record("stuck")["status"] == "running"
    assert fake_kit.run("kill_agent", "stuck", "--grace", "1").returncode == 0


def test_wait_times_out_with_124(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "[[fake: hang]]").returncode == 0
    out = fake_kit.run("wait_agents", "a1", "--timeout", "0.5")
    assert out.returncode == 124
    assert "timed out waiting" in out.stdout
    fake_kit.run("kill_agent", "a1", "--grace", "1")


def test_wait_for_ended_failed_and_unknown_agents(fake_kit):
    assert fake_kit.run("launch_agent", "ok", "x", "--wait").returncode == 0
    assert fake_kit.run("launch_agent", "bad", "[[fake: crash]]", "--wait").returncode == 1
    done = fake_kit.run("wait_agents", "ok")  # an ended agent: nothing to wait for
    assert done.returncode == 0, done.stderr
    assert "all ended: 1 completed" in done.stdout
    assert fake_kit.run("wait_agents", "ok", "bad").returncode == 1
    unknown = fake_kit.run("wait_agents", "ok", "ghost")
    assert unknown.returncode == 4 and "ghost" in unknown.stderr
    assert fake_kit.run("wait_agents").stdout.strip() == "no active agents to wait for"


def test_wait_sees_twenty_agents_ending_at_random_moments(fake_kit):
    rng = random.Random(7)
    tasks = [f"[[fake: slow:{rng.uniform(1.0, 4.0):.2f}]]" for _ in range(20)]
    assert fake_kit.run("launch_parallel", "--max-parallel", "0", *tasks).returncode == 0
    names = [f"agent{i}" for i in range(1, 21)]
    out = fake_kit.run("wait_agents", "--json", *names, timeout=120)
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    ended = {e["agent"] for e in events if e["event"] == "change" and e["status"] == "completed"}
    assert ended == {f"agent{i}" for i in range(1, 21)}
    assert events[-1]["counts"] == {"completed": 20}


def _write_record(paths: StatePaths, name: str, status: State) -> None:
    write_atomic(paths.status(name), json.dumps(StatusRecord(agent=name, run_id="r", task="t", status=status).to_dict()))


def _changes_through(watcher: watch.DirWatcher, paths: StatePaths, marker: str) -> set[str]:
    """Write the record ``marker`` and collect the changed names the watcher reports up to its change.

    The watcher delivers changes in order (inotify's queue, or one polling scan after
    another), so once the marker's change is seen, every earlier change has been
    reported: a change that did not come by then was never seen as one.
    """
    _write_record(paths, marker, State.QUEUED)
    seen: set[str] = set()
    while f"{marker}.json" not in seen:
        assert watcher.wait(30), f"no wake for {marker}.json"
        seen |= watcher.take_changed()
    return seen


@pytest.mark.parametrize("force_polling", [False, True])
def test_a_record_replaced_by_rename_wakes_the_watcher(tmp_path, monkeypatch, force_polling):
    if force_polling:
        def no_inotify():
            raise OSError(errno.EMFILE, "inotify instance limit reached")

        monkeypatch.setattr(watch, "_native_observer", no_inotify)
    paths = StatePaths(tmp_path)
    paths.ensure()
    with watch.DirWatcher(paths.status_dir) as watcher:
        assert watcher.mode == ("polling" if force_polling else "inotify")
        (paths.status_dir / ".a1.json.123.tmp").write_text("{}")  # a temp file alone is no change
        (paths.status_dir / "a1.json.lock").write_text("")
        assert _changes_through(watcher, paths, "m1") == {"m1.json"}, "temp and lock files are no record change"
        _write_record(paths, "a1", State.RUNNING)  # temp file + os.replace: a moved event
        seen: set[str] = set()
        while "a1.json" not in seen:
            assert watcher.wait(30), "the replaced record woke nobody"
            seen |= watcher.take_changed()
        _changes_through(watcher, paths, "m2")  # every change of a1's write has come
        RecordStore(paths).read("a1")  # reading a record (open, close) is no change
        seen = _changes_through(watcher, paths, "m3") | _changes_through(watcher, paths, "m4")
        assert "a1.json" not in seen, "a waiter must not wake itself by reading the records"


def test_wait_for_works_on_the_polling_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(watch, "_native_observer", lambda: (_ for _ in ()).throw(OSError(errno.ENOSPC, "no watches")))
    paths = StatePaths(tmp_path)
    paths.ensure()
    store = RecordStore(paths)
    rec = StatusRecord(agent="a1", run_id="r", task="t", status=State.QUEUED)
    store.write(rec)
    fd = os.open(paths.alive_lock("a1"), os.O_RDWR | os.O_CREAT)  # a live 'supervisor': this test
    from filelock import lock_descriptor

    assert lock_descriptor(fd, blocking=False)

    def finish():
        read_queued.wait(timeout=30)  # the waiter has read the record as queued (its observer started before)
        move(rec, State.STARTING)
        move(rec, State.RUNNING)
        store.write(rec)
        move(rec, State.COMPLETED)
        store.write(rec)

    seen = []
    read_queued = threading.Event()

    def on_change(r, prev):
        seen.append(str(r.status))
        if r.state is State.QUEUED:
            read_queued.set()

    t = threading.Thread(target=finish, daemon=True)
    t.start()
    try:
        # recheck_s > timeout: only the polling observer can wake the waiter in time
        recs = wait_for(store, ["a1"], timeout=20, on_change=on_change, recheck_s=30)
    finally:
        read_queued.set()  # if wait_for failed before its first read, let the thread end
        t.join(timeout=30)
        os.close(fd)
    assert recs is not None and str(recs[0].status) == "completed"
    assert seen[0] == "queued" and seen[-1] == "completed"


# -- network filesystems: the polling observer, since inotify sees no other host's writes --

class _Part(typing.NamedTuple):  # the fields of psutil's sdiskpart that network_fs_of reads
    device: str
    mountpoint: str
    fstype: str
    opts: str = "rw"


@pytest.mark.parametrize(("fstype", "network"), [
    ("nfs", True), ("nfs4", True), ("NFS4", True), (" nfs ", True), ("lustre", True), ("gpfs", True),
    ("beegfs", True), ("ceph", True), ("fuse.ceph-fuse", True), ("fuse.glusterfs", True), ("cifs", True),
    ("smb3", True), ("smbfs", True), ("panfs", True), ("wekafs", True), ("pvfs2", True), ("afs", True),
    ("gfs2", True), ("ocfs2", True), ("fuse.sshfs", True),
    ("ext4", False), ("xfs", False), ("btrfs", False), ("zfs", False), ("tmpfs", False), ("overlay", False),
    ("apfs", False), ("9p", False), ("virtiofs", False), ("fuse", False), ("fuse.portal", False), ("nfsd", False),
    ("", False),
])
def test_is_network_fs(fstype, network):
    assert watch.is_network_fs(fstype) is network


def _mount_table(monkeypatch, *parts: _Part) -> None:
    import psutil

    monkeypatch.setattr(psutil, "disk_partitions", lambda all=False: list(parts))


def test_network_fs_of_takes_the_longest_mount_point_of_the_resolved_path(tmp_path, monkeypatch):
    real = os.path.realpath(tmp_path)
    (tmp_path / "shared" / "local").mkdir(parents=True)
    (tmp_path / "sharedx").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "shared")
    _mount_table(
        monkeypatch,
        _Part("/dev/vda", "/", "ext4"),
        _Part("server:/export", f"{real}/shared/", "nfs4"),  # a trailing slash is no other mount point
        _Part("/dev/vdb", f"{real}/shared/local", "ext4"),   # a local disk mounted inside the share
        _Part("mds@tcp:/fs", f"{real}/scratch", "lustre"),
        _Part("tmpfs", f"{real}/scratch", "tmpfs"),           # mounted over the lustre one: it is what is seen
    )
    assert watch.network_fs_of(tmp_path / "shared") == "nfs4"
    assert watch.network_fs_of(tmp_path / "shared" / "not" / "made" / "yet") == "nfs4"
    assert watch.network_fs_of(tmp_path / "link" / "status") == "nfs4", "a symbolic link leads to the real mount"
    assert watch.network_fs_of(tmp_path / "shared" / "local" / "status") is None
    assert watch.network_fs_of(tmp_path / "sharedx") is None, "a mount point is a prefix of whole components only"
    assert watch.network_fs_of(tmp_path / "scratch") is None
    assert watch.network_fs_of(tmp_path) is None


def test_network_fs_of_never_raises(tmp_path, monkeypatch):
    import psutil

    def unreadable(all=False):
        raise PermissionError(errno.EACCES, "no mount table here")

    monkeypatch.setattr(psutil, "disk_partitions", unreadable)
    assert watch.network_fs_of(tmp_path) is None
    _mount_table(monkeypatch)  # no mount at all (a bare chroot)
    assert watch.network_fs_of(tmp_path) is None
    monkeypatch.setitem(sys.modules, "psutil", None)  # psutil cannot be imported
    assert watch.network_fs_of(tmp_path) is None


def test_watch_imports_psutil_only_when_it_looks_at_the_mounts():
    code = "import sys, claude_orchestrator.usecases.watch as w; print('psutil' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def _on_nfs(monkeypatch, folder) -> None:
    """``folder`` is now on an NFS mount, as far as the watcher can tell (it stays on the local disk underneath)."""
    import psutil

    real = psutil.disk_partitions(all=True)
    _mount_table(monkeypatch, *real, _Part("server:/export", os.path.realpath(folder), "nfs4"))


@pytest.mark.parametrize(("setting", "on_nfs", "mode", "network_fs"), [
    (None, False, "inotify", None),
    (None, True, "polling", "nfs4"),
    ("auto", True, "polling", "nfs4"),
    ("poll", False, "polling", None),
    ("poll", True, "polling", "nfs4"),
    ("inotify", True, "inotify", None),
    ("Native", True, "inotify", None),
])
def test_orchestrator_watch_and_the_filesystem_choose_the_observer(tmp_path, monkeypatch, setting, on_nfs, mode, network_fs):
    if setting is None:
        monkeypatch.delenv("ORCHESTRATOR_WATCH", raising=False)
    else:
        monkeypatch.setenv("ORCHESTRATOR_WATCH", setting)
    if on_nfs:
        _on_nfs(monkeypatch, tmp_path)
    with watch.DirWatcher(tmp_path / "status") as watcher:
        assert (watcher.mode, watcher.network_fs) == (mode, network_fs)
        if mode == "polling":
            interval = watch.NETWORK_POLL_INTERVAL_S if on_nfs else watch.POLL_INTERVAL_S
            assert watcher.poll_interval_s == interval and watcher.observer.timeout == interval


def test_forcing_inotify_still_falls_back_to_polling_if_it_cannot_start(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_WATCH", "inotify")
    monkeypatch.setattr(watch, "_native_observer", lambda: (_ for _ in ()).throw(OSError(errno.EMFILE, "no instances")))
    with watch.DirWatcher(tmp_path / "status") as watcher:
        assert watcher.mode == "polling" and watcher.poll_interval_s == watch.POLL_INTERVAL_S


def test_a_watcher_on_nfs_polls_and_wakes_on_a_change(tmp_path, monkeypatch):
    monkeypatch.delenv("ORCHESTRATOR_WATCH", raising=False)
    monkeypatch.setattr(watch, "NETWORK_POLL_INTERVAL_S", 0.2)  # quicker for the test; unlike POLL_INTERVAL_S
    native = []
    monkeypatch.setattr(watch, "_native_observer", lambda: native.append(1))
    paths = StatePaths(tmp_path)
    paths.ensure()
    _on_nfs(monkeypatch, tmp_path)
    with watch.DirWatcher(paths.status_dir) as watcher:
        assert (watcher.mode, watcher.network_fs, watcher.observer.timeout) == ("polling", "nfs4", 0.2)
        assert not native, "no inotify observer is started on a network filesystem"
        _write_record(paths, "a1", State.RUNNING)  # temp file + os.replace, as a supervisor on another host writes
        seen: set[str] = set()
        while "a1.json" not in seen:
            assert watcher.wait(30), "the replaced record woke nobody"
            seen |= watcher.take_changed()
        assert _changes_through(watcher, paths, "m1") == {"m1.json"}


def test_a_supervisor_waiting_for_dependencies_on_nfs_is_woken_by_polling(tmp_path, monkeypatch):
    # A compute node's supervisor waits for its --after agents through the same DirWatcher.
    from claude_orchestrator.supervisor import waits

    monkeypatch.delenv("ORCHESTRATOR_WATCH", raising=False)
    monkeypatch.setattr(waits, "DEPENDENCY_RECHECK_S", 600.0)  # only the observer can wake the wait in time
    watchers: list[watch.DirWatcher] = []

    class Spy(watch.DirWatcher):
        def __enter__(self):
            watchers.append(self)
            return super().__enter__()

    monkeypatch.setattr(watch, "DirWatcher", Spy)
    looked = threading.Event()
    real_states = waits.dependency_states

    def dependency_states(store, deps, judge_local=True):
        states = real_states(store, deps, judge_local)
        looked.set()
        return states

    monkeypatch.setattr(waits, "dependency_states", dependency_states)
    paths = StatePaths(tmp_path)
    paths.ensure()
    _on_nfs(monkeypatch, tmp_path)
    store = RecordStore(paths)
    rec = StatusRecord(agent="dep", run_id="r", task="t", status=State.QUEUED)
    move(rec, State.STARTING)
    move(rec, State.RUNNING)
    store.write(rec)
    fd = os.open(paths.alive_lock("dep"), os.O_RDWR | os.O_CREAT)  # a live 'supervisor' of dep: this test
    from filelock import lock_descriptor

    assert lock_descriptor(fd, blocking=False)
    result: list[dict[str, str]] = []
    t = threading.Thread(target=lambda: result.append(waits.await_dependencies(paths, store, ["dep"], lambda: False)), daemon=True)
    t.start()
    try:
        assert looked.wait(30), "the wait never read its dependency"  # its watcher was on before that read
        move(rec, State.COMPLETED)
        store.write(rec)
        t.join(timeout=30)
        assert not t.is_alive(), "the dependency's end did not wake the wait"
    finally:
        os.close(fd)
    assert result == [{"dep": "completed"}]
    assert [(w.mode, w.network_fs) for w in watchers] == [("polling", "nfs4")]


def test_live_progress_and_tail_follow_on_the_real_cli(real_kit, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    gate = work / "gate"  # the tool's command waits for it: the run goes on until the test opens it
    task = "step by step [[bash: until test -e gate; do sleep 0.1; done; echo from-the-tool]]"
    assert real_kit.run("launch_agent", "live", "--cwd", str(work), "--allowed-tools", "Bash", task).returncode == 0
    lines = []
    with real_kit.start("tail_agent", "live", "-f") as tail:
        try:
            while (line := tail.out.next(timeout=60, end_ok=True)) is not None:  # tail -f ends with the run
                lines.append(line)
                if line.startswith("→ Bash"):
                    # the tool call is shown while the run still goes on (its command waits for the gate);
                    # the record's progress follows the transcript within its write throttle
                    rec = wait_until(lambda: (r := real_kit.record("live")) and r.get("last_tool") and r, what="the tool call in the record")
                    assert rec["status"] == "running"
                    assert rec["num_turns"] >= 1 and rec["last_tool"]["name"] == "Bash"
                    assert "from-the-tool" in rec["last_tool"]["input"]
                    assert rec["tokens"]["input"] > 0
                    table = real_kit.run("check_status").stdout
                    assert "LAST TOOL" in table and "Bash:" in table
                    assert real_kit.record("live")["status"] == "running", "the run waits for the gate"
                    gate.write_text("go")  # only now can the tool, and then the run, end
            tail.wait(timeout=60)
        finally:
            gate.touch()  # on a failure, let the run end
    text = "\n".join(lines)
    assert gate.read_text() == "go", "the tool call was shown while the run went on"
    assert lines[0].startswith("── session")
    assert any(line.startswith("→ Bash: until test -e gate") for line in lines), text
    assert "← result:" in text and "from-the-tool" in text
    assert lines[-2] == "Tool said: from-the-tool" and lines[-1].startswith("══ done · 2 turns")
    assert real_kit.record("live")["status"] == "completed"


def test_tail_agent_errors(fake_kit):
    assert fake_kit.run("tail_agent", "ghost").returncode == 4
    assert fake_kit.run("launch_agent", "a1", "x", "--wait").returncode == 0
    assert fake_kit.run("tail_agent", "a1", "--run", "nope").returncode == 4
    shown = fake_kit.run("tail_agent", "a1")
    assert shown.returncode == 0 and "FAKE: x" in shown.stdout
    raw = fake_kit.run("tail_agent", "a1", "--raw")
    assert [json.loads(line)["type"] for line in raw.stdout.splitlines()] == ["system", "user", "assistant", "result"]


def test_summary_shows_totals_and_speedup(fake_kit, tmp_path):
    gate = tmp_path / "gate"  # both slow runs wait for it: they surely run at the same time
    names = ["s1", "s2", "bad"]
    out = fake_kit.run("launch_parallel", "--names", ",".join(names), f"[[fake: until:{gate}]]", f"[[fake: until:{gate}]]", "[[fake: crash]]")
    assert out.returncode == 0, out.stderr
    try:
        wait_until(lambda: all(fake_kit.record(n)["status"] == "running" for n in ("s1", "s2")), what="both gated runs running")
    finally:
        gate.write_text("go")
    assert fake_kit.run("wait_agents", *names).returncode == 1
    recs = [fake_kit.record(n) for n in names]
    assert [r["status"] for r in recs] == ["completed", "completed", "failed"]
    assert all(r["started"] and r["finished"] for r in recs)
    out = fake_kit.run("check_status", "--summary")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert lines[0] == "3 agent(s): 2 completed, 1 failed"
    listed = [line.split()[0] for line in lines[lines.index(next(x for x in lines if x.startswith("AGENT"))) + 1:-1]]
    assert sorted(listed) == sorted(names)
    by_name = {r["agent"]: r for r in recs}
    starts = {n: parse_time(by_name[n]["started"]) for n in listed}
    ends = {n: parse_time(by_name[n]["finished"]) for n in listed}
    assert max(starts["s1"], starts["s2"]) < min(ends["s1"], ends["s2"]), "the two gated runs overlapped"
    # the summary's figures, from the records' own times (summed in the summary's order): the wall time is
    # the union of the run intervals (the crashing run may have ended before a gated one started)
    busy, reach = 0.0, None
    for start, end in sorted((starts[n], ends[n]) for n in listed):
        busy, reach = (busy + end - start, end) if reach is None or start > reach else (busy + max(0.0, end - reach), max(end, reach))
    total = sum(ends[n] - starts[n] for n in listed)
    assert lines[1].startswith(f"wall time {fmt_duration(busy)} while any ran")
    assert lines[1].endswith(f"; sum of run times {fmt_duration(total)}; "
                             f"parallel speed-up {total / busy:.1f}x (sum of run times / wall time while any ran)")
    assert lines[-1].startswith("TOTAL") and "$0.0020" in lines[-1]


def test_check_status_watch_redraws_on_change(fake_kit):
    with fake_kit.start("check_status", "--watch") as watcher:
        assert watcher.out.next().strip() == "no agents yet"
        assert fake_kit.run("launch_agent", "w1", "[[fake: slow:0.3]]").returncode == 0
        seen = "\n".join(watcher.out.until(lambda ls: "completed" in ls[-1]))
        assert "w1" in seen


def test_on_complete_runs_once_with_the_agent_in_its_environment(fake_kit, tmp_path):
    log = tmp_path / "done.log"
    script = "import os,sys; open(sys.argv[1],'a').write(' '.join(os.environ[k] for k in ('ORCHESTRATOR_AGENT','ORCHESTRATOR_STATUS','ORCHESTRATOR_RECORD'))+'\\n')"
    cmd = f"{sys.executable} -c \"{script}\" {log}"
    assert fake_kit.run("launch_agent", "a1", "x", "--on-complete", cmd).returncode == 0
    wait_until(lambda: (r := fake_kit.record("a1")) and "exit_code" in r.get("on_complete", {}), what="on-complete recorded")
    assert log.read_text().splitlines() == [f"a1 completed {fake_kit.root / 'status' / 'a1.json'}"]
    assert fake_kit.record("a1")["on_complete"]["exit_code"] == 0


def test_a_failing_on_complete_is_logged_not_fatal(fake_kit):
    assert fake_kit.run("launch_agent", "a1", "x", "--on-complete", "/nonexistent/hook arg").returncode == 0
    rec = wait_until(lambda: (r := fake_kit.record("a1")) and "exit_code" in r.get("on_complete", {}) and r, what="on-complete recorded")
    assert rec["status"] == "completed" and rec["on_complete"]["error"]
    for name, hook in (("a2", "'unclosed"), ("a3", "")):
        code, _, err = run_cli("launch_agent", name, "x", "--on-complete", hook, env=fake_kit.env)
        assert code == 2 and "--on-complete" in err, (hook, err)
        assert fake_kit.record(name) is None


def test_dashboard_without_tmux_says_so(fake_kit):
    env = dict(fake_kit.env, PATH="/nonexistent")
    out = subprocess.run([sys.executable, "-m", "claude_orchestrator.dashboard", "--no-attach"], env=env, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 127 and "tmux is not installed" in out.stderr


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed on this machine")
def test_dashboard_builds_one_pane_per_active_agent(fake_kit):
    assert fake_kit.run("launch_parallel", "--names", "d1,d2", "[[fake: hang]]", "[[fake: hang]]").returncode == 0
    session = f"orch-test-{os.getpid()}"
    try:
        out = subprocess.run([sys.executable, "-m", "claude_orchestrator.dashboard", "--session", session, "--no-attach"],
                             env=fake_kit.env, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        panes = subprocess.run(["tmux", "list-panes", "-t", session], capture_output=True, text=True, timeout=30).stdout.splitlines()
        assert len(panes) == 3
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=30)
        fake_kit.run("kill_agent", "--all", "--grace", "1")
