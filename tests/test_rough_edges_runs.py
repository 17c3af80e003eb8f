"""Rough edges a new user hit with runs (issue 19): hooks, exit codes, why a CLI failed, retries' sessions, result files.

Each test names its item of the issue.  They synchronise on files and records, never on sleeps.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import cli_path

from claude_orchestrator.claude.stream import RunProgress, last_stderr_line, plain_line
from claude_orchestrator.core.states import State
from claude_orchestrator.supervisor.attempt import AttemptEnd
from claude_orchestrator.supervisor.report import output_text


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


@pytest.mark.parametrize("version", ["2.1.332", "2.1.197"])
def test_the_real_cli_refusing_root_says_why_and_what_to_do(real_kit, version):
    real_kit.env["CLAUDE_BIN"] = str(cli_path(version))
    real_kit.env.pop("IS_SANDBOX", None)
    out = real_kit.run("launch_agent", "root1", "hello", "--dangerously-skip-permissions", "--wait", "--json")
    rec = real_kit.record("root1")  # --json --wait prints the short form (its error a 200-character preview)
    assert out.returncode == 1 and rec["status"] == "failed"
    assert rec["error"] == (
        "the CLI exited with status 1 without a result event: --dangerously-skip-permissions cannot be used "
        "with root/sudo privileges for security reasons (set IS_SANDBOX=1 if this runs in a sandbox, "
        "or run as a user other than root)"
    )
