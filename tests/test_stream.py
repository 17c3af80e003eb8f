"""The CLI's stream is untrusted input: stream.py never raises on any line or event shape (issue 11)."""

from __future__ import annotations

import json

import pytest

from claude_orchestrator.claude.stream import (
    MAX_LINE_BYTES,
    LineBuffer,
    RunProgress,
    SkippedLine,
    classify,
    clean_result,
    parse_event,
    parse_line,
)
from claude_orchestrator.core.states import State

SID = "0b5f0f4e-7b8a-4c1e-9d2f-3a4b5c6d7e8f"

# -- parse_event / parse_line ---------------------------------------------------


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"\xff\xfe not UTF-8", "not valid UTF-8: byte 0xff at offset 0"),
        (b'{"type": "x", "t": "\xc3\x28"}', "byte 0xc3 at offset 20"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"[1, 2, 3]", "a JSON array, not an object"),
        (b"42", "a JSON number, not an object"),
        (b'"text"', "a JSON string, not an object"),
        (b"null", "a JSON null"),
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        ("\x00{}".encode("utf-16"), "not valid UTF-8"),  # never guessed at as UTF-16
    ],
)
def test_a_line_that_is_not_a_json_object_is_refused_with_the_reason(line, why):
    with pytest.raises(SkippedLine, match=why.replace("(", r"\(")):
        parse_event(line)
    assert parse_line(line) is None


def test_a_json_object_parses_from_bytes_and_from_text():
    assert parse_event(b'{"type": "system"}') == {"type": "system"}
    assert parse_line('{"type": "result"}') == {"type": "result"}


def test_nesting_just_parseable_is_fed_without_raising():
    deep = {"type": "assistant", "message": {"id": "m1", "content": [{"type": "tool_use", "name": "T", "input": {}}]}}
    node = deep["message"]["content"][0]
    for _ in range(900):  # json.loads takes it; json.dumps of the tool input may not
        node["input"] = {"x": node["input"]}
    try:
        event = parse_event(json.dumps(deep))
    except (SkippedLine, RecursionError):
        pytest.skip("this interpreter cannot dump or load 900 levels")
    progress = RunProgress()
    assert progress.feed(event) is True
    assert progress.last_tool["name"] == "T" and isinstance(progress.last_tool["input"], str)


# -- RunProgress.feed -----------------------------------------------------------

ODD_EVENTS = [
    {},
    {"type": None},
    {"type": ["assistant"]},
    {"type": {"a": 1}},
    {"type": "no_such_type", "data": 1},
    {"type": "user", "message": "a string"},
    {"type": "assistant"},
    {"type": "assistant", "message": "a message that is a string"},
    {"type": "assistant", "message": ["a", "list"]},
    {"type": "assistant", "message": None},
    {"type": "assistant", "message": {"id": "m1", "content": "content that is a string"}},
    {"type": "assistant", "message": {"id": "m2", "content": {"type": "tool_use"}}},
    {"type": "assistant", "message": {"id": "m3", "content": 7}},
    {"type": "assistant", "message": {"id": "m4", "content": [1, "x", None, ["nested"], {"type": "tool_use"}]}},
    {"type": "assistant", "message": {"id": "m5", "content": [{"type": "tool_use", "name": {"n": 1}, "input": [float("nan")]}]}},
    {"type": "assistant", "message": {"id": ["unhashable"], "content": []}},
    {"type": "assistant", "message": {"id": {"d": 1}, "content": []}, "uuid": ["also", "unhashable"]},
    {"type": "assistant", "message": {"id": "m6", "usage": "none"}},
    {"type": "assistant", "message": {"id": "m7", "usage": {"input_tokens": "ten", "output_tokens": [5], "cache_read_input_tokens": {"n": 1}}}},
    {"type": "assistant", "message": {"id": "m8", "usage": {"input_tokens": float("nan"), "output_tokens": float("inf")}}},
    {"type": "assistant", "message": {"id": "m9", "usage": {"input_tokens": 10**400, "output_tokens": -5, "cache_creation_input_tokens": True}}},
    {"type": "system", "subtype": "init", "session_id": 12345, "model": ["not", "a", "string"]},
    {"type": "system", "subtype": "init", "session_id": "not-a-uuid", "model": "m" * 10_000},
    {"type": "system", "subtype": ["init"]},
    {"type": "result"},
    {"type": "result", "subtype": 7, "is_error": "nope", "num_turns": "three", "result": ["not", "text"],
     "session_id": 99, "total_cost_usd": "free", "usage": "none", "api_error_status": {"code": 1}, "errors": "oops"},
    {"type": "result", "num_turns": True, "total_cost_usd": float("nan"), "usage": {"input_tokens": {"deep": [[[[1]]]]}},
     "errors": [1, None, {"e": 1}, "text" * 1000], "api_error_status": 10**30},
    {"type": "result", "num_turns": -3, "total_cost_usd": -1.0, "is_error": None, "result": None},
    {"type": "result", "num_turns": 10**40, "total_cost_usd": float("inf"), "subtype": "x" * 10_000},
]


@pytest.mark.parametrize("event", ODD_EVENTS, ids=range(len(ODD_EVENTS)))
def test_every_odd_event_shape_feeds_without_raising(event):
    progress = RunProgress()
    progress.feed(event)
    tokens = progress.tokens
    assert set(tokens) == {"input", "output"} and all(type(v) is int and v >= 0 for v in tokens.values())
    assert type(progress.num_turns) is int and progress.num_turns >= 0
    assert progress.session_id is None  # nothing here is a session ID
    assert progress.model is None or (isinstance(progress.model, str) and len(progress.model) <= 200)
    if progress.last_tool is not None:
        assert all(isinstance(v, str) for v in progress.last_tool.values())
    state, error = classify(progress.result, 0)
    assert isinstance(state, State) and (error is None or isinstance(error, str))
    json.dumps(progress.result, allow_nan=False)  # what reaches the record is plain JSON


def test_non_dict_events_feed_without_raising():
    progress = RunProgress()
    for event in ([1], "x", 3, None):
        assert progress.feed(event) is False
        assert progress.problem


def test_odd_shapes_are_named_in_problem_and_understood_events_are_not():
    progress = RunProgress()
    progress.feed({"type": "assistant", "message": "a string"})
    assert "'message' is a JSON string" in progress.problem
    progress.feed({"type": "assistant", "message": {"id": "m1", "content": "text"}})
    assert "'content' is a JSON string" in progress.problem
    progress.feed({"type": "system", "subtype": "init", "session_id": 5, "model": "sonnet"})
    assert "session_id" in progress.problem and progress.model == "sonnet"
    progress.feed({"type": "rate_limit_event"})
    assert "unknown type 'rate_limit_event'" in progress.problem
    progress.feed({"type": "rate_limit_event"})
    assert progress.problem is None, "an unknown type is reported once"
    progress.feed({"type": "result", "subtype": "success", "is_error": "no", "num_turns": "3"})
    assert "is_error" in progress.problem and "num_turns" in progress.problem
    for fine in (
        {"type": "system", "subtype": "init", "session_id": SID, "model": "claude-x"},
        {"type": "system", "subtype": "api_retry"},
        {"type": "user", "message": {"content": "prompt text"}},
        {"type": "assistant", "message": {"id": "m2", "content": [{"type": "text", "text": "hi"}]}},
        {"type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "session_id": SID},
    ):
        progress.feed(fine)
        assert progress.problem is None, fine


def test_a_good_run_after_odd_events_is_read_as_usual():
    progress = RunProgress()
    for event in ODD_EVENTS:
        progress.feed(event)
    progress.feed({"type": "system", "subtype": "init", "session_id": SID, "model": "claude-x"})
    progress.feed({"type": "assistant", "message": {"id": "msg_ok", "content": [{"type": "tool_use", "name": "Bash", "input": {"command": "ls"}}],
                                                    "usage": {"input_tokens": 3, "output_tokens": 2}}})
    result = {"type": "result", "subtype": "success", "is_error": False, "result": "done", "num_turns": 2, "session_id": SID,
              "total_cost_usd": 0.25, "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "output_tokens": 7,
                                                "server_tool_use": {"web_search_requests": 0}, "service_tier": "standard", "iterations": []}}
    progress.feed(result)
    assert progress.session_id == SID and progress.model == "claude-x"
    assert progress.last_tool == {"name": "Bash", "input": '{"command": "ls"}'}
    assert progress.tokens == {"input": 15, "output": 7} and progress.num_turns == 2, "odd results count no turns"
    assert progress.result["usage"] == result["usage"], "a usage of the real shape is kept as it is"
    assert progress.result["total_cost_usd"] == 0.25 and progress.result["result"] == "done"
    assert classify(progress.result, 0) == (State.COMPLETED, None)


def test_tokens_add_up_per_message_before_the_result():
    progress = RunProgress()
    progress.feed({"type": "assistant", "message": {"id": "a", "usage": {"input_tokens": 1, "cache_creation_input_tokens": 2, "output_tokens": 3}}})
    progress.feed({"type": "assistant", "message": {"id": "a", "usage": {"input_tokens": 1, "cache_creation_input_tokens": 2, "output_tokens": 4}}})
    progress.feed({"type": "assistant", "message": {"id": "b", "usage": {"input_tokens": "x", "output_tokens": 1.5}}})
    assert progress.tokens == {"input": 3, "output": 5}
    assert progress.num_turns == 2


# -- classify -------------------------------------------------------------------


@pytest.mark.parametrize("event", [e for e in ODD_EVENTS if e.get("type") == "result"] + [{}, {"is_error": [1]}, {"errors": [[[]]]}])
@pytest.mark.parametrize("exit_code", [0, 1, -9, None])
def test_classify_never_raises_on_odd_result_events(event, exit_code):
    state, error = classify(event, exit_code)
    assert state is State.FAILED and isinstance(error, str) and 0 < len(error) <= 1000
    assert classify(clean_result(event), exit_code) == (state, error), "raw and cleaned agree"


def test_classify_as_before_on_well_formed_events():
    ok = {"type": "result", "subtype": "success", "is_error": False, "result": "x"}
    assert classify(ok, 0) == (State.COMPLETED, None)
    assert classify(ok, 1) == (State.FAILED, "exit status 1")
    assert classify(None, 3) == (State.FAILED, "the CLI exited with status 3 without a result event")
    assert classify(None, -9) == (State.FAILED, "the CLI was killed by signal 9 without a result event")
    api = {"subtype": "success", "is_error": True, "result": "API Error: 529 overloaded\nmore", "api_error_status": 529}
    assert classify(api, 0) == (State.FAILED, "API Error: 529 overloaded")
    assert classify({"subtype": "error_max_turns", "is_error": True, "errors": ["too many"]}, 1) == (
        State.FAILED, "error_max_turns: too many: exit status 1")


def test_clean_result_is_idempotent_and_of_the_records_types():
    raw = ODD_EVENTS[-4]
    once = clean_result(raw)
    assert clean_result(once) == once
    assert once["subtype"] is None and once["is_error"] is True and once["num_turns"] is None
    assert once["total_cost_usd"] is None and once["usage"] is None and once["api_error_status"] is None


# -- LineBuffer -----------------------------------------------------------------


def _run(buffer: LineBuffer, chunks: list[bytes]) -> tuple[bytes, list]:
    out, lines = [], []
    for chunk in chunks:
        o, done = buffer.push(chunk)
        out += o
        lines += done
    o, done = buffer.close()
    return b"".join(out + o), lines + done


def test_lines_come_out_whole_whatever_the_chunks():
    stream = b'{"a": 1}\n{"b": 2}\n\n{"c": 3}'
    for size in (1, 2, 3, 5, 8, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        out, lines = _run(LineBuffer(), chunks)
        assert out == stream + b"\n", size
        assert lines == [b'{"a": 1}', b'{"b": 2}', b"", b'{"c": 3}'], size


def test_a_line_over_the_cap_is_passed_through_not_held():
    buffer = LineBuffer(max_line=10)
    out1, lines1 = buffer.push(b"short\n" + b"x" * 8)
    assert out1 == [b"short\n"] and lines1 == [b"short"]
    out2, lines2 = buffer.push(b"y" * 8)  # 16 held bytes > 10: given out at once
    assert b"".join(out2) == b"x" * 8 + b"y" * 8 and lines2 == []
    out3, lines3 = buffer.push(b"z" * 100)
    assert out3 == [b"z" * 100] and lines3 == []
    out4, lines4 = buffer.push(b"zz\nnext\n")
    assert b"".join(out4) == b"zz\nnext\n" and lines4 == [118, b"next"]
    assert buffer.close() == ([], [])


def test_an_overlong_last_line_without_a_newline_is_counted_at_close():
    stream = b"ok\n" + b"q" * 50
    out, lines = _run(LineBuffer(max_line=20), [stream[i : i + 7] for i in range(0, len(stream), 7)])
    assert out == stream + b"\n" and lines == [b"ok", 50]


def test_the_default_cap_is_64_mib():
    assert MAX_LINE_BYTES == 64 * 1024 * 1024


def test_usage_that_is_not_numbers_is_named_and_counted_as_zero():
    progress = RunProgress()
    progress.feed({"type": "assistant", "message": {"id": "m", "usage": {"input_tokens": "ten", "output_tokens": 2}}})
    assert "not numbers" in progress.problem and progress.tokens == {"input": 0, "output": 2}
    progress.feed({"type": "assistant", "message": {"id": "n", "usage": "none"}})
    assert "'usage' is a JSON string" in progress.problem
    progress.feed({"type": "assistant", "message": {"id": "o", "usage": {"input_tokens": 1, "output_tokens": 0}}})
    assert progress.problem is None and progress.tokens == {"input": 1, "output": 2}


def test_turns_tokens_and_cost_over_several_turns_of_one_process():
    """stdin messages make more turns: each result's num_turns and usage are its turn's, its cost the process's
    so far (seen on 2.1.197 and 2.1.332); echoed stdin messages are counted."""
    progress = RunProgress()
    for n, (cost, text) in enumerate(((0.01, "one"), (0.021, "two")), 1):
        progress.feed({"type": "user", "isReplay": True, "message": {"role": "user", "content": f"message {n}"}})
        progress.feed({"type": "assistant", "message": {"id": f"m{n}", "content": [{"type": "text", "text": text}],
                                                        "usage": {"input_tokens": 100, "output_tokens": 1}}})
        assert progress.num_turns == n and progress.tokens == {"input": 100 * n, "output": 8 * (n - 1) + 1}
        progress.feed({"type": "result", "subtype": "success", "is_error": False, "num_turns": 1, "result": text,
                       "total_cost_usd": cost, "usage": {"input_tokens": 100, "output_tokens": 8}})
        assert progress.results == n and progress.replays == n
        assert progress.num_turns == n and progress.tokens == {"input": 100 * n, "output": 8 * n}
    assert progress.result["result"] == "two" and progress.result["total_cost_usd"] == 0.021
    progress.feed({"type": "user", "message": {"role": "user", "content": [{"type": "tool_result"}]}})
    assert progress.replays == 2, "a tool result is not a message taken from stdin"
