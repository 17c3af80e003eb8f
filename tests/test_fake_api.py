"""The fake Messages API: directives, SSE framing, errors and the request log."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest

from claude_orchestrator.devtools.fake_api import directives, plan_reply, turn_tool_result, user_prompt


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


# Request bodies shaped as the real CLI sends them (recorded from GET /_requests, trimmed): the prompt's
# message, a system message after it, the scripted tool_use and its result, then, under --max-budget-usd,
# a budget message.  2.1.197 sends every system message's content as a string; 2.1.332 sends the last
# one as a list of one text block with cache_control.
_REMINDER = {"type": "text", "text": "<system-reminder>\nAs you answer the user's questions ...\n</system-reminder>\n"}


def _cli_body(prompt: str, *, ran: bool, budget: str | None, version: str) -> dict:
    def system(text: str, last: bool) -> dict:
        if last and version == "2.1.332":
            return {"role": "system", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}
        return {"role": "system", "content": text}

    msgs = [{"role": "user", "content": [_REMINDER, {"type": "text", "text": prompt}]}]
    msgs.append(system("Available agent types for the Agent tool: ...", last=not ran))
    if ran:
        msgs.append({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                                       "input": {"command": "echo x >> f.txt", "description": "Run"}}]})
        msgs.append({"role": "user", "content": [{"tool_use_id": "toolu_1", "type": "tool_result",
                                                  "content": "(Bash completed with no output)", "is_error": False}]})
        if budget:
            msgs.append(system(budget, last=True))
    return {"model": "claude-opus-5-5", "stream": True, "messages": msgs}


@pytest.mark.parametrize("version", ["2.1.197", "2.1.332"])
@pytest.mark.parametrize("budget", [None, "USD budget: $0.01112/$0.5; $0.48888 remaining"])
def test_a_tool_that_ran_is_not_called_again(version, budget):
    prompt = "[[bash: echo x >> f.txt]] go"
    first = plan_reply(_cli_body(prompt, ran=False, budget=budget, version=version))
    assert first["stop_reason"] == "tool_use" and first["blocks"][0]["input"]["command"] == "echo x >> f.txt"
    after = _cli_body(prompt, ran=True, budget=budget, version=version)
    assert user_prompt(after) == prompt
    assert turn_tool_result(after) == "(Bash completed with no output)"
    assert plan_reply(after) == {"status": 200, "delay": 0.0, "slow": 0.0, "stop_reason": "end_turn",
                                 "blocks": [{"type": "text", "text": "Tool said: (Bash completed with no output)"}]}


def test_a_new_prompt_starts_a_new_turn():
    """The tool results of an earlier turn (a resumed conversation) do not answer the new prompt."""
    body = _cli_body("[[bash: echo x >> f.txt]] go", ran=True, budget="USD budget: $0.01/$0.5; $0.49 remaining", version="2.1.332")
    body["messages"] += [{"role": "assistant", "content": [{"type": "text", "text": "Tool said: done"}]},
                         {"role": "user", "content": [_REMINDER, {"type": "text", "text": "[[bash: ls]] again"}]}]
    assert turn_tool_result(body) is None
    again = plan_reply(body)
    assert again["stop_reason"] == "tool_use" and again["blocks"][0]["input"]["command"] == "ls"


def test_a_tool_result_with_text_is_no_prompt():
    """A user message that carries a tool_result belongs to the turn, even with a text block beside it."""
    body = _cli_body("[[bash: ls]] go", ran=True, budget=None, version="2.1.332")
    body["messages"][-1]["content"].append({"type": "text", "text": "USD budget: $0.01/$0.5; $0.49 remaining"})
    assert user_prompt(body) == "[[bash: ls]] go"
    assert plan_reply(body)["blocks"][0]["text"] == "Tool said: (Bash completed with no output)"


def test_a_tool_result_as_blocks():
    body = _cli_body("[[bash: ls]] go", ran=True, budget=None, version="2.1.332")
    body["messages"][-1]["content"][0]["content"] = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert turn_tool_result(body) == "a\nb"


@pytest.mark.parametrize("prompt, expected", [
    ("[[bash: sh -c 'echo [[reply: hi]]']] go", {"bash": "sh -c 'echo [[reply: hi]]'"}),
    ("[[bash: [[ -f x ]] && echo yes]]", {"bash": "[[ -f x ]] && echo yes"}),
    ("[[bash: test [ -f x ]]]", {"bash": "test [ -f x ]"}),
    ("[[reply: a ] b]] [[delay: 0.5]]", {"reply": "a ] b", "delay": "0.5"}),
    ("[[reply: a [ b]] [[delay: 1]]", {"reply": "a [ b", "delay": "1"}),  # unbalanced: the first ]]
    ("see [[note]] then [[reply: x]] and [[reply: y]]", {"reply": "x"}),  # the first of each name
    ("[[reply: [[reply: inner]] outer]]", {"reply": "[[reply: inner]] outer"}),
    ("[[reply:\nline one\nline two\n]]", {"reply": "line one\nline two"}),
    ("[[reply: never closed", {}),
])
def test_directive_values_nest(prompt, expected):
    assert directives(prompt) == expected


def test_a_nested_directive_is_part_of_the_command():
    plan = plan_reply({"messages": [_user("[[bash: sh -c 'echo [[reply: hi]]']] go")]})
    assert plan["stop_reason"] == "tool_use" and plan["blocks"][0]["input"]["command"] == "sh -c 'echo [[reply: hi]]'"


def test_the_replies_table_still_scripts_a_prompt():
    replies = [("Which file?", "[[bash: sh -c 'echo [[x]]']]")]
    plan = plan_reply({"messages": [_user("Which file? tell me")]}, replies)
    assert plan["blocks"][0]["input"]["command"] == "sh -c 'echo [[x]]'"
    done = {"messages": [_user("Which file? tell me"), {"role": "assistant", "content": []},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "[x]"}]},
                         {"role": "system", "content": "USD budget: $0.01/$0.5; $0.49 remaining"}]}
    assert plan_reply(done, replies)["blocks"][0]["text"] == "Tool said: [x]"


def test_a_budget_does_not_loop_the_real_cli(fake_api, real_cli, tmp_path):
    """Issue 19, item 10: under --max-budget-usd the CLI (2.1.332) sends a budget message after the tool
    result; the fake API answers the turn anyway, so the tool runs once and the run takes 2 turns."""
    config, work = tmp_path / "claude-config", tmp_path / "work"
    config.mkdir()
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    env.update(CLAUDE_CONFIG_DIR=str(config), ANTHROPIC_BASE_URL=fake_api.url, ANTHROPIC_API_KEY="test-key-offline",
               CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
    done = subprocess.run(
        [str(real_cli), "-p", "--output-format", "stream-json", "--verbose", "--allowed-tools", "Bash",
         "--max-budget-usd", "0.5", "--max-turns", "5", "[[bash: echo x >> f.txt]] go"],
        env=env, cwd=work, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    events = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    [result] = [e for e in events if e.get("type") == "result"]
    assert done.returncode == 0, (done.returncode, result, done.stderr)
    assert result["subtype"] == "success" and result["num_turns"] == 2, result
    assert result["result"] == "Tool said: (Bash completed with no output)"
    uses = [b for e in events if e.get("type") == "assistant" for b in e["message"]["content"] if b.get("type") == "tool_use"]
    assert len(uses) == 1 and (work / "f.txt").read_text() == "x\n"
    second = fake_api.messages_requests()[-1]["messages"]
    assert second[-1]["role"] == "system" and "USD budget" in json.dumps(second[-1]), second[-1]
