"""Unit tests of claude_orchestrator/spec.py (RunSpec, Outcome) and the status record's schema 2.

tests/data/record_schema1.json and record_schema1_resumed.json are real
records written by the toolkit before schema 2 (launch_agent.py --after
first --on-complete true --isolation dir --model m --max-budget-usd 1
--timeout 60 --wait against the fake CLI, then resume_agent.py on the same
agent), with the temp state root's paths replaced by /state/... and the CLI's
by /usr/local/bin/claude.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from claude_orchestrator.claude.invocation import ClaudeOptions
from claude_orchestrator.core.errors import BadRecord
from claude_orchestrator.core.limits import RunLimits
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.core.states import State, StopReason
from claude_orchestrator.records.shape import SPARSE
from claude_orchestrator.records.spec import Outcome, RunSpec
from claude_orchestrator.records.status_record import SCHEMA, RecordStore, StatusRecord

DATA = Path(__file__).parent / "data"
SCHEMA1_LAUNCH = DATA / "record_schema1.json"
SCHEMA1_RESUMED = DATA / "record_schema1_resumed.json"


def full_spec() -> RunSpec:
    """A spec with every field away from its default."""
    return RunSpec(
        claude=ClaudeOptions(
            model="m",
            append_system_prompt="be brief",
            allowed_tools="Bash,Read",
            permission_mode="plan",
            dangerously_skip_permissions=True,
            max_turns=3,
            max_budget_usd=1.5,
            claude_args=["--verbose", "x y"],
        ),
        claude_bin="/usr/local/bin/claude",
        limits=RunLimits(
            timeout_s=60.0, kill_grace_s=2.0, memory_limit_mb=512.0, max_parallel=2, retries=1, retry_backoff_s=0.5
        ),
        cwd="/work",
        isolation="worktree",
        after=("a", "b"),
        after_any=True,
        context_from="c",
        resume_id="5f1c0de0-0000-4000-8000-000000000000",
        session_cwd="/work/before",
        fork=True,
        forked_from="d",
        on_complete=("notify-send", "done"),
        profile="reviewer",
        executor="slurm",
        executor_args=("--partition=gpu", "--hold"),
        keep_open_s=30.0,
        ask_permission=True,
        question_timeout_s=120.0,
        on_question=("notify-send", "a question"),
    )


def json_trip(data):
    return json.loads(json.dumps(data))


# --- RunSpec -----------------------------------------------------------------


def test_full_spec_sets_every_field():
    spec, default = full_spec(), RunSpec()
    unset = [f.name for f in dataclasses.fields(RunSpec) if getattr(spec, f.name) == getattr(default, f.name)]
    assert unset == []


def test_runspec_round_trip():
    spec = full_spec()
    data = spec.to_dict()
    assert RunSpec.from_dict(data) == spec
    assert RunSpec.from_dict(json_trip(data)) == spec


def test_runspec_keys_are_schema1_keys_plus_new_ones():
    schema1_options = json.loads(SCHEMA1_LAUNCH.read_text())["options"]
    keys = set(RunSpec().to_dict())
    assert set(schema1_options) <= keys
    assert keys - set(schema1_options) == {"cwd", "isolation", "resume_id", "forked_from", "executor"}
    # an executor's own options are stored under its name, only when it has some; a resume's session_cwd only when set
    # and the ways to talk to a run only when asked for
    assert set(full_spec().to_dict()) - keys == {"slurm_args", "session_cwd", "keep_open_s", "ask_permission", "question_timeout_s", "on_question"}
    assert full_spec().to_dict()["slurm_args"] == ["--partition=gpu", "--hold"]


def test_an_executor_reference_is_stored_under_its_executors_name():
    """The record's opaque ``executor_ref`` is ``<executor>_job_id`` on disk (``slurm_job_id``, as before)."""
    rec = StatusRecord(agent="a1", run_id="r1", task="t", spec=RunSpec(executor="slurm"), executor_ref="4711")
    data = json_trip(rec.to_dict())
    assert data["slurm_job_id"] == "4711" and "executor_ref" not in data
    assert StatusRecord.from_dict(data).executor_ref == "4711"
    # a local run has no reference and writes no key for one
    assert not any(k.endswith("_job_id") for k in StatusRecord(agent="a1", run_id="r1", task="t").to_dict())
    # a reference of the wrong type is not trusted: it stays an unknown key, written back as it was
    odd = StatusRecord.from_dict({**data, "slurm_job_id": 4711})
    assert odd.executor_ref is None and odd.to_dict()["slurm_job_id"] == 4711
    # an executor name that is not a plain word derives no key (records are untrusted input)
    weird = StatusRecord.from_dict({**data, "options": {"executor": "../x"}, "../x_job_id": "1"})
    assert weird.executor_ref is None and weird.to_dict()["../x_job_id"] == "1"


def test_runspec_defaults_from_nothing():
    assert RunSpec.from_dict(None) == RunSpec()
    assert RunSpec.from_dict({}) == RunSpec()
    assert RunSpec.from_dict(RunSpec().to_dict()) == RunSpec()


def test_runspec_is_frozen():
    spec = full_spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.after = ()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.resume_id = None  # type: ignore[misc]


def test_runspec_replace_makes_a_copy():
    spec = full_spec()
    other = spec.replace(resume_id=None, after=("z",))
    assert (other.resume_id, other.after) == (None, ("z",))
    assert (spec.resume_id, spec.after) == ("5f1c0de0-0000-4000-8000-000000000000", ("a", "b"))
    assert other.replace(resume_id=spec.resume_id, after=spec.after) == spec
    with pytest.raises(TypeError):
        spec.replace(no_such_field=1)


@pytest.mark.parametrize(
    ("resume_id", "fork", "new"),
    [(None, False, True), (None, True, True), ("s", False, False), ("s", True, True)],
)
def test_runspec_new_session(resume_id, fork, new):
    assert RunSpec(resume_id=resume_id, fork=fork).new_session is new


@pytest.mark.parametrize(("exit_code", "signal"), [(None, None), (0, None), (1, None), (127, None), (-9, 9), (-15, 15)])
def test_outcome_signal(exit_code, signal):
    assert Outcome(State.FAILED, exit_code=exit_code).signal == signal


def test_outcome_is_immutable():
    outcome = Outcome(State.TIMEOUT, error="timed out", exit_code=-15, is_error=True, stop_reason=StopReason.TIMEOUT)
    with pytest.raises(AttributeError):
        outcome.state = State.COMPLETED  # type: ignore[misc]
    assert outcome._replace(error="x").error == "x" and outcome.error == "timed out"


# --- StatusRecord, schema 2 ----------------------------------------------------

SPARSE_VALUES = {
    "stop_reason": "timeout",
    "isolation": "worktree",
    "worktree": {"path": "/w/agent1", "branch": "orchestrator/agent1/r1", "repo": "/w"},
    "slot_granted_at": 1795334829.4799259,
    "tree": [[101, 1795334829.3], [102, 1795334829.52]],
    "orphans": [[99, 1795334000.0]],
    "orphans_stopped": [99],
    "stop_grace_s": 2.5,
    "api_error_status": 529,
    "stopped_after_result": True,
    "on_complete": {"argv": ["true"], "exit_code": 0},
    "stream_lines_skipped": 3,
    "transcript_bytes_lost": 4096,
    "messages": {"received": 2, "delivered": 2, "answered": 1, "skipped": 0,
                 "last_received_at": "2026-11-22T08:07:12.000Z", "last_delivered_at": "2026-11-22T08:07:12.010Z"},
    "keep_open_until": "2026-11-22T08:07:20.000Z",
    "waiting_for": {"id": "q0123456789ab", "tool_name": "Bash", "input": {"command": "ls"},
                    "asked_at": "2026-11-22T08:07:13.000Z", "timeout_at": "2026-11-22T08:17:13.000Z"},
    "questions": {"asked": 1, "allowed": 0, "denied": 0, "timed_out": 0},
    "entered": {"queued": "2026-11-20T10:00:00.000Z", "starting": "2026-11-20T10:00:05.000Z"},
}


def full_record() -> StatusRecord:
    return StatusRecord(
        agent="agent1",
        run_id="20261122T080709Z-d323a8",
        task="review the code",
        status=State.TIMEOUT,
        created="2026-11-22T08:07:09.250Z",
        started="2026-11-22T08:07:09.366Z",
        finished="2026-11-22T08:07:19.394Z",
        status_changed="2026-11-22T08:07:19.394Z",
        duration_s=10.028,
        last_activity="2026-11-22T08:07:19.396Z",
        cwd="/state/workspaces/agent1",
        model="fake-model",
        session_id="dec0ec64-fe2d-4b18-9cbf-c609d92f039f",
        resumed_from="5f1c0de0-0000-4000-8000-000000000000",
        forked_from="d",
        pid=101,
        pid_started=1795334829.3,
        supervisor_pid=100,
        supervisor_started=1795334829.19,
        exit_code=-15,
        is_error=True,
        error="timed out after 10 s",
        attempt=2,
        num_turns=4,
        last_tool={"name": "Bash", "input": "ls"},
        tokens={"input": 10, "output": 5},
        cost_usd=0.001,
        usage={"input_tokens": 10, "output_tokens": 5},
        peak_rss_mb=10.9,
        memory_warnings=[{"at": "2026-11-22T08:07:10.000Z", "rss_mb": 9.5}],
        result="partial",
        output_file="/state/outputs/agent1_latest.txt",
        transcript_file="/state/outputs/agent1/r.jsonl",
        log_file="/state/outputs/agent1/r.log",
        task_file="/state/outputs/agent1/r.task",
        spec=full_spec(),
        executor_ref="4711",
        extra={"from_the_future": {"x": [1, 2]}},
        **SPARSE_VALUES,
    )


def test_full_record_sets_every_sparse_field():
    assert set(SPARSE_VALUES) == set(SPARSE)
    rec = full_record()
    assert all(getattr(rec, key) is not None for key in SPARSE)


def test_record_round_trip():
    rec = full_record()
    data = rec.to_dict()
    assert StatusRecord.from_dict(data) == rec
    assert StatusRecord.from_dict(json_trip(data)) == rec
    assert data["schema"] == SCHEMA == 2
    assert data["status"] == "timeout"
    assert data["options"] == json_trip(full_spec().to_dict())
    assert "spec" not in data and "extra" not in data
    for key, value in SPARSE_VALUES.items():
        assert data[key] == value


def test_record_round_trip_through_the_store(tmp_path):
    store = RecordStore(StatePaths(tmp_path))
    rec = full_record()
    store.write(rec)
    assert store.read("agent1") == rec


def test_unset_sparse_fields_are_not_written():
    data = StatusRecord(agent="a1", run_id="r1", task="t").to_dict()
    assert not set(SPARSE) & set(data)
    assert data["options"] == RunSpec().to_dict()
    assert "pid" in data and data["pid"] is None  # the other optional fields are written as null, as in schema 1


def test_unknown_keys_are_kept_and_written_back(tmp_path):
    data = {"agent": "a1", "run_id": "r1", "task": "t", "status": "running", "plugin_note": {"k": [1]}, "zz": None}
    rec = StatusRecord.from_dict(data)
    assert rec.extra == {"plugin_note": {"k": [1]}, "zz": None}
    out = rec.to_dict()
    assert (out["plugin_note"], out["zz"]) == ({"k": [1]}, None)
    store = RecordStore(StatePaths(tmp_path))
    store.write(rec)
    assert json.loads(store.paths.status("a1").read_text())["plugin_note"] == {"k": [1]}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("stop_reason", 5),
        ("isolation", 3),
        ("isolation", ["dir"]),
        ("slot_granted_at", "soon"),
        ("slot_granted_at", True),
        ("orphans", {"99": 1.0}),
        ("orphans_stopped", "99"),
        ("stop_grace_s", "2"),
        ("api_error_status", "529"),
        ("api_error_status", 529.0),
        ("stopped_after_result", 1),
        ("on_complete", ["true"]),
        ("stream_lines_skipped", True),
        ("transcript_bytes_lost", 1.5),
    ],
)
def test_sparse_field_of_the_wrong_type_stays_an_unknown_key(tmp_path, key, value):
    data = {"agent": "a1", "run_id": "r1", "task": "t", "status": "completed", key: value}
    rec = StatusRecord.from_dict(data)
    assert getattr(rec, key) is None  # not trusted
    assert rec.extra == {key: value}
    assert rec.to_dict()[key] == value  # not lost either
    store = RecordStore(StatePaths(tmp_path))
    store.paths.status_dir.mkdir(parents=True)
    store.paths.status("a1").write_text(json.dumps(data))
    assert store.read("a1").extra == {key: value}  # not an error


@pytest.mark.parametrize(("key", "value"), [("tree", "oops"), ("worktree", {"path": "/w"}), ("worktree", "w")])
def test_tree_and_worktree_of_the_wrong_shape_are_refused_as_in_schema_1(key, value):
    with pytest.raises(ValueError):
        StatusRecord.from_dict({"agent": "a1", key: value})


# --- schema 1 ----------------------------------------------------------------


def load_schema1(tmp_path: Path, source: Path) -> tuple[RecordStore, dict, StatusRecord]:
    store = RecordStore(StatePaths(tmp_path))
    store.paths.status_dir.mkdir(parents=True)
    original = json.loads(source.read_text())
    assert original["schema"] == 1
    shutil.copyfile(source, store.paths.status(original["agent"]))
    rec = store.read(original["agent"])
    assert rec is not None
    assert store.paths.status(original["agent"]).read_bytes() == source.read_bytes()  # reading changes nothing
    return store, original, rec


def test_schema1_launch_record_loads(tmp_path):
    _, original, rec = load_schema1(tmp_path, SCHEMA1_LAUNCH)
    assert (rec.agent, rec.run_id, rec.status) == ("agent1", original["run_id"], State.COMPLETED)
    assert rec.extra == {}  # every schema-1 key has a home now
    spec = rec.spec
    assert spec.after == ("first",) and spec.after_any is False
    assert spec.on_complete == ("true",)
    assert spec.claude.model == "m" and spec.claude.max_budget_usd == 1.0 and spec.claude.claude_args == []
    assert spec.claude_bin == "/usr/local/bin/claude"
    assert spec.limits == RunLimits(
        timeout_s=60.0, kill_grace_s=10.0, memory_limit_mb=2048.0, max_parallel=4, retries=0, retry_backoff_s=2.0
    )
    assert spec.resume_id is None and spec.fork is False and spec.new_session
    assert spec.context_from is None and spec.profile is None and spec.executor == "local"
    # schema 1 kept how the workspace was made at the top level, not in options
    assert rec.isolation == "dir"
    assert rec.cwd == "/state/workspaces/agent1"
    assert rec.tree == [[12531, 1795334829.3]]
    assert rec.on_complete == {"argv": ["true"], "exit_code": 0}
    assert rec.orphans is None and rec.slot_granted_at is None
    assert (rec.model, rec.exit_code, rec.tokens, rec.cost_usd) == ("fake-model", 0, {"input": 10, "output": 5}, 0.001)


def test_schema1_resumed_record_loads(tmp_path):
    _, original, rec = load_schema1(tmp_path, SCHEMA1_RESUMED)
    assert rec.extra == {}
    assert rec.resumed_from == original["resumed_from"]
    # schema 1 kept the resumed session only at the top level
    assert rec.spec.resume_id == original["resumed_from"] and not rec.spec.new_session
    assert rec.spec.after == () and rec.spec.on_complete == ("true",)
    assert rec.isolation == "dir"  # kept from the run before
    assert rec.slot_granted_at == 1795334829.4799259
    assert rec.tree == [[12541, 1795334829.52]]


@pytest.mark.parametrize("source", [SCHEMA1_LAUNCH, SCHEMA1_RESUMED], ids=lambda p: p.stem)
def test_schema1_written_back_is_schema2_and_loses_no_key(tmp_path, source):
    store, original, rec = load_schema1(tmp_path, source)
    assert rec.schema == 2
    store.write(rec)
    written = json.loads(store.paths.status("agent1").read_text())
    assert written["schema"] == 2
    assert set(original) <= set(written)
    assert {k: written[k] for k in original if k not in ("schema", "options")} == {
        k: v for k, v in original.items() if k not in ("schema", "options")
    }
    options, new_options = original["options"], written["options"]
    assert set(options) <= set(new_options)
    assert {k: new_options[k] for k in options} == options  # claude and limits whole, too
    assert store.read("agent1") == rec


@pytest.mark.parametrize("source", [SCHEMA1_LAUNCH, SCHEMA1_RESUMED], ids=lambda p: p.stem)
def test_schema1_record_survives_a_move(tmp_path, source):
    """A schema-1 record of a live run can still be moved (e.g. to lost) by the current code."""
    from claude_orchestrator.records import lifecycle

    store, original, _ = load_schema1(tmp_path, source)
    data = dict(original, status="running", finished=None, duration_s=None)
    store.paths.status("agent1").write_text(json.dumps(data))
    moved = lifecycle.change_state(store, "agent1", original["run_id"], State.LOST, error="supervisor gone")
    assert moved is not None and moved.status is State.LOST
    written = json.loads(store.paths.status("agent1").read_text())
    assert written["schema"] == 2 and set(original) <= set(written)


def test_a_newer_schemas_record_keeps_what_this_version_does_not_know():
    """A record written by a newer toolkit (say, with a cluster executor's keys) is written back whole."""
    newer = {
        "agent": "a1", "run_id": "r1", "task": "t", "status": "running", "schema": 3,
        "options": {"claude": {"model": "m"}, "executor": "local", "slurm": {"job_id": "42", "args": ["--hold"]}},
        "slurm_job_id": "42",
    }
    rec = StatusRecord.from_dict(newer)
    assert rec.spec.claude.model == "m"
    again = rec.to_dict()
    assert again["schema"] == 3, "the newer schema is kept, not lowered"
    assert again["options"]["slurm"] == {"job_id": "42", "args": ["--hold"]}
    assert again["slurm_job_id"] == "42"
    assert StatusRecord.from_dict(json.loads(json.dumps(again))) == rec


def _types_of(annotation: str) -> tuple[set[type], bool]:
    """The JSON types a dataclass field's annotation allows, and whether it allows None."""
    parts = [p.strip() for p in annotation.split("|")]
    nullable = "None" in parts
    named = {"str": {str}, "int": {int}, "float": {int, float}, "bool": {bool}, "State": {str}}
    types: set[type] = set()
    for p in parts:
        if p == "None":
            continue
        base = p.split("[", 1)[0]
        types |= named.get(base) or {{"dict": dict, "list": list}[base]}
    return types, nullable


def test_the_shape_checks_agree_with_the_record_dataclass():
    """The record's schema is declared once, in the dataclass: the shape tables that guard every read
    (records/shape.py) give each stored field exactly the types its annotation allows."""
    from claude_orchestrator.records import shape
    from claude_orchestrator.records.status_record import _NOT_STORED_AS_NAMED

    checked = {**shape._TYPES, **{k: (v, True) for k, v in shape.SPARSE.items()}}
    for f in dataclasses.fields(StatusRecord):
        if f.name in _NOT_STORED_AS_NAMED:
            continue
        assert f.name in checked, f"{f.name}: no shape check for a stored field"
        types, nullable = _types_of(f.type)
        got, got_nullable = checked[f.name]
        assert set(got) == types, f"{f.name}: the shape check allows {got}, the dataclass {f.type}"
        assert got_nullable == nullable, f"{f.name}: None allowed {got_nullable} by the shape check, {nullable} by the dataclass"
    stored = {f.name for f in dataclasses.fields(StatusRecord)} - _NOT_STORED_AS_NAMED
    assert set(checked) - stored == {"options"}, "a shape check for a field the record no longer has"


def test_the_spec_conversion_covers_every_field():
    """RunSpec.to_dict/from_dict convert every field (the dataclass is the one declaration):
    a spec with every field set survives the trip, and no stored key is left unread."""
    spec = full_spec()
    unset = [f.name for f in dataclasses.fields(RunSpec) if getattr(spec, f.name) == getattr(RunSpec(), f.name)]
    assert unset == []
    data = spec.to_dict()
    assert RunSpec.from_dict(json_trip(data)) == spec
    fields = {f.name for f in dataclasses.fields(RunSpec)} - {"executor_args"}
    assert set(data) == fields | {"slurm_args"}


def test_a_record_that_is_a_symlink_is_never_read_through(tmp_path):
    """status/NAME.json linked to a valid record elsewhere: unreadable (BadRecord), never followed out of the root."""
    elsewhere = RecordStore(StatePaths(tmp_path / "other"))
    elsewhere.paths.ensure()
    elsewhere.write(full_record())
    store = RecordStore(StatePaths(tmp_path / "root"))
    store.paths.ensure()
    store.paths.status("agent1").symlink_to(elsewhere.paths.status("agent1"))
    with pytest.raises(BadRecord, match="symlink"):
        store.read("agent1")
