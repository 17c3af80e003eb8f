"""A fake Anthropic Messages API on loopback, scripted by the prompt.

The real Claude Code CLI talks to whatever ``ANTHROPIC_BASE_URL`` names; this
server lets it run offline (docs/testing-offline.md).  It
answers ``POST /v1/messages`` with the usual SSE event sequence (or one JSON
message when ``"stream"`` is false) and records every request it got, so a test
can see the message history the CLI sent.

What the model "does" is scripted by directives in the latest user prompt:

``[[reply: TEXT]]``
    answer with TEXT (default: ``OK: `` followed by the prompt itself).
``[[bash: COMMAND]]``
    answer with a ``tool_use`` block for the ``Bash`` tool; once the CLI has
    sent a ``tool_result`` back (anywhere after the prompt: a budget message
    may follow it), answer ``Tool said: <output>``, so the tool runs once.
``[[tool: NAME {JSON}]]``
    answer with a ``tool_use`` block for the tool NAME with that input (a JSON
    object; ``{}`` if left out), e.g. ``[[tool: Skill {"skill": "orchestrator:background-agents"}]]``;
    then, as ``bash``, ``Tool said: <output>`` once the tool result came back.
``[[delay: SECONDS]]``
    wait before answering (on every request of the conversation's turn).
``[[slow: SECONDS]]``
    wait SECONDS between streamed chunks (slow replies, for live progress).
``[[status: CODE]]``
    answer with HTTP status CODE and an Anthropic-style error body.
``[[flaky: CODE N]]``
    answer the first N requests carrying this prompt with status CODE, then
    as if the directive were not there (a transient error, for retries).

A value may hold brackets, balanced: ``[[bash: sh -c 'echo [[reply: hi]]']]``
runs that whole command (the inner ``[[reply: hi]]`` is part of it).

Directives can also come from outside the prompt: a *replies* table maps a
text found in the prompt to the directives that prompt gets (the docs' tests
use one, so that a task written as a user would write it gets a scripted
answer).  ``--replies FILE`` reads it from TOML::

    [[reply]]
    task = "Which file did you write before?"   # found anywhere in the prompt
    directives = "[[reply: I wrote alpha.txt earlier in this session.]]"

Run it as ``python -m claude_orchestrator.devtools.fake_api [--port 0] [--port-file F] [--replies FILE]``;
it prints ``http://127.0.0.1:PORT`` on its first line of stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: Where a directive starts: ``[[``, its name, a colon (its value runs to the matching ``]]``: :func:`directives`).
DIRECTIVE_START_RE = re.compile(r"\[\[(reply|bash|tool|delay|slow|status|flaky):\s?")
MODEL = "claude-fake-1"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def _text_of(content: Any) -> list[str]:
    """Text blocks of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    out = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            out.append(block.get("text", ""))
    return out


def _is_prompt(msg: Any) -> bool:
    """Whether a message is a plain user prompt: role ``user``, at least one text
    block that is not a ``<system-reminder>``, and no ``tool_result`` block (a
    message carrying tool results belongs to the turn its prompt started)."""
    if not isinstance(msg, dict) or msg.get("role") != "user":
        return False
    content = msg.get("content")
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
        return False
    return any(not t.lstrip().startswith("<system-reminder>") for t in _text_of(content))


def _prompt_index(messages: list) -> int | None:
    """The index in *messages* of the last plain user prompt (:func:`_is_prompt`), or None."""
    for i in range(len(messages) - 1, -1, -1):
        if _is_prompt(messages[i]):
            return i
    return None


def user_prompt(body: dict) -> str:
    """The latest user prompt in a Messages request: the text blocks of its
    last plain user prompt (a user message with text and no ``tool_result``),
    without the CLI's ``<system-reminder>`` blocks, joined by newlines (the
    empty string if none)."""
    msgs = body.get("messages") or []
    i = _prompt_index(msgs)
    if i is None:
        return ""
    return "\n".join(t for t in _text_of(msgs[i].get("content")) if not t.lstrip().startswith("<system-reminder>"))


def turn_tool_result(body: dict) -> str | None:
    """The text of the last ``tool_result`` block sent after the latest plain
    user prompt, or None if the tool has not run in this turn.

    Not only the last message: after the tool result the CLI may send more.
    Seen on 2.1.197 and 2.1.332 with ``--max-budget-usd``: a message
    ``{"role": "system", "content": "USD budget: $0.0094/$0.5; $0.4906 remaining"}``
    (2.1.332: the last one's content is a list of one text block with
    ``cache_control``) follows each ``tool_result`` message.  A result given as
    a list of blocks is its text blocks joined by newlines.
    """
    msgs = body.get("messages") or []
    start = _prompt_index(msgs)
    found = None
    for msg in msgs[(start + 1 if start is not None else 0):]:
        if not isinstance(msg, dict) or msg.get("role") != "user" or not isinstance(msg.get("content"), list):
            continue
        for block in msg["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                found = block
    if found is None:
        return None
    c = found.get("content")
    if isinstance(c, list):
        return "\n".join(_text_of(c))
    return str(c if c is not None else "")


def _directive_end(text: str, start: int) -> int | None:
    """Where the ``]]`` that closes a directive whose value starts at *start* begins.

    Brackets in the value nest: each ``[`` needs its ``]`` before a ``]]`` can
    close the directive, so ``[[bash: sh -c 'echo [[reply: hi]]']]`` and
    ``[[bash: test [ -f x ]]]`` keep their whole command.  A ``]`` with no
    ``[`` open that is not followed by ``]`` is plain text.  None if no ``]]``
    closes it with the brackets balanced.
    """
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "[":
            depth += 1
        elif ch == "]":
            if depth:
                depth -= 1
            elif text.startswith("]]", i):
                return i
    return None


def directives(prompt: str) -> dict[str, str]:
    """The ``[[name: value]]`` directives of a prompt, the first of each name
    (values stripped).

    A value may hold brackets, nested directives included (:func:`_directive_end`):
    those are part of the value, not directives of the prompt.  A directive
    whose brackets never balance ends at its first ``]]``.
    """
    found: dict[str, str] = {}
    pos = 0
    while m := DIRECTIVE_START_RE.search(prompt, pos):
        end = _directive_end(prompt, m.end())
        if end is None:
            end = prompt.find("]]", m.end())
            if end < 0:
                break
        found.setdefault(m.group(1), prompt[m.end() : end].strip())
        pos = end + 2
    return found


def scripted_prompt(body: dict, replies: Sequence[tuple[str, str]] = ()) -> str:
    """The latest user prompt (:func:`user_prompt`) with the directives of the
    first *replies* entry ``(task, directives)`` whose task it contains
    appended; the prompt alone if none does."""
    prompt = user_prompt(body)
    for task, extra in replies:
        if task and task in prompt:
            return prompt + "\n" + extra
    return prompt


def plan_reply(body: dict, replies: Sequence[tuple[str, str]] = ()) -> dict:
    """Decide the answer to one request (directives from the prompt and *replies*).

    Returns a dict: ``{"status": int, "delay": float, "slow": float,
    "blocks": [content blocks], "stop_reason": str}``.
    """
    prompt = scripted_prompt(body, replies)
    d = directives(prompt)
    plan: dict[str, Any] = {
        "status": 200,
        "delay": float(d.get("delay", 0) or 0),
        "slow": float(d.get("slow", 0) or 0),
        "blocks": [],
        "stop_reason": "end_turn",
    }
    tool_out = turn_tool_result(body)
    if tool_out is not None:
        plan["blocks"] = [{"type": "text", "text": "Tool said: " + tool_out.strip()}]
        return plan
    if "status" in d:
        plan["status"] = int(d["status"])
        return plan
    if "bash" in d:
        plan["blocks"] = [
            {
                "type": "tool_use",
                "id": "toolu_" + uuid.uuid4().hex[:24],
                "name": "Bash",
                "input": {"command": d["bash"], "description": "Run the scripted command"},
            }
        ]
        plan["stop_reason"] = "tool_use"
        return plan
    if "tool" in d:
        name, _, raw = d["tool"].partition(" ")
        try:
            tool_input = json.loads(raw) if raw.strip() else {}
        except ValueError:
            tool_input = {"error": f"[[tool]] input is not JSON: {raw}"}
        plan["blocks"] = [{"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": name, "input": tool_input}]
        plan["stop_reason"] = "tool_use"
        return plan
    text = d["reply"] if "reply" in d else "OK: " + user_prompt(body)
    plan["blocks"] = [{"type": "text", "text": text}]
    return plan


def _usage(body: dict, output_tokens: int) -> dict:
    approx_in = max(1, len(json.dumps(body.get("messages", []))) // 4)
    return {
        "input_tokens": approx_in,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def sse_events(body: dict, plan: dict) -> list[tuple[str, dict]]:
    """The SSE ``(event, data)`` sequence of a streamed reply."""
    msg_id = "msg_" + uuid.uuid4().hex[:24]
    out_tokens = sum(len(json.dumps(b)) // 4 + 1 for b in plan["blocks"])
    events: list[tuple[str, dict]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": msg_id,
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model", MODEL),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _usage(body, 1),
                },
            },
        )
    ]
    for i, block in enumerate(plan["blocks"]):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}))
            text = block["text"]
            chunks = [text[j : j + 40] for j in range(0, len(text), 40)] or [""]
            for chunk in chunks:
                events.append(("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": chunk}}))
        else:
            start = dict(block, input={})
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": start}))
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": plan["stop_reason"], "stop_sequence": None}, "usage": {"output_tokens": out_tokens}},
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class FakeAPIServer(ThreadingHTTPServer):
    """The HTTP server; ``requests`` holds every POSTed body, in arrival order."""

    daemon_threads = True

    def __init__(self, port: int = 0, host: str = "127.0.0.1", replies: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__((host, port), _Handler)
        self.replies = list(replies)  # [(text found in a prompt, directives it gets)], first match wins
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.flaky_counts: dict[str, int] = {}  # prompt -> [[flaky]] errors served so far

    def flaky_status(self, body: dict) -> int | None:
        """The status a ``[[flaky: CODE N]]`` prompt gets now, or None once N were served."""
        prompt = scripted_prompt(body, self.replies)
        spec = directives(prompt).get("flaky")
        if not spec or turn_tool_result(body) is not None:
            return None
        code, _, times = spec.partition(" ")
        with self.lock:
            served = self.flaky_counts.get(prompt, 0)
            if served >= int(times or 1):
                return None
            self.flaky_counts[prompt] = served + 1
        return int(code)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``ANTHROPIC_BASE_URL``."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def messages_requests(self) -> list[dict]:
        """The recorded ``/v1/messages`` bodies (a copy)."""
        with self.lock:
            return [r["body"] for r in self.requests if r["path"].startswith("/v1/messages")]


class _Handler(BaseHTTPRequestHandler):
    server: FakeAPIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_fake")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path.startswith("/_requests"):
            with self.server.lock:
                self._send_json(200, {"requests": self.server.requests})
        else:
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

    def do_HEAD(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad JSON"}})
            return
        with self.server.lock:
            self.server.requests.append({"path": self.path, "body": body, "time": time.time()})
        if not self.path.startswith("/v1/messages"):
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
            return
        if self.path.startswith("/v1/messages/count_tokens"):
            self._send_json(200, {"input_tokens": _usage(body, 0)["input_tokens"]})
            return
        plan = plan_reply(body, self.server.replies)
        flaky = self.server.flaky_status(body)
        if flaky is not None:
            plan["status"] = flaky
        if plan["delay"]:
            time.sleep(plan["delay"])
        if plan["status"] != 200:
            status = plan["status"]
            etype = ERROR_TYPES.get(status, "api_error")
            self._send_json(status, {"type": "error", "error": {"type": etype, "message": f"fake API error {status}"}})
            return
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    "id": "msg_" + uuid.uuid4().hex[:24],
                    "type": "message",
                    "role": "assistant",
                    "model": body.get("model", MODEL),
                    "content": plan["blocks"],
                    "stop_reason": plan["stop_reason"],
                    "stop_sequence": None,
                    "usage": _usage(body, 10),
                },
            )
            return
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            for event, data in sse_events(body, plan):
                self.wfile.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()
                if plan["slow"] and event == "content_block_delta":
                    time.sleep(plan["slow"])
        except (BrokenPipeError, ConnectionResetError):
            pass


def load_replies(path: str) -> list[tuple[str, str]]:
    """Read a replies table: TOML with ``[[reply]]`` tables of strings ``task``
    and ``directives``.  Raises OSError if unreadable, ValueError if malformed."""
    try:  # only --replies reads TOML
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the tomli backport, a dependency there
        import tomli as tomllib

    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path}: not valid TOML: {e}") from None
    out = []
    for i, entry in enumerate(data.get("reply", [])):
        task, extra = (entry.get("task"), entry.get("directives")) if isinstance(entry, dict) else (None, None)
        if not isinstance(task, str) or not task or not isinstance(extra, str):
            raise ValueError(f"{path}: [[reply]] number {i + 1} needs a non-empty string task and a string directives")
        out.append((task, extra))
    return out


def serve_in_thread(port: int = 0, replies: Sequence[tuple[str, str]] = ()) -> FakeAPIServer:
    """Start a server on 127.0.0.1 in a daemon thread and return it.

    *replies*: ``[(text found in a prompt, directives it gets)]``.  Stop it
    with ``server.shutdown(); server.server_close()``.
    """
    server = FakeAPIServer(port, replies=replies)
    threading.Thread(target=server.serve_forever, name="fake-api", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    """Serve until interrupted; print the base URL first."""
    parser = argparse.ArgumentParser(
        prog="python -m claude_orchestrator.devtools.fake_api",
        description="A fake Anthropic Messages API on 127.0.0.1, scripted by [[directives]] in the prompt.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--port-file", help="also write the base URL to this file once listening")
    parser.add_argument("--replies", metavar="FILE", help="a TOML table of [[reply]] task = ..., directives = ...: prompts holding a task get its directives")
    args = parser.parse_args(argv)
    try:
        replies = load_replies(args.replies) if args.replies else []
    except (OSError, ValueError) as e:
        parser.exit(2, f"fake_api: {e}\n")
    server = FakeAPIServer(args.port, replies=replies)
    print(server.url, flush=True)
    if args.port_file:
        with open(args.port_file, "w") as f:
            f.write(server.url + "\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
