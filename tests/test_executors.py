"""The executor interface and its registry: six methods behind an ABC, and a record of an
executor this toolkit does not know, which is never judged, stopped or rewritten."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from conftest import run_cli

from claude_orchestrator.core.errors import BadInput
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import ExitCode, State
from claude_orchestrator.executors import registry
from claude_orchestrator.executors.base import Executor, Verdict
from claude_orchestrator.records.status_record import RecordStore, StatusRecord


def public_methods(cls: type) -> list[str]:
    return sorted(n for n, v in vars(cls).items() if not n.startswith("_") and (inspect.isfunction(v) or isinstance(v, classmethod)))


def test_the_interface_is_abstract_with_at_most_six_public_methods():
    methods = public_methods(Executor)
    assert len(methods) <= 6, methods
    assert inspect.isabstract(Executor)
    assert set(Executor.__abstractmethods__) == {"submit", "probe", "stop", "unreadable_runs"}
    with pytest.raises(TypeError):
        Executor()  # type: ignore[abstract]


@pytest.mark.parametrize("name", registry.NAMES)
def test_every_registered_executor_implements_the_interface_and_nothing_more(name):
    cls = registry.executor_class(name)
    assert issubclass(cls, Executor) and not inspect.isabstract(cls) and cls.name == name
    assert set(public_methods(cls)) <= set(public_methods(Executor)), "a public method outside the interface"
    assert registry.get_executor(name) is registry.get_executor(name), "made once"


def test_an_unknown_executor_name_is_refused_with_the_known_ones():
    with pytest.raises(BadInput, match="no such executor; this release has: local, slurm"):
        registry.get_executor("k8s")


def _newer_toolkits_run(root: Path, name: str = "k1") -> Path:
    """A running record written by a newer toolkit with an executor this one does not know."""
    store = RecordStore(StatePaths(root))
    store.paths.ensure()
    rec = StatusRecord(agent=name, run_id="r1", task="t", status=State.RUNNING, supervisor_pid=1, supervisor_started=1.0)
    data = rec.to_dict()
    data["options"]["executor"] = "k8s"
    data["k8s_job_id"] = "pod-7"
    path = store.paths.status(name)
    path.write_text(json.dumps(data))
    return path


def test_a_run_of_an_unknown_executor_is_never_judged_stopped_or_rewritten(state_root):
    path = _newer_toolkits_run(state_root)
    before = path.read_bytes()
    rec = StatusRecord.from_dict(json.loads(before))
    answer = registry.executor_of(rec).probe(StatePaths(state_root), [rec])[0]
    assert answer.verdict is Verdict.UNKNOWN and "'k8s' is not one this toolkit knows" in answer.reason

    code, out, err = run_cli("check_status", "--json")
    assert code == 0, err
    (shown,) = json.loads(out)
    assert shown["status"] == "running", "not marked lost: its liveness cannot be told here"
    assert shown["executor"] == "k8s" and shown["k8s_job_id"] == "pod-7"
    assert "not one this toolkit knows" in shown["executor_unknown"]
    code, out, _ = run_cli("check_status")
    assert "running (executor k8s?)" in out

    code, out, err = run_cli("kill_agent", "k1")
    assert code == ExitCode.UNAVAILABLE, (code, out, err)
    assert err.count("\n") == 1 and "cannot stop k1" in err and "launched it" in err
    code, _, err = run_cli("launch_agent", "k1", "another task")
    assert code == ExitCode.CONFLICT, err
    code, _, err = run_cli("resume_agent", "k1", "more")
    assert code == ExitCode.CONFLICT, err
    assert path.read_bytes() == before, "the record was rewritten"


def test_a_resume_of_an_ended_unknown_executors_run_asks_where_to_run(state_root):
    path = _newer_toolkits_run(state_root, "k2")
    data = json.loads(path.read_text())
    data["status"] = "completed"
    data["session_id"] = "5f1c0de0-0000-4000-8000-000000000000"
    path.write_text(json.dumps(data))
    (state_root / "sessions" / "k2_session.txt").write_text(data["session_id"] + "\n")
    code, _, err = run_cli("resume_agent", "k2", "more")
    assert code == ExitCode.USAGE, err
    assert "last ran with executor 'k8s'" in err and "--executor" in err


def test_an_ended_unknown_executors_run_is_cleared_and_not_stopped(state_root):
    """Its run has ended: clear archives it as any ended run, kill has nothing of it to stop."""
    path = _newer_toolkits_run(state_root, "k3")
    data = json.loads(path.read_text())
    data["status"] = "lost"
    path.write_text(json.dumps(data))
    code, out, err = run_cli("kill_agent", "--all")
    assert code == ExitCode.OK, (out, err)
    code, out, err = run_cli("kill_agent", "k3")
    assert code == ExitCode.OK and "not running" in out + err, (out, err)
    assert json.loads(path.read_text()) == data, "the record was rewritten"
    code, out, err = run_cli("clear_outputs", "--all")
    assert code == ExitCode.OK, (out, err)
    assert not path.exists(), "an ended run is cleared, whatever its executor"


def test_an_unknown_executors_own_options_are_its_own_to_read(state_root):
    """``options.<executor>_args`` of an executor this toolkit does not know need not be a list: the record
    stays readable (never judged unreadable, so never cleared by a plain clear) and the value is kept."""
    path = _newer_toolkits_run(state_root, "k4")
    data = json.loads(path.read_text())
    data["options"]["k8s_args"] = {"namespace": "ci", "image": "x"}
    path.write_text(json.dumps(data))
    code, out, err = run_cli("check_status", "--json", "k4")
    assert code == 0 and json.loads(out)[0]["status"] == "running", (out, err)
    code, out, err = run_cli("clear_outputs", "--all")
    assert path.exists(), "a newer toolkit's running record was cleared"
    rec = StatusRecord.from_dict(json.loads(path.read_text()))
    assert rec.spec.executor_args == () and rec.to_dict()["options"]["k8s_args"] == {"namespace": "ci", "image": "x"}


def test_a_wait_for_every_active_agent_leaves_out_an_unknown_executors_run(state_root):
    """It could never tell that run's end: waiting on it would never return."""
    _newer_toolkits_run(state_root, "k5")
    code, out, err = run_cli("wait_agents", timeout=30)
    assert code == ExitCode.OK, (out, err)
    assert "not waiting for k5" in err and "not one this toolkit knows" in err
    assert "no active agents to wait for" in out
