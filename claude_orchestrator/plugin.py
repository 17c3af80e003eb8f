"""The toolkit as a Claude Code plugin: render it for this checkout, install it.

The plugin's source is ``plugin/`` in the repository (docs/plugin.md)::

    plugin/.claude-plugin/plugin.json            {"name": "orchestrator", "version", "description", "author"}
    plugin/skills/background-agents/SKILL.md     the skill: front matter (name, description) + a short manual
    plugin/monitors/monitors.json                [{"name", "command", "description", "when"}]

Its commands are written as ``python3 ${CLAUDE_PLUGIN_ROOT}/../agents/X.py``;
the monitor's starts with ``ORCHESTRATOR_HOME=${CLAUDE_PLUGIN_ROOT}/..``, the
state root it follows, which a render fills in (:data:`STATE_ROOT_PLACEHOLDER`).
The CLI replaces ``${CLAUDE_PLUGIN_ROOT}`` with the plugin's directory, so
the source is right as it is when loaded in place (``claude --plugin-dir
plugin``), and where the CLI reads an installed plugin in place (a local
marketplace folder, as both 2.1.197 and 2.1.330 did here).  But ``claude
plugin install`` also copies it into the config dir's
``plugins/cache/<market>/<name>/<version>/``, which is what runs for a
marketplace from GitHub, and there ``..`` is not the toolkit.  :func:`render` therefore writes a copy with the toolkit's
absolute path (and the interpreter that has this package) filled in, beside a
one-plugin marketplace, and :func:`install` installs from that.

Facts from Claude Code 2.1.330 and 2.1.197, tried by hand with their own
``CLAUDE_CONFIG_DIR``:

- ``claude plugin marketplace add DIR`` exits 0 when the marketplace is new,
  when it is already there ("already on disk"), and when it was added from
  another folder (it then points at the new one).
- ``claude plugin install NAME@MARKET`` exits 0 when the plugin is already
  installed, but leaves the installed version as it was.
- ``claude plugin update NAME@MARKET`` installs the marketplace's version
  when it differs from the installed one (any difference, not only a higher
  one; exit 0, "already at the latest version" when equal).  It compares
  versions only: with the same version, 2.1.197 keeps the stale copy.  So
  :func:`render` gives every build its own version, the source version plus
  ``+`` and a digest of the rendered files (``0.1.0+1a2b3c4d5e``), and
  :func:`install` runs add, install and update, each idempotent.

Run it as ``python -m claude_orchestrator.plugin install | render DEST | path``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .claude.invocation import cli_env, find_claude
from .commands.guard import guarded
from .core.errors import BadInput, OrchestratorError
from .core.paths import HOME_ENV, TOOLKIT_ROOT
from .core.states import ExitCode

#: The plugin's name (``plugin.json``); ``claude-``, ``anthropic-`` and ``cc-plugin-`` are reserved.
PLUGIN_NAME = "orchestrator"
#: The marketplace that :func:`render` writes beside the rendered plugin.
LOCAL_MARKETPLACE = "orchestrator-local"
#: The plugin's source, relative to the toolkit root.
SOURCE_DIR = "plugin"
#: Where :func:`install` renders, relative to the toolkit root (git-ignored).
BUILD_DIR = ".plugin-build"
#: What the source writes for the toolkit root; replaced by :func:`render`.
PLACEHOLDER = "${CLAUDE_PLUGIN_ROOT}/.."
#: How the source's monitor names its state root; :func:`render` puts the state root it renders for in its place.
STATE_ROOT_PLACEHOLDER = f"{HOME_ENV}={PLACEHOLDER}"
#: The interpreter the source names before it; replaced when :func:`render` gets ``python``.
SOURCE_PYTHON = "python3"
#: Seconds one ``claude plugin`` command may take (each takes about 0.4 s offline).
CLI_TIMEOUT = 120.0
#: Files of the source that :func:`render` fills in; any other file is copied as it is.
RENDERED_SUFFIXES = (".md", ".json")


def render(dest: Path, toolkit: Path = TOOLKIT_ROOT, python: str | None = None, state_root: Path | None = None) -> Path:
    """Write the plugin for ``toolkit`` into ``dest``, beside a local marketplace.

    Layout written (``dest`` is created if missing; nothing else in it is touched)::

        dest/.claude-plugin/marketplace.json   {"name": "orchestrator-local", "owner", "description",
                                                "plugins": [{"name": "orchestrator", "source": "./orchestrator", ...}]}
        dest/orchestrator/                      a copy of <toolkit>/plugin/ in which, in every .md and
                                                .json file, "python3 ${CLAUDE_PLUGIN_ROOT}/.." became
                                                "<python> <toolkit>" (when ``python`` is given) and any other
                                                "${CLAUDE_PLUGIN_ROOT}/.." became "<toolkit>"; both
                                                shell-quoted when they need it (shlex.quote)

    The copy is built beside the old one and swapped in, so a failed render
    leaves the previous one.  Its ``plugin.json`` version is the source's
    plus ``+`` and the first 10 hex digits of a SHA-256 of the rendered
    files, so any change (another toolkit path, another interpreter, an
    edited skill) is a new version to ``claude plugin update``.

    Args:
        dest: the directory to render into, e.g. ``<toolkit>/.plugin-build``.
        toolkit: the toolkit root (with ``agents/`` and ``plugin/``); made absolute.
        python: the interpreter the commands should run (e.g. ``sys.executable``,
            the one that has this package); None keeps the source's ``python3``.
        state_root: the state root the monitor follows, named in its command
            (so it never depends on the session's environment); default
            ``$ORCHESTRATOR_HOME`` if set, else ``toolkit`` (the scripts' own default).

    Returns:
        The rendered plugin's directory, ``dest/orchestrator`` (for ``claude --plugin-dir``).

    Raises:
        BadInput: ``toolkit`` has no ``agents/`` or ``plugin/.claude-plugin/plugin.json``;
            ``dest`` is inside the source; ``dest/orchestrator`` or
            ``dest/.claude-plugin/marketplace.json`` exists but is not an earlier render.
        OSError: the files could not be written.
    """
    toolkit = Path(toolkit).expanduser().resolve()
    source, manifest = _check_toolkit(toolkit)
    root = default_state_root(toolkit) if state_root is None else Path(state_root).expanduser().resolve()
    dest = Path(dest).expanduser().resolve()
    if dest == source or source in dest.parents:
        raise BadInput(f"cannot render into {dest}: it is inside the plugin's source {source}; choose another folder")
    target = dest / PLUGIN_NAME
    market_file = dest / ".claude-plugin" / "marketplace.json"
    _check_ours(target, market_file)

    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_NAME}.", dir=dest))
    try:
        built = staging / PLUGIN_NAME
        _build_plugin(source, built, _replacements(toolkit, python, root))
        _stamp_version(built, manifest)
        market_file.parent.mkdir(exist_ok=True)
        tmp_market = staging / "marketplace.json"
        _write_json(tmp_market, _marketplace(manifest, toolkit))
        _swap_in(built, target, staging / "old")
        os.replace(tmp_market, market_file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def default_state_root(toolkit: Path) -> Path:
    """The state root a render names when given none: ``$ORCHESTRATOR_HOME`` if set (absolute), else ``toolkit``."""
    home = os.environ.get(HOME_ENV, "").strip()
    return Path(home).expanduser().resolve() if home else Path(toolkit).expanduser().resolve()


@dataclasses.dataclass
class Step:
    """One ``claude plugin`` command :func:`install` ran.

    Attributes:
        argv: its argument vector (the CLI first).
        returncode: its exit status.
        output: its stdout and stderr, stripped.
    """

    argv: list[str]
    returncode: int
    output: str

    @property
    def label(self) -> str:
        """``claude plugin marketplace add``, ``claude plugin install`` ..."""
        return "claude plugin " + " ".join(self.argv[2:4] if self.argv[2:3] == ["marketplace"] else self.argv[2:3])

    @property
    def summary(self) -> str:
        """The last non-empty line of its output (the CLI's verdict), or ``exit N``."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        if not lines:
            return f"exit {self.returncode}"
        last = lines[-1]
        marks = [i for i in (last.rfind("\u2714"), last.rfind("\u2718")) if i > 0]  # after a spinner's "Adding…"
        return last[max(marks):] if marks else last


@dataclasses.dataclass
class Installed:
    """What :func:`install` did.

    Attributes:
        plugin_dir: the rendered plugin (``<build>/orchestrator``).
        version: its version, e.g. ``0.1.0+1a2b3c4d5e``.
        plugin_id: ``orchestrator@orchestrator-local``, as ``claude plugin list`` shows it.
        steps: the CLI commands run, in order.
    """

    plugin_dir: Path
    version: str
    plugin_id: str
    steps: list[Step]


def install(
    toolkit: Path = TOOLKIT_ROOT,
    build: Path | None = None,
    python: str | None = None,
    claude: str | None = None,
    env: dict[str, str] | None = None,
    state_root: Path | None = None,
) -> Installed:
    """Render the plugin and install it (user scope) into the Claude config.

    Runs, each as an argument vector (never a shell), each idempotent:
    ``claude plugin marketplace add <build>``, ``claude plugin install
    orchestrator@orchestrator-local``, ``claude plugin update
    orchestrator@orchestrator-local`` (which brings in the new render when
    it differs from the installed one).  Which config: the CLI's own choice
    (``$CLAUDE_CONFIG_DIR``, else ``~/.claude``).  A running session loads
    the change at its next start (or ``/reload-plugins``).

    Args:
        toolkit: the toolkit root.
        build: where to render; default ``<toolkit>/.plugin-build``.
        python: the interpreter for the plugin's commands; default this one (``sys.executable``).
        claude: the CLI; default :func:`find_claude`.
        env: the CLI's environment; default this process's, less what marks a Claude session (:func:`cli_env`).
        state_root: the state root the monitor follows (:func:`render`'s default when None).

    Returns:
        :class:`Installed`.

    Raises:
        CliMissing: no Claude CLI (exit 127).
        BadInput: from :func:`render`.
        OrchestratorError: a CLI command failed or hung (exit 1), naming it and quoting its last line.
    """
    toolkit = Path(toolkit).expanduser().resolve()
    build = Path(build) if build is not None else toolkit / BUILD_DIR
    claude = claude or find_claude()
    plugin_dir = render(build, toolkit, python or sys.executable, state_root)
    version = json.loads((plugin_dir / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8"))["version"]
    plugin_id = f"{PLUGIN_NAME}@{LOCAL_MARKETPLACE}"
    run_env = cli_env(env)
    steps = []
    for args in (
        ["marketplace", "add", str(plugin_dir.parent)],
        ["install", plugin_id],
        ["update", plugin_id],
    ):
        steps.append(_run_cli([claude, "plugin", *args], run_env))
    return Installed(plugin_dir, version, plugin_id, steps)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m claude_orchestrator.plugin``: returns the exit status (an :class:`ExitCode`)."""
    parser = argparse.ArgumentParser(
        prog="python -m claude_orchestrator.plugin",
        description="The toolkit as a Claude Code plugin (the background-agents skill and a monitor): "
        "render it with this checkout's absolute path filled in, or install it.",
        epilog="""examples:
  python -m claude_orchestrator.plugin install            render into .plugin-build/, then
                                                          claude plugin marketplace add + install + update
  python -m claude_orchestrator.plugin path               render into .plugin-build/ and print the plugin's folder
  claude --plugin-dir "$(python -m claude_orchestrator.plugin path)"   one session with it, nothing installed
  python -m claude_orchestrator.plugin render /tmp/market   a marketplace folder to add by hand

The commands in the rendered skill run the interpreter given by --python
(default: this one, which has the package).  The monitor follows the state root
given by --state-root (default: $ORCHESTRATOR_HOME, else the toolkit), named in
its command: render again for another.  Installing uses the Claude CLI
from $CLAUDE_BIN, PATH or .claude-cli/, and its config ($CLAUDE_CONFIG_DIR or ~/.claude).
exit status: 0 ok, 1 a claude plugin command failed, 2 bad input, 127 no Claude CLI.
""",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--toolkit", metavar="DIR", type=Path, default=TOOLKIT_ROOT, help="the toolkit root (default: %(default)s)")
    common.add_argument(
        "--python",
        metavar="PATH",
        default=sys.executable,
        help="the interpreter the skill's commands run (default: %(default)s); 'python3' keeps the source's",
    )
    common.add_argument(
        "--state-root",
        metavar="DIR",
        type=Path,
        help="the state root the monitor follows (default: $ORCHESTRATOR_HOME, else the toolkit)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p_install = sub.add_parser("install", parents=[common], help="render into <toolkit>/.plugin-build and install it with the Claude CLI")
    p_install.add_argument("--build", metavar="DIR", type=Path, help="render here instead (default: <toolkit>/.plugin-build)")
    p_render = sub.add_parser("render", parents=[common], help="render the plugin and a local marketplace into DEST; print the plugin's folder")
    p_render.add_argument("dest", metavar="DEST", type=Path)
    sub.add_parser("path", parents=[common], help="render into <toolkit>/.plugin-build; print the plugin's folder (for claude --plugin-dir)")
    args = parser.parse_args(argv)
    python = args.python

    def body() -> int:
        try:
            if args.command == "install":
                done = install(args.toolkit, args.build, python, state_root=args.state_root)
                for step in done.steps:
                    print(f"{step.label}: {step.summary}")
                print(f"{done.plugin_id} {done.version} from {done.plugin_dir}; new Claude Code sessions load it (or run /reload-plugins)")
            elif args.command == "render":
                print(render(args.dest, args.toolkit, python, args.state_root))
            else:
                print(render(Path(args.toolkit).expanduser().resolve() / BUILD_DIR, args.toolkit, python, args.state_root))
        except OSError as exc:
            raise OrchestratorError(f"{exc.filename or ''}: {exc.strerror or exc}", ExitCode.AGENT_FAILED) from exc
        return int(ExitCode.OK)

    return guarded(parser.prog, body)


# -- helpers ------------------------------------------------------------------


def _check_toolkit(toolkit: Path) -> tuple[Path, dict[str, Any]]:
    """The plugin's source folder and its manifest, once ``toolkit`` (absolute) is checked.

    Returns:
        ``(<toolkit>/plugin, the parsed <toolkit>/plugin/.claude-plugin/plugin.json)``.

    Raises:
        BadInput: the manifest is missing or not JSON; ``toolkit`` has no
            ``agents/``; the manifest names another plugin than ``orchestrator``.
    """
    source = toolkit / SOURCE_DIR
    manifest = _load_json(source / ".claude-plugin" / "plugin.json", "the plugin's manifest")
    if not (toolkit / "agents").is_dir():
        raise BadInput(f"{toolkit} is not the toolkit: it has no agents/ folder; pass the folder that has agents/ and plugin/")
    if manifest.get("name") != PLUGIN_NAME:
        raise BadInput(f"{source}/.claude-plugin/plugin.json names plugin {manifest.get('name')!r}, not {PLUGIN_NAME!r}")
    return source, manifest


def _replacements(toolkit: Path, python: str | None, state_root: Path) -> list[tuple[str, str]]:
    """The ``(old, new)`` text replacements of a render, applied in order.

    ``ORCHESTRATOR_HOME=${CLAUDE_PLUGIN_ROOT}/..`` -> ``ORCHESTRATOR_HOME=<state_root>``
    first, then ``python3 ${CLAUDE_PLUGIN_ROOT}/..`` -> ``<python> <toolkit>`` (only
    when ``python`` is given), then any other ``${CLAUDE_PLUGIN_ROOT}/..`` ->
    ``<toolkit>``; each path shell-quoted (shlex.quote) when it needs it.
    """
    replacements = [(STATE_ROOT_PLACEHOLDER, f"{HOME_ENV}={shlex.quote(str(state_root))}"), (PLACEHOLDER, shlex.quote(str(toolkit)))]
    if python is not None:
        replacements.insert(1, (f"{SOURCE_PYTHON} {PLACEHOLDER}", f"{shlex.quote(python)} {shlex.quote(str(toolkit))}"))
    return replacements


def _build_plugin(source: Path, built: Path, replacements: list[tuple[str, str]]) -> None:
    """Copy the plugin's source to ``built`` (not existing yet) and fill in its .md and .json files.

    Caches (``__pycache__``, ``*.pyc``) and ``.DS_Store`` are left out.

    Raises:
        BadInput: a source .json file that holds the placeholder is not valid JSON.
        OSError: the copy could not be written.
    """
    shutil.copytree(source, built, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store"))
    for path in sorted(built.rglob("*")):
        if path.is_file() and path.suffix in RENDERED_SUFFIXES:
            _fill_in(path, replacements)


def _stamp_version(built: Path, manifest: dict[str, Any]) -> None:
    """Set the built ``plugin.json`` version to the source's (less any ``+...``) plus ``+`` and :func:`_digest`."""
    version = f"{str(manifest.get('version', '0')).split('+')[0]}+{_digest(built)}"
    built_manifest = built / ".claude-plugin" / "plugin.json"
    data = json.loads(built_manifest.read_text(encoding="utf-8"))
    data["version"] = version
    _write_json(built_manifest, data)


def _marketplace(manifest: dict[str, Any], toolkit: Path) -> dict[str, Any]:
    """The local marketplace's ``marketplace.json``: one plugin, ``./orchestrator``, owned by the manifest's author."""
    return {
        "name": LOCAL_MARKETPLACE,
        "owner": manifest.get("author") or {"name": "claude-orchestrator"},
        "description": f"The claude-orchestrator toolkit at {toolkit}, rendered by python -m claude_orchestrator.plugin.",
        "plugins": [
            {"name": PLUGIN_NAME, "source": f"./{PLUGIN_NAME}", "description": manifest.get("description", "")}
        ],
    }


def _swap_in(built: Path, target: Path, old: Path) -> None:
    """Move ``built`` to ``target``; a previous ``target`` goes to ``old`` (on the same file system).

    If the move fails, the previous render is put back before the error is raised.

    Raises:
        OSError: a rename failed.
    """
    if target.exists():
        target.rename(old)
    try:
        built.rename(target)
    except OSError:
        if old.exists():  # put the previous render back before the staging folder goes
            old.rename(target)
        raise


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` as the render writes every JSON file: 2-space indent, UTF-8 as is, a final newline."""
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _load_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{what} {path} is missing; pass the toolkit root (the folder with agents/ and plugin/)") from None
    except ValueError as exc:
        raise BadInput(f"{what} {path} is not valid JSON: {exc}") from None


def _check_ours(target: Path, market_file: Path) -> None:
    """Refuse to replace a folder or marketplace that an earlier :func:`render` did not write."""
    if target.exists():
        try:
            name = json.loads((target / ".claude-plugin" / "plugin.json").read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            name = None
        if name != PLUGIN_NAME:
            raise BadInput(f"{target} exists and is not a rendered {PLUGIN_NAME} plugin; remove it or render elsewhere")
    if market_file.exists():
        try:
            name = json.loads(market_file.read_text(encoding="utf-8")).get("name")
        except (OSError, ValueError, AttributeError):
            name = None
        if name != LOCAL_MARKETPLACE:
            raise BadInput(f"{market_file} is another marketplace ({name!r}); render elsewhere")


def _substitute(value: Any, replacements: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [_substitute(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, replacements) for k, v in value.items()}
    return value


def _fill_in(path: Path, replacements: list[tuple[str, str]]) -> None:
    """Replace the placeholders in one file; JSON as data, so a path with quotes stays valid JSON."""
    text = path.read_text(encoding="utf-8")
    if PLACEHOLDER not in text:
        return
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise BadInput(f"{path} is not valid JSON: {exc}") from None
        path.write_text(json.dumps(_substitute(data, replacements), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    else:
        path.write_text(_substitute(text, replacements), encoding="utf-8")


def _digest(root: Path) -> str:
    """10 hex digits of a SHA-256 over the plugin's files (paths and bytes), its manifest's version left out."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if rel == ".claude-plugin/plugin.json":
            manifest = json.loads(data)
            manifest.pop("version", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        h.update(rel.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:10]


def _run_cli(argv: list[str], env: dict[str, str]) -> Step:
    """Run one ``claude plugin`` command; raise unless it exits 0."""
    shown = "claude " + " ".join(argv[1:])
    try:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise OrchestratorError(f"`{shown}` did not finish in {CLI_TIMEOUT:g} s; run it by hand to see why", ExitCode.AGENT_FAILED) from None
    except OSError as exc:
        raise OrchestratorError(f"could not run {argv[0]}: {exc.strerror or exc}", ExitCode.CLI_MISSING) from None
    step = Step(argv, done.returncode, (done.stdout + "\n" + done.stderr).strip())
    if done.returncode != 0:
        raise OrchestratorError(f"`{shown}` failed (exit {done.returncode}): {step.summary}", ExitCode.AGENT_FAILED)
    return step


if __name__ == "__main__":
    sys.exit(main())
