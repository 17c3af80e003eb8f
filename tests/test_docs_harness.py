"""The docs' test harness (tests/docs_harness.py) fails when it should, and the lean install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from docs_harness import expected_status, lines_match, lines_match_any_order, logical_commands, normalise, parse_console

ROOT = Path(__file__).resolve().parent.parent


def _match(expected: str, actual: str) -> bool:
    return lines_match([normalise(x) for x in expected.splitlines()], [normalise(x) for x in actual.splitlines()])


def test_volatile_values_match_any_value_of_their_kind():
    shown = "agent1: completed in 0.6s, 1 turn, $0.0097  run 20261120T230758Z-365c26  session 61b3546b-7900-4094-a0b5-4556beb6b8d8"
    got = "agent1: completed in 12.25s, 1 turn, $1.5000  run 20261207T081500Z-0a1b2c  session 00000000-1111-2222-3333-444444444444"
    assert _match(shown, got)
    assert _match("23:44:30 docs: running  249 MiB  1.7x  21%  2,588", "08:01:02 docs: running  12 MiB  0.9x  3%  17")


def test_words_states_and_small_numbers_must_be_equal():
    assert not _match("agent1: completed in 0.6s, 1 turn", "agent1: failed in 0.6s, 1 turn")
    assert not _match("all ended: 2 completed, 1 failed", "all ended: 3 completed")
    assert not _match("queued #2", "queued #3")


def test_ellipsis_in_a_line_and_as_a_line():
    assert _match("  status:     .../status/agent1.json", "  status: /tmp/x/y/status/agent1.json")
    assert _match("first\n...\nlast", "first\nlast")
    assert _match("first\n...\nlast", "first\na\nb\nlast")
    assert not _match("first\n...\nlast", "first\na\nb")
    assert not _match("only", "only\nmore")


def test_any_order_matches_each_shown_line_to_a_line_of_its_own():
    def any_order(expected: str, actual: str) -> bool:
        return lines_match_any_order([normalise(x) for x in expected.splitlines()], [normalise(x) for x in actual.splitlines()])

    assert any_order("b done\na done", "a done\nb done")
    assert not any_order("a done\na done", "a done\nb done")  # one line cannot match two
    assert not any_order("a done", "a done\nb done")  # an extra line needs a ... line
    assert any_order("...\na done", "b done\na done")


def test_blanks_collapse_but_text_does_not():
    assert _match("AGENT   STATUS", "AGENT STATUS   ")
    assert not _match("AGENT STATUS", "AGENTSTATUS")


def test_console_blocks_split_into_commands_and_outputs():
    block = "$ echo a \\\n  b\na b\n$ true   # exits 3\n"
    assert parse_console(block) == [("echo a \\\n  b", ["a b"]), ("true   # exits 3", [])]
    assert expected_status("true   # exits 3") == 3 and expected_status("echo '# exits 3 no'") == 0
    with pytest.raises(ValueError):
        parse_console("output before a command\n$ true\n")


def test_a_script_s_commands_are_its_lines_with_continuations_joined():
    assert logical_commands("a \\\n b\nc\n") == [(1, 2), (3, 3)]


def _tool(tmp_path: Path, name: str, body: str) -> Path:
    exe = tmp_path / "bin" / name
    exe.parent.mkdir(exist_ok=True)
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return exe


@pytest.fixture
def kit(tmp_path) -> Path:
    root = tmp_path / "kit"
    root.mkdir()
    shutil.copy2(ROOT / "Makefile", root / "Makefile")
    return root


def _install_cli(kit: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("CLAUDE_BIN", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(kit), "install-cli"], env=dict(base, **env),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_install_fetches_no_cli_when_one_is_on_path(kit, tmp_path):
    calls = tmp_path / "npm-calls"
    _tool(tmp_path, "npm", f'echo "$@" >> {calls}')
    _tool(tmp_path, "claude", 'echo "9.9.9 (Claude Code)"')
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    done = _install_cli(kit, tmp_path, PATH=path)
    assert done.returncode == 0, done.stderr
    assert f"the scripts will run {tmp_path / 'bin' / 'claude'} (9.9.9 (Claude Code)); no CLI fetched" in done.stdout
    assert not calls.exists() and not (kit / ".claude-cli").exists()


def test_install_fetches_the_cli_when_none_is_on_path(kit, tmp_path):
    calls = tmp_path / "npm-calls"
    # a fake npm that "installs" a claude printing the asked version
    _tool(tmp_path, "npm", f'echo "$@" >> {calls}\nmkdir -p "$3/node_modules/.bin"\n'
          f'printf \'#!/bin/sh\\necho "2.1.332 (Claude Code)"\\n\' > "$3/node_modules/.bin/claude"\nchmod +x "$3/node_modules/.bin/claude"')
    path = f"{tmp_path / 'bin'}:/usr/bin:/bin"
    assert shutil.which("claude", path=path) is None
    done = _install_cli(kit, tmp_path, PATH=path)
    assert done.returncode == 0, done.stderr
    assert "@anthropic-ai/claude-code@" in calls.read_text()
    assert ".claude-cli/node_modules/.bin/claude is 2.1.332 (Claude Code)" in done.stdout
    again = _install_cli(kit, tmp_path, PATH=path)  # the right version is there: nothing fetched again
    assert again.returncode == 0 and len(calls.read_text().splitlines()) == 1


def test_claude_bin_counts_as_a_cli(kit, tmp_path):
    _tool(tmp_path, "npm", "exit 1")
    done = _install_cli(kit, tmp_path, PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin", CLAUDE_BIN=sys.executable)
    assert done.returncode == 0 and "no CLI fetched" in done.stdout, done.stderr


# -- the documents themselves ---------------------------------------------------

DOC_FILES = sorted([ROOT / "README.md", ROOT / "ORCHESTRATOR_README.md", *(ROOT / "docs").glob("*.md"),
                    *(ROOT / "plugin" / "skills").glob("*/SKILL.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case, punctuation dropped, blanks as ``-``,
    a repeated one numbered (``x``, ``x-1``)."""
    anchors: set[str] = set()
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_code = not in_code
        if in_code or not re.match(r"#{1,6} ", line):
            continue
        title = re.sub(r"`|\*\*", "", line.lstrip("#").strip())
        anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        candidate, n = anchor, 0
        while candidate in anchors:
            n += 1
            candidate = f"{anchor}-{n}"
        anchors.add(candidate)
    return anchors


def test_the_readme_is_a_front_door_and_the_reference_is_in_docs():
    assert (ROOT / "README.md").stat().st_size <= 15_000, "README.md is the front door: at most 15 KB; move reference text to docs/"
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert len(pages) >= 5, pages
    readme = (ROOT / "README.md").read_text()
    assert all(f"docs/{page}" in readme for page in pages), "the README links every page of docs/"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_between_the_documents_resolves(doc):
    broken = []
    prose = re.sub(r"^(```|~~~).*?^\1", "", doc.read_text(), flags=re.M | re.S)  # code blocks hold no links,
    prose = re.sub(r"`[^`\n]*`", "", prose)  # nor do code spans
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in github_anchors(file.read_text()):
            broken.append(f"{target}: no heading with that anchor in {file.relative_to(ROOT)}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_code_points_at_pages_that_exist():
    """Docstrings and messages cite docs/PAGE.md (and a "Section" of it); DESIGN.md is not in the repository."""
    wrong = []
    for py in sorted([*(ROOT / "claude_orchestrator").rglob("*.py"), *(ROOT / "agents").glob("*.py"), *(ROOT / "bench").glob("*.py")]):
        text = py.read_text()
        where = py.relative_to(ROOT)
        if "DESIGN.md" in text:
            wrong.append(f"{where}: cites DESIGN.md, which is not in the repository")
        for page, section in re.findall(r"docs/([\w-]+\.md)(?:,? \"([^\"\n]+)\")?", text):
            file = ROOT / "docs" / page
            if not file.exists():
                wrong.append(f"{where}: docs/{page} does not exist")
            elif section and not any(line.lstrip("#").strip() == section for line in file.read_text().splitlines() if line.startswith("#")):
                wrong.append(f"{where}: docs/{page} has no heading {section!r}")
    assert not wrong, "\n".join(wrong)
