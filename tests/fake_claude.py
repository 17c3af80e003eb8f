"""A fake `claude` executable for process-level tests (not the real CLI).

It accepts the argument vector the supervisor builds (``-p --input-format
stream-json --output-format stream-json --verbose --replay-user-messages
--session-id ID | -r ID [--fork-session] ...``, the task as the first stream-json
user message on stdin; or plain text on stdin without ``--input-format``; or the
task as the last argument after ``--``) and behaves as the task asks, through one
``[[fake: MODE]]`` directive:

- ``ok`` (default): init, one assistant turn echoing the task, a success result;
- ``hang``: init, then sleep forever (until signalled);
- ``slow:SECONDS``: init, sleep, then as ``ok``;
- ``until:PATH``: init, then wait (polling every 0.2 s) until PATH exists, then as ``ok``;
- ``is_error``: a result event with is_error true, exit status 0;
- ``no_result``: init and one turn, then exit status 3 with no result event;
- ``crash``: exit status 2 at once, a message on stderr;
- ``crash_after:SECONDS``: as ``crash``, after a while;
- ``noisy_crash``: exit status 1 at once after stderr lines (:data:`NOISY_STDERR`): a first
  line, then one with terminal escapes, control and format characters and 400 more
  characters, then blank ones;
- ``ignore_term``: init, then hang with SIGTERM ignored (only SIGKILL ends it);
- ``result_hang``: init, a success result, then hang instead of exiting;
- ``setsid_grandchild``: start a grandchild that calls setsid (so it leaves the
  process group) and whose parent exits; write its PID to ``grandchild.pid``
  in the cwd; then hang;
- ``memhog:MB``: start a child that allocates and touches MB MiB and keeps it;
  write its PID to ``memhog.pid``; then hang.
- ``exit_on_message``: as ``ok``, then exit 0 as soon as the next message arrives on
  stdin, without taking it (a CLI that ends just as a message comes);
- ``odd_stream``: init, then lines a stream reader must log and skip, each on a
  line of its own: JSON that is not an object (a list, a number, a string), an
  ``assistant`` event whose ``message`` is a string, one whose ``content`` is a
  string, one whose ``usage`` has non-numeric values, an event of an unknown
  type, a ``system`` init whose ``session_id`` and ``model`` are not strings,
  bytes that are not UTF-8, a JSON array nested 100000 deep, a 20 MiB line that
  is not JSON and a ``result`` event whose fields have the wrong types; then as
  ``ok`` (one assistant turn, a success result ``"FAKE: " + task``).

With ``--input-format stream-json``, once the task's turn has ended it reads
further messages from stdin, each a turn of its own (those already waiting then
are taken together, joined by newlines, as the CLI does) (an assistant event
``"FAKE: " + message`` and a success result), until stdin ends (exit 0); with
``--replay-user-messages`` it echoes each message it takes, as the CLI does.

It also writes its argv as JSON to ``$FAKE_CLAUDE_ARGV_DIR/<pid>.json`` when set, and
with ``$FAKE_CLAUDE_STAMP_DIR`` notes when it took each message after the task (a JSON
line ``{"t": time.time(), "text": ...}`` appended to ``<pid>.stamps`` there; bench/messages.py).
``--version`` and ``--help`` answer as 2.1.197 does (abridged), without a record,
or as ``$FAKE_CLAUDE_HELP`` (a file) says; the init event reports version 2.1.197
(``claude_code_version``), or ``$FAKE_CLAUDE_VERSION`` (a version manager's switch).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

GRANDCHILD = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    with open("grandchild.pid.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("grandchild.pid.tmp", "grandchild.pid")
    while True:
        time.sleep(3600)
"""

MEMHOG = """
import os, sys, time
block = bytearray(int(sys.argv[1]) * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
with open("memhog.pid", "w") as f:
    f.write(str(os.getpid()))
while True:
    time.sleep(3600)
"""


#: What mode ``noisy_crash`` writes to stderr.
NOISY_STDERR = "an earlier line\n\x1b[31mError:\x1b[0m bad\x07 \u202ething\x00 here " + "x" * 400 + "\n\n   \n"


def hang():
    while True:
        time.sleep(3600)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


#: How deep odd_stream nests its JSON array, and how long its line that is not JSON is.
ODD_NESTING = 100_000
ODD_HUGE_LINE_BYTES = 20 * 1024 * 1024


def odd_stream():
    """The lines of mode ``odd_stream`` (see the module's docstring), each ending in a newline."""
    out = sys.stdout.buffer
    lines = [
        b"[1, 2, 3]",
        b"42",
        b'"just a string"',
        json.dumps({"type": "assistant", "message": "a message that is a string"}).encode(),
        json.dumps({"type": "assistant", "message": {"id": "msg_odd_content", "role": "assistant", "content": "content that is a string"}}).encode(),
        json.dumps(
            {
                "type": "assistant",
                "message": {
                    "id": "msg_odd_usage",
                    "role": "assistant",
                    "content": [{"type": "text", "text": "odd usage"}],
                    "usage": {"input_tokens": "ten", "output_tokens": [5], "cache_read_input_tokens": {"n": 1}},
                },
            }
        ).encode(),
        json.dumps({"type": "no_such_event_type", "data": {"x": 1}}).encode(),
        json.dumps({"type": "system", "subtype": "init", "session_id": 12345, "model": ["not", "a", "string"]}).encode(),
        b"\xff\xfe not UTF-8 \xc3\x28 {\"type\": \"assistant\"} \x80",
        b"[" * ODD_NESTING + b"]" * ODD_NESTING,
        b"x" * ODD_HUGE_LINE_BYTES,
        json.dumps(
            {"type": "result", "subtype": 7, "is_error": "nope", "num_turns": "three", "result": ["not", "text"],
             "session_id": 99, "total_cost_usd": "free", "usage": "none", "api_error_status": {"code": 1}}
        ).encode(),
    ]
    for line in lines:
        out.write(line + b"\n")
        out.flush()


HELP = """Usage: claude [options] [command] [prompt]

Options:
  -p, --print                           Print response and exit
  --output-format <format>              Output format (only works with --print)
  --verbose                             Override verbose mode setting from config
  --session-id <uuid>                   Use a specific session ID
  -r, --resume [value]                  Resume a conversation by session ID
  --fork-session                        When resuming, create a new session ID
  --model <model>                       Model for the current session
  --append-system-prompt <prompt>       Append a system prompt to the default
                                        system prompt
  --allowedTools, --allowed-tools <tools...>  Comma or space-separated list of tool names
  --permission-mode <mode>              Permission mode to use for the session
                                        (choices: "acceptEdits", "auto",
                                        "bypassPermissions", "default",
                                        "dontAsk", "plan")
  --max-turns <turns>                   Maximum number of agentic turns
  -h, --help                            Display help for command
"""


def main():
    argv = sys.argv[1:]
    if argv in (["--version"], ["-v"]):
        print("2.1.197 (Claude Code)")
        return 0
    if argv in (["--help"], ["-h"]):
        help_file = os.environ.get("FAKE_CLAUDE_HELP")
        sys.stdout.write(open(help_file).read() if help_file else HELP)
        return 0
    if os.environ.get("FAKE_CLAUDE_ARGV_DIR"):
        with open(os.path.join(os.environ["FAKE_CLAUDE_ARGV_DIR"], f"{os.getpid()}.json"), "w") as f:
            json.dump({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}, f)
    # The supervisor gives the task on stdin (print mode reads the prompt there); an older one gave it after "--".
    streaming = "--input-format" in argv and argv[argv.index("--input-format") + 1] == "stream-json"
    replay = "--replay-user-messages" in argv
    if "--" in argv:
        task = argv[argv.index("--") + 1]
    elif streaming:
        task = read_message()
        if task is None:
            print("fake claude: no message on stdin", file=sys.stderr)
            return 1
    else:
        task = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    sid = None
    for flag in ("--session-id", "-r"):
        if flag in argv:
            sid = argv[argv.index(flag) + 1]
            if flag == "--session-id":
                break
    sid = sid or str(uuid.uuid4())
    m = re.search(r"\[\[fake:\s*([^\]]+)\]\]", task)
    mode = m.group(1).strip() if m else "ok"
    if mode.startswith("crash_after:"):
        time.sleep(float(mode.split(":", 1)[1]))
        mode = "crash"
    if mode == "noisy_crash":
        sys.stderr.write(NOISY_STDERR)
        return 1
    if mode == "crash":
        print("fake claude: crashing as asked", file=sys.stderr)
        return 2
    if mode == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    emit({"type": "system", "subtype": "init", "session_id": sid, "model": "fake-model", "cwd": os.getcwd(),
          "claude_code_version": os.environ.get("FAKE_CLAUDE_VERSION", "2.1.197")})
    if replay and streaming:
        emit_replay(task, sid)
    if mode in ("hang", "ignore_term"):
        hang()
    if mode == "setsid_grandchild":
        subprocess.run([sys.executable, "-c", GRANDCHILD], check=True)  # the middle process exits at once
        hang()
    if mode.startswith("memhog:"):
        subprocess.Popen([sys.executable, "-c", MEMHOG, mode.split(":", 1)[1]])
        hang()
    if mode.startswith("slow:"):
        time.sleep(float(mode.split(":", 1)[1]))
    if mode.startswith("until:"):
        while not os.path.exists(mode.split(":", 1)[1]):
            time.sleep(0.2)
    if mode == "odd_stream":
        odd_stream()
    text = "FAKE: " + task
    emit({"type": "assistant", "message": {"id": "msg_1", "role": "assistant", "content": [{"type": "text", "text": text}]}, "session_id": sid})
    if mode == "no_result":
        return 3
    is_error = mode == "is_error"
    result_only = mode == "result_hang"
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "api_error_status": 500 if is_error else None,
            "result": "API Error: 500 fake" if is_error else text,
            "num_turns": 1,
            "session_id": sid,
            "total_cost_usd": 0.001,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )
    if result_only:
        hang()
    turns = 1
    while streaming:  # the next messages, each a turn, until stdin ends
        text = read_message()
        if text is None or mode == "exit_on_message":
            break
        text = "\n".join([text, *ready_messages()])  # as the CLI joins messages that queued up during a turn
        stamp(text)
        turns += 1
        if replay:
            emit_replay(text, sid)
        m = re.search(r"\[\[fake:\s*slow:([0-9.]+)\]\]", text)
        if m:
            time.sleep(float(m.group(1)))
        answer = "FAKE: " + text
        emit({"type": "assistant", "message": {"id": f"msg_{turns}", "role": "assistant", "content": [{"type": "text", "text": answer}]}, "session_id": sid})
        emit({"type": "result", "subtype": "success", "is_error": False, "api_error_status": None, "result": answer,
              "num_turns": 1, "session_id": sid, "total_cost_usd": 0.001 * turns, "usage": {"input_tokens": 10, "output_tokens": 5}})
    return 0


_STDIN = bytearray()  # bytes read from stdin, not yet a whole message


def _parse(line):
    event = json.loads(line)
    content = event["message"]["content"]
    if isinstance(content, list):
        content = "".join(block.get("text", "") for block in content if isinstance(block, dict))
    return content


def read_message(block=True):
    """The next stream-json user message's text from stdin (a string content, or its text blocks), or None at its
    end (or, without ``block``, when no whole message is there yet)."""
    import select

    while True:
        end = _STDIN.find(b"\n")
        if end >= 0:
            line = bytes(_STDIN[:end])
            del _STDIN[: end + 1]
            if line.strip():
                return _parse(line)
            continue
        if not block and not select.select([0], [], [], 0)[0]:
            return None
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return None
        _STDIN.extend(chunk)


def ready_messages():
    """The messages already on stdin (not waited for): the CLI takes those that queued up during a turn together."""
    found = []
    while (text := read_message(block=False)) is not None:
        found.append(text)
    return found


def stamp(text):
    """With ``$FAKE_CLAUDE_STAMP_DIR``: note that a message was taken just now (see the module's docstring)."""
    folder = os.environ.get("FAKE_CLAUDE_STAMP_DIR")
    if folder:
        line = json.dumps({"t": time.time(), "text": text}) + "\n"
        with open(os.path.join(folder, f"{os.getpid()}.stamps"), "a") as f:
            f.write(line)


def emit_replay(text, sid):
    """Echo a message taken from stdin, as ``--replay-user-messages`` does."""
    emit({"type": "user", "message": {"role": "user", "content": text}, "session_id": sid, "parent_tool_use_id": None,
          "uuid": str(uuid.uuid4()), "isReplay": True})


if __name__ == "__main__":
    sys.exit(main())
