"""The fake Messages API: directives, SSE framing, errors and the request log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from claude_orchestrator.devtools.fake_api import plan_reply, user_prompt


def _post(url: str, body: dict) -> tuple[int, str]:
    req = urllib.request.Request(url + "/v1/messages?beta=true", data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _user(*blocks: str) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": b} for b in blocks]}


def test_prompt_skips_system_reminders():
    body = {"messages": [_user("<system-reminder>ctx</system-reminder>", "the task")]}
    assert user_prompt(body) == "the task"


def test_directives_choose_the_reply():
    assert plan_reply({"messages": [_user("hi")]})["blocks"] == [{"type": "text", "text": "OK: hi"}]
    assert plan_reply({"messages": [_user("[[reply: yes]]")]})["blocks"][0]["text"] == "yes"
    tool = plan_reply({"messages": [_user("x [[bash: ls -l]]")]})
    assert tool["stop_reason"] == "tool_use" and tool["blocks"][0]["input"]["command"] == "ls -l"
    after = {"messages": [_user("x [[bash: ls]]"), {"role": "assistant", "content": []},
                          {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "file.txt"}]}]}
    assert plan_reply(after)["blocks"][0]["text"] == "Tool said: file.txt"
    assert plan_reply({"messages": [_user("[[status: 529]]")]})["status"] == 529
    assert plan_reply({"messages": [_user("[[delay: 0.5]]")]})["delay"] == 0.5


def test_streams_sse_and_records_requests(fake_api):
    status, text = _post(fake_api.url, {"stream": True, "model": "m", "messages": [_user("[[reply: hello world]]")]})
    assert status == 200
    events = [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    datas = [json.loads(line[len("data: "):]) for line in text.splitlines() if line.startswith("data: ")]
    assert datas[2]["delta"]["text"] == "hello world"
    assert fake_api.messages_requests()[0]["messages"][0]["content"][0]["text"] == "[[reply: hello world]]"


@pytest.mark.parametrize("code", [401, 429, 529])
def test_http_errors(fake_api, code):
    status, text = _post(fake_api.url, {"stream": True, "messages": [_user(f"[[status: {code}]]")]})
    assert status == code and json.loads(text)["type"] == "error"


def test_non_streaming_reply(fake_api):
    status, text = _post(fake_api.url, {"stream": False, "messages": [_user("[[reply: plain]]")]})
    assert status == 200 and json.loads(text)["content"][0]["text"] == "plain"
