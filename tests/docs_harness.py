"""Run the commands the documentation shows, so that a doc and the behaviour cannot drift.

Collected by the ``conftest.py`` at the repository's root through Sybil (a
doc-testing library: https://sybil.readthedocs.io) from README.md,
ORCHESTRATOR_README.md, docs/*.md and the plugin's skill.  docs/testing-offline.md,
"How the docs are tested", is the user-facing description of these rules.

Every fenced block in ``console``, ``sh``, ``bash`` or ``shell`` runs, in
document order, in one :class:`World` per document (the blocks of a document
share it, as a reader following along would):

- The working directory is a fresh folder that is also the state root
  (``ORCHESTRATOR_HOME``), with symlinks to the toolkit's ``agents/``,
  ``Makefile`` and the rest, so that ``python3 agents/launch_agent.py ...``,
  ``make status`` and ``cat outputs/NAME_latest.txt`` work as written "from
  the toolkit root".
- The agents run the pinned real CLI against the fake Messages API
  (``claude_orchestrator.devtools.fake_api``) on 127.0.0.1; ``HOME`` and
  ``CLAUDE_CONFIG_DIR`` are inside the world, never the user's.
- ``/abs/project`` and ``/abs/repo`` in a command stand for one git repository
  with a commit; ``/abs/toolkit`` for the toolkit; ``/tmp/`` for the world's
  own temp folder.  The output is mapped back the same way.
- The fake model answers ``OK: <task>`` unless ``tests/docs_replies.toml``
  scripts the task (a text found in the prompt -> directives).

``console`` blocks: ``$ `` starts a command (a trailing ``\\`` continues it);
the lines up to the next ``$ `` are its expected output (stdout and stderr).
Lines are compared after trailing blanks are dropped and runs of blanks made
one; volatile values (IDs, times, durations, costs, sizes, ratios, numbers of
two or more digits) match any value of their kind (:func:`normalise`); ``...``
in a line matches any text, and a line that is only ``...`` any lines.

``<!-- output: any order -->`` on the line before a console block lets each
command's output lines come in any order (agents that end at about the same
time).  ``sh`` blocks run as one bash script; output is not checked.  In both, a
command must exit 0 unless its line ends in ``# exits N``.

``<!-- skip: next "reason" -->`` (Sybil's skip, with a reason required) marks a
block that cannot run here.  A block in another language is not run, but a
block without a language is an error, and a ``toml`` block with
``[profiles.X]`` tables must load as a profiles file.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from sybil import Document, Example, Region
from sybil.parsers.markdown import SkipParser
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

from claude_orchestrator.claude.invocation import LOCAL_CLI

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "ORCHESTRATOR_README.md", "docs/*.md", "plugin/skills/*/SKILL.md")
REPLIES = ROOT / "tests" / "docs_replies.toml"
#: What the world links to, so that commands written "from the toolkit root" work in it.
LINKED = ("agents", "Makefile", ".orchestrator-python", "bench", "plugin", "docs", "tests", "README.md", "ORCHESTRATOR_README.md")
RUN_LANGUAGES = ("console", "sh", "bash", "shell")
#: Languages that are shown, never run (output, files, code).
SHOWN_LANGUAGES = ("text", "json", "jsonl", "toml", "python", "diff", "markdown", "yaml", "ini", "makefile")
COMMAND_TIMEOUT = 120.0
EXITS = re.compile(r"\s#\s*exits\s+(\d+)\s*$")
#: Written on the line before a console block whose commands' output lines may come in any order
#: (agents that end at about the same time): each shown line must match a line of its own.
ANY_ORDER = "<!-- output: any order -->"

#: (pattern, placeholder), applied in order to expected and actual output alike.
VOLATILE = [
    (re.compile(r"\b\d{8}T\d{6}Z(?:-[0-9a-f]{6})?\b"), "<ID>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<UUID>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"), "<TIME>"),
    (re.compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), "<TIME>"),
    (re.compile(r"\$\d+(?:\.\d+)?"), "<USD>"),
    (re.compile(r"\b(?:\d+h)?(?:\d+m)?\d+(?:\.\d+)?\s?(?:ms|s|min|h)\b|\b\d+m\b"), "<DURATION>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?(?:[KMGT]i?B|B)\b"), "<SIZE>"),
    (re.compile(r"\b\d+(?:\.\d+)?\s?%"), "<PERCENT>"),
    (re.compile(r"\b\d+(?:\.\d+)?x\b"), "<RATIO>"),
    (re.compile(r"\b\d{1,3}(?:,\d{3})+\b|\b\d+\.\d+\b|\b\d{2,}\b"), "<N>"),
]


def normalise(line: str) -> str:
    """One output line as compared: volatile values replaced by ``<KIND>``, blanks collapsed, trailing ones dropped."""
    for pattern, placeholder in VOLATILE:
        line = pattern.sub(placeholder, line)
    return re.sub(r"[ \t]+", " ", line).rstrip()


def _pattern(expected: str) -> re.Pattern | None:
    """An expected line as a pattern (``...`` in it: any text); None for a line that is only ``...``."""
    return None if expected.strip() == "..." else re.compile(".*".join(re.escape(p) for p in expected.split("...")))


def lines_match(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` matches ``expected`` (both normalised): ``...`` in a line is any text, a ``...`` line any lines."""
    patterns = [_pattern(e) for e in expected]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(patterns):
            ok = j == len(actual)
        elif patterns[i] is None:
            ok = match(i + 1, j) or (j < len(actual) and match(i, j + 1))
        else:
            ok = j < len(actual) and patterns[i].fullmatch(actual[j]) is not None and match(i + 1, j + 1)
        memo[(i, j)] = ok
        return ok

    return match(0, 0)


class World:
    """One document's world: a state root that is also the working directory, a fake API, the pinned CLI.

    Attributes:
        root: the folder (the state root and the commands' working directory).
        project: the git repository ``/abs/project`` and ``/abs/repo`` stand for.
        env: the commands' whole environment.
    """

    def __init__(self, root: Path) -> None:
        from claude_orchestrator.devtools.fake_api import load_replies, serve_in_thread  # the tests' own fake API

        self.root = root
        self.project = root / "project"
        home = root / "home"
        (home / ".claude").mkdir(parents=True)
        (root / "tmp").mkdir()
        for name in LINKED:
            (root / name).symlink_to(ROOT / name)
        (home / ".gitconfig").write_text("[user]\n\tname = Doc Reader\n\temail = reader@example.invalid\n[init]\n\tdefaultBranch = main\n")
        self.api = serve_in_thread(replies=load_replies(str(REPLIES)) if REPLIES.exists() else ())
        # a reader's shell: none of the CLI's, the toolkit's or Slurm's settings, and not inside make (make test's
        # MAKELEVEL would make the docs' make commands print "make[1]: Entering directory")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC_", "CLAUDE", "ORCHESTRATOR_", "SLURM_", "MAKE")) and k not in ("MFLAGS",)}
        env.update(
            ORCHESTRATOR_HOME=str(root),
            HOME=str(home),
            CLAUDE_CONFIG_DIR=str(home / ".claude"),
            CLAUDE_BIN=str(LOCAL_CLI),
            ANTHROPIC_BASE_URL=self.api.url,
            ANTHROPIC_API_KEY="doc-test-key",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            CLAUDE_PLUGIN_ROOT=str(ROOT / "plugin"),
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")]),
            TMPDIR=str(root / "tmp"),
        )
        self.env = env
        #: the docs' placeholder paths -> this world's
        self.places = {"/abs/project": str(self.project), "/abs/repo": str(self.project), "/abs/toolkit": str(ROOT),
                       "/tmp/": str(root / "tmp") + "/"}
        self._make_project()

    def _make_project(self) -> None:
        files = {
            "README.md": "# cache\n\nA small cache.\n",
            "src/cache.py": '"""A small cache."""\n\n\nclass Cache(dict):\n    """A dict with a name."""\n',
            "tests/test_cache.py": "from src.cache import Cache\n\n\ndef test_cache():\n    assert Cache() == {}\n",
            "api/__init__.py": '"""The API."""\n',
            "docs/cache.md": "# The cache\n",
        }
        for rel, text in files.items():
            path = self.project / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for argv in (["git", "init", "-q"], ["git", "add", "."], ["git", "commit", "-qm", "The cache"]):
            subprocess.run(argv, cwd=self.project, env=self.env, check=True, capture_output=True)

    def substitute(self, command: str) -> str:
        """The command as it runs here: the docs' placeholder paths made this world's (in one pass)."""
        return re.sub(r"/abs/project|/abs/repo|/abs/toolkit|(?<![\w./-])/tmp/", lambda m: self.places[m.group()], command)

    def unsubstitute(self, output: str) -> str:
        """Output with this world's paths written back as the docs' placeholders (the state root as ``...``)."""
        for real, placeholder in ((str(self.project), "/abs/project"), (str(self.root / "tmp") + "/", "/tmp/"), (str(self.root), "..."), (str(ROOT), "/abs/toolkit")):
            output = output.replace(real, placeholder)
        return output

    def run(self, script: str) -> tuple[int, str]:
        """Run ``script`` with bash here; return its exit status and output (stdout and stderr together).

        Raises:
            AssertionError: it ran longer than :data:`COMMAND_TIMEOUT` (its process group is killed).
        """
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise AssertionError(f"still running after {COMMAND_TIMEOUT:.0f} s:\n{script}\n--- output so far ---\n{out.decode(errors='replace')}") from None
        return proc.returncode, out.decode(errors="replace")

    def close(self) -> None:
        """Stop every agent still active here, then the fake API."""
        with contextlib.suppress(AssertionError):
            self.run("python3 agents/kill_agent.py --all --grace 1 >/dev/null 2>&1")
        from tests.processes import stop_leftovers  # psutil: only once a document's tests end

        stop_leftovers(self.root)
        self.api.shutdown()
        self.api.server_close()


def world_of(example: Example) -> World:
    """The example's document's world (made by the ``doc_world`` fixture, shared by its examples)."""
    return example.namespace["doc_world"]


def expected_status(line: str) -> int:
    """The exit status a command line's ``# exits N`` comment names, else 0."""
    found = EXITS.search(line)
    return int(found.group(1)) if found else 0


def parse_console(source: str) -> list[tuple[str, list[str]]]:
    """A console block's ``[(command, expected output lines)]``; a trailing ``\\`` continues a command."""
    items: list[tuple[str, list[str]]] = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = [line[2:]]
            while command[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                command.append(lines[i])
            items.append(("\n".join(command), []))
        elif items:
            items[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"a console block must start with a '$ ' command line, not {line!r}")
        i += 1
    return items


def lines_match_any_order(expected: list[str], actual: list[str]) -> bool:
    """Whether each ``expected`` line matches an ``actual`` line of its own, in any order; the other actual
    lines are allowed only if a line of ``expected`` is ``...``."""
    left = list(actual)
    for pattern in filter(None, map(_pattern, expected)):
        found = next((i for i, a in enumerate(left) if pattern.fullmatch(a)), None)
        if found is None:
            return False
        del left[found]
    return not left or any(e.strip() == "..." for e in expected)


def evaluate_console(example: Example, match=lines_match) -> str | None:
    """Run each ``$`` command of a console block; fail on an unexpected exit status or output."""
    world = world_of(example)
    for command, expected in parse_console(example.parsed):
        want = expected_status(command.splitlines()[-1])
        status, output = world.run(world.substitute(command))
        actual = [normalise(line) for line in world.unsubstitute(output).splitlines()]
        shown = [normalise(line) for line in expected]
        while shown and not shown[-1]:
            shown.pop()
        while actual and not actual[-1]:
            actual.pop()
        problems = []
        if status != want:
            problems.append(f"exit status {status}, the doc wants {want}")
        if shown and not match(shown, actual):
            problems.append("its output differs from the doc's")
        if problems:
            return (
                f"$ {command}\n" + "; ".join(problems) + "\n--- the doc shows (normalised) ---\n" + "\n".join(shown)
                + "\n--- it printed (normalised) ---\n" + "\n".join(actual) + "\n--- it printed ---\n" + output
            )
    return None


#: :func:`evaluate_console` with each command's output lines compared in any order (:data:`ANY_ORDER`).
evaluate_console_any_order = functools.partial(evaluate_console, match=lines_match_any_order)


def logical_commands(source: str) -> list[tuple[int, int]]:
    """The (first, last) line numbers (1-based) of each command line of a script, continuations joined."""
    spans = []
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        first = i
        while lines[i].endswith("\\") and i + 1 < len(lines):
            i += 1
        spans.append((first + 1, i + 1))
        i += 1
    return spans


def evaluate_script(example: Example) -> str | None:
    """Run an sh block as one bash script; every command must exit 0 or what its ``# exits N`` says."""
    world = world_of(example)
    source = world.substitute(example.parsed)
    status_file = world.root / "tmp" / f"status-{example.line}"  # the ERR trap's "LINE STATUS" lines
    status_file.write_text("")
    prologue = f"trap '__doc_status=$?; echo \"$LINENO $__doc_status\" >> {shlex.quote(str(status_file))}' ERR\n"
    try:
        _, output = world.run(prologue + source)
        failed: dict[int, int] = {}
        for entry in status_file.read_text().splitlines():
            line_no, status = (int(x) for x in entry.split())
            failed[line_no - 1] = status  # the prologue's line
    finally:
        status_file.unlink(missing_ok=True)
    lines = source.splitlines()
    problems = []
    for first, last in logical_commands(source):
        want = expected_status(lines[last - 1])
        got = next((failed[n] for n in range(first, last + 1) if n in failed), 0)
        if got != want:
            problems.append(f"line {first}: exit status {got}, the doc wants {want}: {lines[first - 1].strip()}")
    if problems:
        return "\n".join(problems) + "\n--- the script ---\n" + source + "\n--- it printed ---\n" + output
    return None


def evaluate_profiles(example: Example) -> str | None:
    """Load a toml block holding ``[profiles.X]`` tables as a profiles file."""
    from claude_orchestrator.usecases.profiles import load_profiles

    world = world_of(example)
    path = world.root / "tmp" / f"profiles-{example.line}.toml"
    path.write_text(example.parsed)
    try:
        load_profiles(path)
    except Exception as exc:  # the loader's own error says what is wrong; show it as the failure
        return f"this profiles file does not load: {exc}"
    return None


def unknown_block(example: Example) -> str | None:
    """A block in no known language fails: say how to mark it."""
    language = example.parsed
    if not language:
        return "a code block without a language: write console or sh for a command that runs, text for anything else"
    return f"a code block in {language!r}: use one of {', '.join(RUN_LANGUAGES + SHOWN_LANGUAGES)}"


class BlockParser:
    """Sybil parser: turn fenced code blocks into examples by language (see the module docstring)."""

    def __init__(self) -> None:
        self.lexer = FencedCodeBlockLexer(r"[\w+-]*")

    def __call__(self, document: Document) -> Iterable[Region]:
        for lexed in self.lexer(document):
            language = lexed.lexemes["language"]
            source = str(lexed.lexemes["source"])
            if language == "console":
                any_order = document.text[: lexed.start].rstrip().endswith(ANY_ORDER)
                yield Region(lexed.start, lexed.end, source, evaluate_console_any_order if any_order else evaluate_console)
            elif language in RUN_LANGUAGES:
                yield Region(lexed.start, lexed.end, source, evaluate_script)
            elif language == "toml" and re.search(r"^\[profiles\.", source, re.M):
                yield Region(lexed.start, lexed.end, source, evaluate_profiles)
            elif language not in SHOWN_LANGUAGES:
                yield Region(lexed.start, lexed.end, language, unknown_block)


class ReasonedSkipParser(SkipParser):
    """Sybil's ``<!-- skip: next "reason" -->``, with the reason required for ``next`` and ``start``."""

    def __call__(self, document: Document) -> Iterable[Region]:
        for region in super().__call__(document):
            action, reason = region.parsed
            if action in ("next", "start") and not (reason or "").strip().strip("'\""):
                raise ValueError(f'{document.path}: a skip needs a reason: <!-- skip: {action} "why it cannot run here" -->')
            yield region
