"""Task input (issue 11, section 2): any task, however big, reaches the CLI byte for byte.

The supervisor hands the task to the CLI on stdin, from ``outputs/NAME/RUN_ID.task``
(the record's ``task_file``), never as an argument: Linux limits one argument to
128 KiB, and a task can be megabytes. The record's ``task`` keeps the whole task up
to 16384 characters, a preview ending in "…" beyond. A task that is not valid UTF-8,
or holds a NUL byte, is refused before anything is launched: exit 2, one stderr line
naming the problem and its byte offset, no record.

The first tests use the fake CLI (tests/fake_claude.py, whose result is
``"FAKE: " + task``); the last ones run the real CLI, on every pinned version,
against the fake API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AGENTS, TERMINAL, cli_path, version_tuple

from claude_orchestrator.devtools.fake_api import user_prompt

KIB = 1024
MIB = 1024 * KIB
RECORD_TASK_CHARS = 16384  # the record's `task` holds a task up to this many characters whole

# One block of a test task, numbered so that a lost or repeated block shows. Every kind
# of text a task may hold: multi-byte UTF-8 (2, 3 and 4 bytes), tabs, every kind of line
# break (\n, \r\n, a lone \r, U+2028, U+2029, NEL, VT, FF), a BOM in the middle, shell and
# option look-alikes.
BLOCK = (
    "\tblock {n:06d}: é ü ß π Ж 日本語 한국어 😀 🧪 ✓ – “quoted” ‘single’\n"
    "breaks:\u2028U+2028\u2029U+2029\u0085NEL\x0bVT\x0cFF\rCR\r\nCRLF\n"
    "shell: $HOME $(touch pwned) `id` \\ \"double\" 'single' ; -- --task-file - \ufeffBOM\n"
)


def make_task(min_bytes: int, head: str = "") -> str:
    """A task of at least ``min_bytes`` bytes of UTF-8, with leading and trailing whitespace.

    ``head`` comes first after the leading whitespace (e.g. a fake-API ``[[reply: ...]]``).
    """
    parts, size, n = ["  \n\t ", head], 0, 0
    while size < min_bytes:
        block = BLOCK.format(n=n)
        parts.append(block)
        size += len(block.encode())
        n += 1
    parts.append("  the end \t\n\n ")
    return "".join(parts)


def assert_same(actual: str | bytes, expected: str | bytes, what: str) -> None:
    """``actual == expected``, or a short message (lengths, first difference) instead of a huge diff."""
    a = actual.encode() if isinstance(actual, str) else actual
    e = expected.encode() if isinstance(expected, str) else expected
    if a == e:
        return
    i = next((i for i, (x, y) in enumerate(zip(a, e, strict=False)) if x != y), min(len(a), len(e)))
    raise AssertionError(
        f"{what} is not what was expected byte for byte: {len(a)} bytes instead of {len(e)}; "
        f"first difference at byte {i}: {a[i:i + 30]!r} instead of {e[i:i + 30]!r}"
    )


def summary(rec: dict | None) -> dict | None:
    """The fields of a record worth showing when a test fails (not its huge task)."""
    return rec and {k: rec.get(k) for k in ("status", "error", "exit_code", "is_error", "result") if k in rec}


def run_raw(kit, script: str, *args: str | bytes, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``agents/SCRIPT.py`` as ``kit.run`` does, but with bytes allowed in argv and on stdin."""
    done = subprocess.run(
        [sys.executable, str(AGENTS / f"{script}.py"), *args],
        env=kit.env, input=stdin, capture_output=True, timeout=timeout, cwd=str(kit.root),
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    )


def check_task_kept(kit, name: str, task: str) -> dict:
    """The record's ``task_file`` is ``outputs/NAME/RUN_ID.task`` holding the task byte for byte,
    and the record's ``task`` is the whole task, or a preview when it is over 16384 characters."""
    rec = kit.record(name)
    task_file = Path(rec["task_file"])
    assert task_file.resolve() == (kit.root / "outputs" / name / f"{rec['run_id']}.task").resolve()
    assert_same(task_file.read_bytes(), task.encode(), f"{name}'s task_file")
    if len(task) <= RECORD_TASK_CHARS:
        assert_same(rec["task"], task, f"{name}'s record task")
    else:
        preview = rec["task"]
        assert len(preview) <= RECORD_TASK_CHARS and preview.endswith("…") and len(preview) > 1, (len(preview), preview[-20:])
    return rec


def check_fake_run(kit, name: str, task: str) -> None:
    """The run completed, the fake CLI got the whole task (its result, the latest output, is
    ``"FAKE: " + task`` byte for byte) and the record keeps the task (:func:`check_task_kept`)."""
    rec = kit.record(name)
    assert rec and rec["status"] == "completed", summary(rec)
    result = json.loads([line for line in Path(rec["transcript_file"]).read_bytes().split(b"\n") if line][-1])["result"]
    assert_same(result, "FAKE: " + task, f"{name}'s result event")
    latest = kit.root / "outputs" / f"{name}_latest.txt"  # the answer, ending in one newline
    assert_same(latest.read_bytes(), ("FAKE: " + task).rstrip("\n").encode() + b"\n", f"outputs/{name}_latest.txt")
    check_task_kept(kit, name, task)


def task_input(how: str, task: str, tmp_path: Path) -> tuple[list[str], str | None]:
    """The arguments and stdin that give ``task`` to a script: by ``file``, ``stdin`` or ``arg``
    (``-- TASK``: put them after every option)."""
    if how == "file":
        f = tmp_path / "task.txt"
        f.write_bytes(task.encode())
        return ["--task-file", str(f)], None
    if how == "stdin":
        return ["--task-file", "-"], task
    assert len(task.encode()) < 128 * KIB, "Linux refuses an argument of 128 KiB or more"
    return ["--", task], None


# -- the fake CLI: big tasks arrive whole ----------------------------------------------


@pytest.mark.parametrize(
    ("size", "how"),
    [
        (200 * KIB, "file"),
        (200 * KIB, "stdin"),
        (100 * KIB, "arg"),  # the biggest a single argument can be
        (10 * MIB, "file"),
        (10 * MIB, "stdin"),
    ],
    ids=["200KiB-file", "200KiB-stdin", "100KiB-arg", "10MiB-file", "10MiB-stdin"],
)
def test_a_big_task_reaches_the_cli_byte_exact(fake_kit, tmp_path, size, how):
    """A big task given by --task-file FILE, --task-file - or as an argument completes, and the
    CLI saw it byte for byte; the record's task_file holds it, its task is a preview."""
    task = make_task(size)
    args, stdin = task_input(how, task, tmp_path)
    out = fake_kit.run("launch_agent", "big", "--wait", "--timeout", "90", *args, input=stdin, timeout=150)
    assert out.returncode == 0, (out.stderr, summary(fake_kit.record("big")))
    check_fake_run(fake_kit, "big", task)


def test_the_task_goes_to_the_cli_on_stdin_not_as_an_argument(fake_kit):
    """The CLI's argv holds no task (and no ``--``): print mode reads the prompt from stdin."""
    task = "  say hello\n\tto everyone  "
    out = fake_kit.run("launch_agent", "a1", "--wait", "--", task)
    assert out.returncode == 0, out.stderr
    check_fake_run(fake_kit, "a1", task)
    (dump,) = Path(fake_kit.env["FAKE_CLAUDE_ARGV_DIR"]).glob("*.json")
    argv = json.loads(dump.read_text())["argv"]
    assert task not in argv and "--" not in argv, argv


def test_the_record_keeps_16384_characters_whole_then_a_preview(fake_kit, tmp_path):
    """Characters, not bytes: a task of exactly 16384 (multi-byte) characters is kept whole in
    the record's task; one of 16385 becomes a preview ending in "…". Both reach the CLI whole."""
    text = make_task(4 * RECORD_TASK_CHARS)
    for name, length in (("whole", RECORD_TASK_CHARS), ("preview", RECORD_TASK_CHARS + 1)):
        task = text[:length]
        assert len(task.encode()) > RECORD_TASK_CHARS
        f = tmp_path / f"{name}.txt"
        f.write_bytes(task.encode())
        out = fake_kit.run("launch_agent", name, "--task-file", str(f), "--wait")
        assert out.returncode == 0, out.stderr
        check_fake_run(fake_kit, name, task)


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_resume_takes_a_big_task(fake_kit, tmp_path, how):
    """resume_agent.py --task-file gives a 200 KiB follow-up to the CLI byte for byte."""
    assert fake_kit.run("launch_agent", "a1", "first, a small task", "--wait").returncode == 0
    first_run = fake_kit.record("a1")["run_id"]
    task = make_task(200 * KIB, head="the follow-up ")
    args, stdin = task_input(how, task, tmp_path)
    out = fake_kit.run("resume_agent", "a1", "--wait", "--timeout", "60", *args, input=stdin, timeout=90)
    assert out.returncode == 0, (out.stderr, summary(fake_kit.record("a1")))
    assert fake_kit.record("a1")["run_id"] != first_run
    check_fake_run(fake_kit, "a1", task)


def test_parallel_tasks_together_over_the_argument_limit(fake_kit):
    """launch_parallel.py with two 100 KiB tasks (each under Linux's 128 KiB per argument,
    together over it): each agent's CLI gets its own task byte for byte."""
    tasks = [make_task(100 * KIB, head=f"task number {i} ") for i in (1, 2)]
    out = fake_kit.run("launch_parallel", "--names", "p1,p2", "--wait", "--json", "--timeout", "60", *tasks, timeout=90)
    assert out.returncode == 0, (out.stderr, summary(fake_kit.record("p1")), summary(fake_kit.record("p2")))
    for name, task in zip(("p1", "p2"), tasks, strict=True):
        check_fake_run(fake_kit, name, task)


# -- refusals: not UTF-8, or a NUL byte ------------------------------------------------

FILE = object()  # in a case's arguments: the path of a file holding the case's bytes
NOT_UTF8, NUL = "not valid UTF-8", "NUL"
BIG_PREFIX = make_task(200 * KIB).encode()


def _case(id_, script, args, data, problem, offset):
    return pytest.param(script, args, data, problem, offset, id=id_)


REFUSALS = [
    _case("launch-file", "launch_agent", ("a1", "--task-file", FILE), b"ok\xffbad", NOT_UTF8, 2),
    _case("launch-file-multibyte", "launch_agent", ("a1", "--task-file", FILE), "café ".encode() + b"\x80x", NOT_UTF8, 6),
    _case("launch-file-far", "launch_agent", ("a1", "--task-file", FILE), BIG_PREFIX + b"\xfe tail", NOT_UTF8, len(BIG_PREFIX)),
    _case("launch-file-nul", "launch_agent", ("a1", "--task-file", FILE), "naïve".encode() + b"\x00 rest", NUL, 6),
    _case("launch-stdin", "launch_agent", ("a1", "--task-file", "-"), b"ok\xffbad", NOT_UTF8, 2),
    _case("launch-stdin-nul", "launch_agent", ("a1", "--task-file", "-"), b"abc\x00def", NUL, 3),
    _case("launch-arg", "launch_agent", ("a1", b"ok\xffbad"), b"", NOT_UTF8, 2),
    _case("launch-arg-multibyte", "launch_agent", ("a1", "--", "été".encode() + b"\xff!"), b"", NOT_UTF8, 5),
    _case("parallel-arg", "launch_parallel", ("a fine task", "été".encode() + b"\xff!"), b"", NOT_UTF8, 5),
    _case("parallel-delegations-file", "launch_parallel", ("--from-delegations", FILE),
          b"Plan \xff today\n\n**Engineer**: fix the cache\n**QA**: test it\n", NOT_UTF8, 5),
    _case("parallel-delegations-stdin", "launch_parallel", ("--from-delegations", "-"),
          b"Plan \xff today\n\n**Engineer**: fix the cache\n**QA**: test it\n", NOT_UTF8, 5),
    _case("resume-file", "resume_agent", ("a1", "--task-file", FILE), b"ok\xffbad", NOT_UTF8, 2),
    _case("resume-file-nul", "resume_agent", ("a1", "--task-file", FILE), "ünïcode".encode() + b"\x00", NUL, 9),
    _case("resume-stdin", "resume_agent", ("a1", "--task-file", "-"), b"ok\xffbad", NOT_UTF8, 2),
    _case("resume-arg", "resume_agent", ("a1", b"ok\xffbad"), b"", NOT_UTF8, 2),
]


@pytest.mark.parametrize(("script", "args", "data", "problem", "offset"), REFUSALS)
def test_a_task_that_is_not_utf8_or_holds_nul_is_refused(fake_kit, tmp_path, script, args, data, problem, offset):
    """Exit 2 with one stderr line naming the problem and the byte offset of the first bad
    byte, no traceback, and nothing launched: no record written (a resumed agent's record
    is left as it was)."""
    if script == "resume_agent":
        assert fake_kit.run("launch_agent", "a1", "first, a small task", "--wait").returncode == 0
    before = {p: p.read_bytes() for p in (fake_kit.root / "status").glob("*.json")}
    bad_file = tmp_path / "bad-task.txt"
    bad_file.write_bytes(data)
    argv = [str(bad_file) if a is FILE else a for a in args]
    out = run_raw(fake_kit, script, *argv, stdin=data if "-" in argv else b"")

    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.rstrip("\n").split("\n")
    assert len(lines) == 1 and lines[0].strip(), out.stderr
    assert problem in lines[0], lines[0]
    assert re.search(rf"\boffset {offset}\b", lines[0]), lines[0]
    after = {p: p.read_bytes() for p in (fake_kit.root / "status").glob("*.json")}
    assert after == before, f"records changed: {sorted(p.name for p in after)}"


# -- the real CLI, on every pinned version ----------------------------------------------


@pytest.fixture
def real_cli(cli_version) -> Path:
    """Each real-CLI test of this module runs on each pinned CLI version (overrides conftest's)."""
    return cli_path(cli_version)


REPLY = "got the task"  # the fake API's answer, asked for by [[reply: ...]] at the task's head
#: The first pinned CLI seen to refuse a 10 MiB prompt itself (2.1.197 sends it to the API).
REFUSES_A_TOO_LONG_PROMPT = (2, 1, 330)


def launch_real(kit, tmp_path: Path, size: int) -> tuple[str, dict]:
    """Launch agent ``big`` with a task of ``size`` bytes by --task-file; wait for its end."""
    task = make_task(size, head=f"[[reply: {REPLY}]] ")
    f = tmp_path / "task.txt"
    f.write_bytes(task.encode())
    out = kit.run("launch_agent", "big", "--task-file", str(f), "--wait", "--timeout", "90", timeout=150)
    rec = kit.record("big")
    assert rec and rec["status"] in TERMINAL, (out.returncode, out.stderr, summary(rec))
    return task, rec


def api_got(api, task: str) -> bool:
    """Whether a Messages request to the fake API had ``task`` as its user prompt."""
    return any(user_prompt(body) == task for body in api.messages_requests())


def session_prompts(kit, session_id: str) -> list[str]:
    """The user prompts (string contents) in the CLI's own session file,
    ``$CLAUDE_CONFIG_DIR/projects/*/SESSION_ID.jsonl``."""
    found = list(Path(kit.env["CLAUDE_CONFIG_DIR"]).glob(f"projects/*/{session_id}.jsonl"))
    assert len(found) == 1, f"no single session file of the CLI for session {session_id}: {found}"
    (path,) = found
    prompts = []
    for line in path.read_text(encoding="utf-8").split("\n"):  # not splitlines(): U+2028 and NEL may be raw in JSON
        if not line:
            continue
        event = json.loads(line)
        content = (event.get("message") or {}).get("content") if event.get("type") == "user" else None
        if isinstance(content, str):
            prompts.append(content)
    return prompts


def assert_in_session(kit, rec: dict, task: str) -> None:
    prompts = session_prompts(kit, rec["session_id"])
    if task not in prompts:
        assert_same(max(prompts, key=len, default=""), task, "the longest user prompt in the CLI's session file")


def test_real_cli_sends_a_200_kib_task_to_the_api_byte_exact(real_kit, tmp_path):
    """A 200 KiB task (over the 128 KiB argument limit) reaches the API byte for byte; the run completes."""
    task, rec = launch_real(real_kit, tmp_path, 200 * KIB)
    assert rec["status"] == "completed", summary(rec)
    assert api_got(real_kit.api, task), [len(user_prompt(b)) for b in real_kit.api.messages_requests()]
    assert (real_kit.root / "outputs" / "big_latest.txt").read_text() == REPLY + "\n"
    check_task_kept(real_kit, "big", task)


def test_real_cli_gets_a_10_mib_task_byte_exact(real_kit, tmp_path, cli_version):
    """A 10 MiB task reaches the CLI byte for byte (its session file holds it as the user
    prompt). From 2.1.330 on (2.1.332 today) the CLI refuses it locally (its result event is an
    error with ``terminal_reason`` ``blocking_limit``, "Prompt is too long"; the run fails, the
    API is not called); 2.1.197 sends it to the API, and how that run ends is not asserted.
    Either way the run ends under supervision: its record is terminal, not lost."""
    task, rec = launch_real(real_kit, tmp_path, 10 * MIB)
    assert rec["status"] != "lost", summary(rec)
    assert_in_session(real_kit, rec, task)
    check_task_kept(real_kit, "big", task)
    if version_tuple(cli_version) >= REFUSES_A_TOO_LONG_PROMPT:
        assert rec["status"] == "failed", summary(rec)
        with open(rec["transcript_file"], encoding="utf-8") as f:
            results = [e for e in map(json.loads, f) if e.get("type") == "result"]
        assert len(results) == 1 and results[0]["is_error"] is True, summary(rec)
        assert results[0].get("terminal_reason") == "blocking_limit", {k: v for k, v in results[0].items() if k != "usage"}
        assert not api_got(real_kit.api, task)
    else:
        assert api_got(real_kit.api, task), [len(user_prompt(b)) for b in real_kit.api.messages_requests()]
