"""A fake `claude` executable for process-level tests (not the real CLI).

It accepts the argument vector the supervisor builds (``-p --output-format
stream-json --verbose --session-id ID | -r ID [--fork-session] ...``, the task on
stdin; or the task as the last argument after ``--``)
and behaves as the task asks, through one ``[[fake: MODE]]`` directive:

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
- ``odd_stream``: init, then lines a stream reader must log and skip, each on a
  line of its own: JSON that is not an object (a list, a number, a string), an
  ``assistant`` event whose ``message`` is a string, one whose ``content`` is a
  string, one whose ``usage`` has non-numeric values, an event of an unknown
  type, a ``system`` init whose ``session_id`` and ``model`` are not strings,
  bytes that are not UTF-8, a JSON array nested 100000 deep, a 20 MiB line that
  is not JSON and a ``result`` event whose fields have the wrong types; then as
  ``ok`` (one assistant turn, a success result ``"FAKE: " + task``).

It also writes its argv as JSON to ``$FAKE_CLAUDE_ARGV_DIR/<pid>.json`` when set.
``--version`` and ``--help`` answer as 2.1.197 does (abridged), without a record,
or as ``$FAKE_CLAUDE_HELP`` (a file) says.
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
    task = argv[argv.index("--") + 1] if "--" in argv else sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
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
    emit({"type": "system", "subtype": "init", "session_id": sid, "model": "fake-model", "cwd": os.getcwd()})
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
