"""Rough edges a new user hit with runs (issue 19): hooks, exit codes, why a CLI failed, retries' sessions, result files.

Each test names its item of the issue.  They synchronise on files and records, never on sleeps.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
from conftest import cli_path, process_gone, wait_until

from claude_orchestrator.claude.stream import RunProgress, last_stderr_line, plain_line
from claude_orchestrator.core.states import State
from claude_orchestrator.devtools.fake_api import user_prompt
from claude_orchestrator.supervisor.attempt import AttemptEnd
from claude_orchestrator.supervisor.report import output_text
from claude_orchestrator.usecases.control import HOOK_ORPHANED


@pytest.fixture
def real_cli(cli_version):
    """This module's real-CLI tests run on each pinned CLI version (overrides conftest's)."""
    return cli_path(cli_version)


def _cat(*paths) -> str:
    return subprocess.run(["cat", *map(str, paths)], capture_output=True, text=True, check=True).stdout


# -- 14: result files end with one newline ---------------------------------------------------


def test_result_files_end_with_one_newline_so_cat_keeps_answers_apart(fake_kit):
    for name, task in (("a", "one"), ("b", "two\n\n\n")):
        out = fake_kit.run("launch_agent", name, "--wait", "--json", "--", task)
        assert out.returncode == 0, out.stderr
    outputs = fake_kit.root / "outputs"
    assert _cat(outputs / "a_latest.txt", outputs / "b_latest.txt") == "FAKE: one\nFAKE: two\n"
    # the record keeps the answer as the CLI gave it; readers show it without the file's newline
    assert fake_kit.record("a")["result"] == "FAKE: one"
    assert fake_kit.record("b")["result"] == "FAKE: two\n\n\n"
    waited = fake_kit.run("wait_agents", "a", "--json")
    assert json.loads(waited.stdout.splitlines()[0])["result"] == "FAKE: one"
    shown = fake_kit.run("check_status", "--json", "a")
    assert json.loads(shown.stdout)[0]["result"] == "FAKE: one"


def test_an_empty_result_leaves_an_empty_file_and_a_failure_one_line():
    def end(text, state=State.COMPLETED, error=None):
        progress = RunProgress()
        progress.result = None if text is None else {"result": text}
        return AttemptEnd(state, error, 0, progress, "sid")

    assert output_text(end("")) == ""
    assert output_text(end("\n\n")) == ""
    assert output_text(end("answer")) == "answer\n"
    assert output_text(end("answer\r\n")) == "answer\r\n"
    assert output_text(end(None, State.FAILED, "boom")) == "[failed] boom\n"


# -- 6: a CLI that exits without a result says why -------------------------------------------


def test_the_last_stderr_line_is_made_plain_and_short():
    assert plain_line("\x1b[31mError:\x1b[0m bad\x07 \u202ething\x00\there") == "Error: bad thing here"
    assert plain_line("\x1b]0;title\x07visible") == "visible"
    long = plain_line("y" * 1000)
    assert len(long) == 300 and long.endswith("…")
    assert last_stderr_line(["first", "last", "", "  \x1b[0m ", ""]) == "last"
    assert last_stderr_line(["", "\x07"]) is None
    root = last_stderr_line(["--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons"])
    assert "IS_SANDBOX=1" in root and root.startswith("--dangerously-skip-permissions cannot be used")


def test_a_fake_cli_that_exits_without_a_result_has_its_stderr_in_the_error(fake_kit):
    out = fake_kit.run("launch_agent", "n1", "[[fake: noisy_crash]]", "--wait", "--json")
    rec = fake_kit.record("n1")  # --json --wait prints the short form (its error a 200-character preview)
    assert out.returncode == 1 and rec["status"] == "failed" and rec["exit_code"] == 1
    prefix = "the CLI exited with status 1 without a result event: "
    assert rec["error"].startswith(prefix)
    said = rec["error"][len(prefix):]
    assert said.startswith("Error: bad thing here xxx") and said.endswith("…") and len(said) == 300
    assert all(ch.isprintable() for ch in rec["error"])
    # a CLI that crashed without a word: nothing is added
    out = fake_kit.run("launch_agent", "n2", "[[fake: no_result]]", "--wait", "--json")
    assert json.loads(out.stdout)["error"] == "the CLI exited with status 3 without a result event"


def test_the_real_cli_refusing_root_says_why_and_what_to_do(real_kit):
    real_kit.env.pop("IS_SANDBOX", None)
    out = real_kit.run("launch_agent", "root1", "hello", "--dangerously-skip-permissions", "--wait", "--json")
    rec = real_kit.record("root1")  # --json --wait prints the short form (its error a 200-character preview)
    assert out.returncode == 1 and rec["status"] == "failed"
    assert rec["error"] == (
        "the CLI exited with status 1 without a result event: --dangerously-skip-permissions cannot be used "
        "with root/sudo privileges for security reasons (set IS_SANDBOX=1 if this runs in a sandbox, "
        "or run as a user other than root)"
    )


# -- 1: a running --on-complete hook holds the name ------------------------------------------


def _gated_hook(tmp_path, tag: str) -> tuple[str, dict]:
    """A hook command that touches ``<tag>-started``, runs until ``<tag>-gate`` exists, then touches ``<tag>-ended``."""
    files = {k: tmp_path / f"{tag}-{k}" for k in ("started", "gate", "ended")}
    script = (f"import os,time; open({str(files['started'])!r},'w').close()\n"
              f"while not os.path.exists({str(files['gate'])!r}): time.sleep(0.05)\n"
              f"open({str(files['ended'])!r},'w').close()")
    return f"{sys.executable} -c {shlex.quote(script)}", files


def test_a_running_on_complete_hook_holds_the_name_until_its_outcome_is_recorded(fake_kit, tmp_path):
    hook, files = _gated_hook(tmp_path, "h1")
    try:
        assert fake_kit.run("launch_agent", "a1", "x", "--on-complete", hook).returncode == 0
        wait_until(files["started"].exists, what="the on-complete hook running")
        rec = fake_kit.record("a1")
        assert rec["status"] == "completed" and rec["on_complete"] == {"argv": shlex.split(hook), "running": True}
        for script, args in (("launch_agent", ("a1", "y")), ("resume_agent", ("a1", "y")),
                             ("launch_parallel", ("--names", "a1,b1", "y", "z"))):
            again = fake_kit.run(script, *args)
            assert again.returncode == 3, (script, again.stdout, again.stderr)
            assert "--on-complete hook" in again.stderr, (script, again.stderr)
        assert fake_kit.record("b1") is None and fake_kit.record("a1")["run_id"] == rec["run_id"]
        assert "still running its --on-complete hook" in fake_kit.run("launch_agent", "a1", "y").stderr
        # a wait waits for the hook too: with the gate shut it cannot end
        assert fake_kit.run("wait_agents", "a1", "--timeout", "0.5").returncode == 124
        waiter = fake_kit.start("wait_agents", "a1", "--json")
        waiter.expect('"status":"completed"')
    finally:
        files["gate"].touch()
    code, lines, _ = waiter.finish()
    assert code == 0 and json.loads(lines[-1])["event"] == "summary"
    assert files["ended"].exists(), "the wait ended before the hook"
    assert fake_kit.record("a1")["on_complete"] == {"argv": shlex.split(hook), "exit_code": 0}
    again = fake_kit.run("launch_agent", "a1", "y", "--wait")
    assert again.returncode == 0, again.stderr


def test_kill_agent_stops_a_running_hook_and_frees_the_name(fake_kit, tmp_path):
    hook, files = _gated_hook(tmp_path, "h2")  # its gate never opens: only a stop ends it
    assert fake_kit.run("launch_agent", "a2", "x", "--on-complete", hook, "--kill-grace", "1").returncode == 0
    wait_until(files["started"].exists, what="the on-complete hook running")
    out = fake_kit.run("kill_agent", "a2")
    assert out.returncode == 0 and out.stdout.strip() == "a2: the run had ended (completed); stopped its --on-complete hook", out
    rec = fake_kit.record("a2")
    assert rec["status"] == "completed"
    assert rec["on_complete"] == {"argv": shlex.split(hook), "exit_code": None, "error": "stopped by request (signal 15)"}
    assert not files["ended"].exists()
    again = fake_kit.run("launch_agent", "a2", "y", "--wait")
    assert again.returncode == 0, again.stderr
    assert fake_kit.run("kill_agent", "a2").stdout.strip() == "a2: not running (status completed); nothing to stop"


def test_kill_all_stops_running_hooks_too(fake_kit, tmp_path):
    hook, files = _gated_hook(tmp_path, "h4")  # its gate never opens: only a stop ends it
    assert fake_kit.run("launch_agent", "a4", "x", "--on-complete", hook, "--kill-grace", "1").returncode == 0
    wait_until(files["started"].exists, what="the on-complete hook running")
    out = fake_kit.run("kill_agent", "--all", "--json")
    assert out.returncode == 0, out.stderr
    assert [(r["agent"], r["action"]) for r in json.loads(out.stdout)] == [("a4", "hook-stopped")]
    assert fake_kit.record("a4")["on_complete"]["error"] == "stopped by request (signal 15)"


def test_a_hook_still_runs_after_the_run_was_killed(fake_kit, tmp_path):
    done = tmp_path / "hook-ran"
    script = f"import os; open({str(done)!r}, 'w').write(os.environ['ORCHESTRATOR_STATUS'])"
    hook = f"{sys.executable} -c {shlex.quote(script)}"
    assert fake_kit.run("launch_agent", "a3", "[[fake: hang]]", "--on-complete", hook).returncode == 0
    fake_kit.wait_running("a3")
    assert fake_kit.run("kill_agent", "a3", "--grace", "1").returncode == 0
    assert fake_kit.run("wait_agents", "a3").returncode == 1
    assert done.read_text() == "killed"
    assert fake_kit.record("a3")["on_complete"]["exit_code"] == 0


def test_a_hook_whose_supervisor_died_is_recorded_as_unknown_and_holds_nothing(fake_kit, tmp_path):
    hook, files = _gated_hook(tmp_path, "h4")
    try:
        assert fake_kit.run("launch_agent", "a4", "x", "--on-complete", hook).returncode == 0
        wait_until(files["started"].exists, what="the on-complete hook running")
        rec = fake_kit.record("a4")
        os.kill(rec["supervisor_pid"], signal.SIGKILL)
        wait_until(lambda: process_gone(rec["supervisor_pid"], rec["supervisor_started"]), what="the supervisor gone")
        shown = json.loads(fake_kit.run("check_status", "--full", "a4").stdout)[0]
        assert shown["status"] == "completed"
        assert shown["on_complete"] == {"argv": shlex.split(hook), "exit_code": None, "error": HOOK_ORPHANED}
        assert fake_kit.record("a4")["on_complete"] == shown["on_complete"], "written back"
        assert fake_kit.run("launch_agent", "a4", "y", "--wait").returncode == 0
    finally:
        files["gate"].touch()
    wait_until(files["ended"].exists, what="the orphaned hook to end")


# -- 5: a stopped run's exit_code is what the CLI's exit was -----------------------------------


def test_the_real_cli_catches_sigterm_and_exits_143_itself(real_kit):
    """Both pinned CLIs, once started (they have asked the API), handle SIGTERM and exit with status 143
    (128 + 15) on their own: the record keeps that status (not -15, which means the signal ended the
    process, as it does a CLI still starting up); SIGKILL after the grace would give -9."""

    def asked(name: str) -> bool:
        return any(f"{name} hello" in user_prompt(body) for body in real_kit.api.messages_requests())

    # t1's timeout must come after its CLI has started: CI saw 2.1.197 take over 3 s to ask under load
    assert real_kit.run("launch_agent", "t1", "[[delay: 60]] t1 hello", "--timeout", "15", "--kill-grace", "20").returncode == 0
    assert real_kit.run("launch_agent", "k1", "[[delay: 60]] k1 hello", "--timeout", "0", "--kill-grace", "20").returncode == 0
    wait_until(lambda: asked("k1"), what="k1's CLI asking the API")
    assert real_kit.run("kill_agent", "k1").returncode == 0
    assert real_kit.run("wait_agents", "t1", "k1").returncode == 1
    assert asked("t1"), "t1's CLI had started when its timeout came"
    for name, status in (("t1", "timeout"), ("k1", "killed")):
        rec = real_kit.record(name)
        assert (rec["status"], rec["stop_reason"], rec["exit_code"]) == (status, status, 143), rec
        assert "grace period over" not in open(rec["log_file"]).read(), "it exited within the grace: no SIGKILL"


def test_a_signal_to_the_cli_and_then_its_supervisor_is_a_stop_not_a_failure(fake_kit):
    """scancel (or a process group's Ctrl-C) signals every process of a job one after another: the CLI may die
    before its supervisor gets the same signal.  The run is then ``killed``, not ``failed`` (CI saw it on Slurm)."""
    assert fake_kit.run("launch_agent", "both", "[[fake: hang]]").returncode == 0
    rec = fake_kit.wait_running("both")
    os.kill(rec["pid"], signal.SIGTERM)
    os.kill(rec["supervisor_pid"], signal.SIGTERM)
    assert fake_kit.run("wait_agents", "both").returncode == 1
    ended = fake_kit.record("both")
    assert (ended["status"], ended["stop_reason"]) == ("killed", "killed"), ended
    assert fake_kit.run("launch_agent", "cli-only", "[[fake: hang]]").returncode == 0
    os.kill(fake_kit.wait_running("cli-only")["pid"], signal.SIGTERM)
    assert fake_kit.run("wait_agents", "cli-only").returncode == 1
    assert (fake_kit.record("cli-only")["status"], fake_kit.record("cli-only")["exit_code"]) == ("failed", -15)


def test_the_supervisor_waits_a_moment_for_the_signal_that_killed_its_cli(monkeypatch):
    """The race itself, without processes: the CLI is dead of a signal nobody in the toolkit sent; the
    supervisor's own copy of that signal comes a little later (as slurmstepd signals one process after another)."""
    from claude_orchestrator.core.states import StopReason
    from claude_orchestrator.supervisor import attempt

    def attempt_whose_signal_comes_after(calls: int, request):
        seen = []
        a = attempt.Attempt.__new__(attempt.Attempt)
        a.reason, a.log = None, lambda _line: None
        a.stop_request = lambda: (seen.append(1), request if len(seen) > calls else None)[1]
        return a

    late = attempt_whose_signal_comes_after(3, attempt.StopRequest(15))
    late._take_a_signal_to_us_too()
    assert late.reason is StopReason.KILLED
    limit = attempt_whose_signal_comes_after(2, attempt.StopRequest(10, time_limit=True))
    limit._take_a_signal_to_us_too()
    assert limit.reason is StopReason.TIMEOUT
    monkeypatch.setattr(attempt, "SIBLING_SIGNAL_WAIT_S", 0.05)
    never = attempt_whose_signal_comes_after(10**9, attempt.StopRequest(15))
    never._take_a_signal_to_us_too()
    assert never.reason is None, "a CLI killed from outside, and nothing else: judged as it ended"


def test_a_cli_killed_by_a_signal_records_the_negative_signal(fake_kit):
    """The fake CLI (Python) does not catch SIGTERM: the signal ends it (-15); one that ignores SIGTERM
    is ended by SIGKILL after the grace (-9)."""
    assert fake_kit.run("launch_agent", "s1", "[[fake: hang]]", "--timeout", "1", "--kill-grace", "20").returncode == 0
    assert fake_kit.run("launch_agent", "s2", "[[fake: ignore_term]]", "--timeout", "1", "--kill-grace", "0.5").returncode == 0
    assert fake_kit.run("wait_agents", "s1", "s2").returncode == 1
    assert [fake_kit.record(n)["exit_code"] for n in ("s1", "s2")] == [-15, -9]
    assert all(fake_kit.record(n)["status"] == "timeout" for n in ("s1", "s2"))


# -- 12: a retry's session ID ----------------------------------------------------------------


def test_a_retry_runs_in_a_new_session_that_the_record_and_the_session_file_name(real_kit, real_cli, tmp_path):
    """The CLI refuses to reuse the session ID of a failed attempt ("Session ID ... is already in use"), so a
    retry gets a new one: the record, the session file and a resume follow it; the launch printed the first."""
    real_kit.env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # the CLI's own retries would hide the error
    work = tmp_path / "work"
    work.mkdir()
    task = "[[flaky: 529 1]] remember the word teal"
    out = real_kit.run("launch_agent", "r1", task, "--cwd", str(work), "--retries", "1", "--retry-backoff", "0.1", "--json")
    printed = json.loads(out.stdout)["session_id"]
    assert real_kit.run("wait_agents", "r1").returncode == 0
    rec = real_kit.record("r1")
    assert rec["status"] == "completed" and rec["attempt"] == 2
    inits = [e["session_id"] for e in map(json.loads, open(rec["transcript_file"])) if e.get("subtype") == "init"]
    assert inits[0] == printed and len(inits) == 2 and inits[1] != printed
    assert rec["session_id"] == inits[1] == (real_kit.root / "sessions" / "r1_session.txt").read_text().strip()
    # why: the first attempt's session file exists, and the CLI will not start a session with its ID again
    again = subprocess.run([str(real_cli), "-p", "--session-id", printed], input="x", capture_output=True, text=True,
                           cwd=work, env={k: v for k, v in real_kit.env.items() if k not in ("CLAUDECODE", "CLAUDE_CODE_ENTRYPOINT")},
                           timeout=60)
    assert again.returncode == 1 and f"Session ID {printed} is already in use" in again.stderr
    resumed = real_kit.run("resume_agent", "r1", "--wait", "which word?")
    assert resumed.returncode == 0, resumed.stderr
    assert real_kit.record("r1")["session_id"] == inits[1]
    history = [m for m in real_kit.api.messages_requests()[-1]["messages"] if m["role"] == "user"]
    assert any("remember the word teal" in json.dumps(m) for m in history[:-1]), "the resume has the retry's history"
