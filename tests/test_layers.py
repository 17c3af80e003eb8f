"""The package's shape, read from its source with :mod:`ast`: layers, loops, names, and what a launch imports.

The layers, bottom to top (each subpackage's ``__init__`` says what it holds):
``core`` -> ``claude`` -> ``records`` -> ``executors`` -> ``usecases`` ->
``supervisor`` -> ``web`` -> ``commands`` -> the modules loose at the package top
(``dashboard``, ``plugin``).  A module imports its own layer and the layers
below it, never one above.  ``devtools`` stands aside: it may import anything,
and nothing else imports it.

Every import counts, at module level or inside a function: an import inside a
function still runs, only later, and a loop closed there is still a loop.  An
import under ``if TYPE_CHECKING:`` never runs and is left out.  A module imported
by name (``importlib.import_module``, as an executor registry does) is not seen
here; the launch-path tests below see what such imports load.

The last tests are pipx's ``tests/test_imports.py``: a fresh interpreter
imports ``launch_agent`` (and then launches a run) and says which modules it
loaded, so that what the launch path needs is pinned down.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "claude_orchestrator"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / PACKAGE

#: The layers, bottom to top; "" is the package top (its __init__ and the loose modules).
LAYERS = ("core", "claude", "records", "executors", "usecases", "supervisor", "web", "commands", "")
#: Tools for tests and trials: may import any layer, and no layer imports them.
ASIDE = "devtools"
#: Where a scheduler's names may appear (see test_no_slurm_names_outside_executors).
SLURM_HOMES = ("executors", ASIDE)

#: At least this many subpackages, at most this many modules loose at the package top (__init__.py counts).
MIN_SUBPACKAGES = 4
MAX_LOOSE = 8

#: File names that every package may have one of.
SHARED_FILE_NAMES = frozenset({"__init__.py", "__main__.py"})


# --- reading the source ---------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One module of the package imported by another, as written in the source."""

    source: str  #: the importing module (dotted name)
    target: str  #: the imported module of the package (dotted name)
    path: Path  #: the importing file
    line: int
    statement: str  #: the import statement, as ast.unparse gives it
    in_function: bool
    type_checking: bool  #: under ``if TYPE_CHECKING:``: never runs

    def where(self) -> str:
        """``claude_orchestrator/x/y.py:12 (in a function): from ..z import w``."""
        scope = " (in a function)" if self.in_function else ""
        return f"{self.path.relative_to(PACKAGE_DIR.parent)}:{self.line}{scope}: {self.statement}"


def module_name(path: Path) -> str:
    """The dotted name of the module in ``path`` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def sources() -> dict[str, tuple[Path, ast.Module]]:
    """Every module of the package: dotted name -> (file, parsed source)."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        found[module_name(path)] = (path, ast.parse(path.read_bytes(), filename=str(path)))
    return found


def is_type_checking(test: ast.expr) -> bool:
    """True for ``TYPE_CHECKING`` and ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.Module) -> list[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """Every import statement in ``tree``, with whether it sits in a function and under ``if TYPE_CHECKING:``."""
    found = []

    def visit(node: ast.AST, in_function: bool, type_checking: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, in_function, type_checking))
            return
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                visit(child, in_function, True)
            for child in node.orelse:
                visit(child, in_function, type_checking)
            return
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner, type_checking)

    visit(tree, False, False)
    return found


def resolve(source: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (``from ..x import y`` in a.b.c is ``a.x``)."""
    if not node.level:
        return node.module or ""
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    base = package.split(".")
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def in_package(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


@cache
def imports() -> tuple[Import, ...]:
    """Every import of a module of the package by a module of the package.

    ``import a.b.c`` and ``from a.b import c`` (c a submodule) import a.b.c;
    ``from a.b import name`` (name not a submodule) imports a.b.
    """
    modules = sources()
    found = []
    for source, (path, tree) in modules.items():
        for node, in_function, type_checking in import_nodes(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = resolve(source, path, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            statement = ast.unparse(node)
            for target in dict.fromkeys(targets):
                if in_package(target):
                    assert target in modules, f"{path}:{node.lineno}: {statement}: no module {target} in the package"
                    found.append(Import(source, target, path, node.lineno, statement, in_function, type_checking))
    return tuple(found)


def runtime_edges() -> dict[str, list[Import]]:
    """Importer -> the imports that run (not TYPE_CHECKING ones), parent packages included.

    Importing a.b.c first runs a.b's ``__init__``: that is an edge too, except to
    the importer's own packages (already under way when the importer runs).
    """
    edges: dict[str, list[Import]] = defaultdict(list)
    for imp in imports():
        if imp.type_checking or imp.target == imp.source:
            continue
        own = {imp.source.rsplit(".", n)[0] for n in range(imp.source.count(".") + 1)}
        parts = imp.target.split(".")
        for n in range(2, len(parts) + 1):
            target = ".".join(parts[:n])
            if target not in own:
                edges[imp.source].append(Import(imp.source, target, imp.path, imp.line, imp.statement, imp.in_function, False))
    return edges


def layer_of(module: str) -> str:
    """``core`` for claude_orchestrator.core.paths; "" for the package itself and its loose modules."""
    parts = module.split(".")
    if len(parts) >= 2 and (PACKAGE_DIR / parts[1]).is_dir():
        return parts[1]
    return ""


def find_loops(edges: dict[str, list[Import]]) -> list[list[Import]]:
    """One loop through each strongly connected group of modules (Tarjan), as the imports that close it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(v: str) -> None:  # recursive: the package is a few dozen modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for imp in edges.get(v, []):
            w = imp.target
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(set(edges) | {i.target for imps in edges.values() for i in imps}):
        if v not in index:
            connect(v)

    loops = []
    for group in groups:
        start = min(group)
        # Breadth-first from start, within the group, back to start: the shortest loop through it.
        came: dict[str, Import] = {}
        frontier = [start]
        done = False
        while frontier and not done:
            nxt = []
            for v in frontier:
                for imp in edges.get(v, []):
                    if imp.target not in group or imp.target in came:
                        continue
                    came[imp.target] = imp
                    if imp.target == start:
                        done = True
                        break
                    nxt.append(imp.target)
                if done:
                    break
            frontier = nxt
        loop = [came[start]]
        while loop[-1].source != start:
            loop.append(came[loop[-1].source])
        loops.append(loop[::-1])
    return loops


# --- the layers ---------------------------------------------------------------


def test_no_import_loop():
    loops = find_loops(runtime_edges())
    text = "\n\n".join(
        " -> ".join([loop[0].source] + [imp.target for imp in loop]) + "\n" + "\n".join(f"  {imp.where()}" for imp in loop)
        for loop in loops
    )
    assert not loops, f"import loops (function-level imports included):\n{text}"


def test_imports_point_down_the_layers():
    assert set(LAYERS) | {ASIDE} >= {layer_of(m) for m in sources()}, (
        f"a subpackage that is in no layer: add it to LAYERS (or ASIDE): {sorted({layer_of(m) for m in sources()} - set(LAYERS) - {ASIDE})}"
    )
    wrong = []
    for imp in imports():
        if imp.type_checking:
            continue  # never runs: an annotation may name a type of any layer
        source, target = layer_of(imp.source), layer_of(imp.target)
        if target == ASIDE and source != ASIDE:
            wrong.append(f"{imp.where()}  ({source or 'the package top'} imports {ASIDE}, which nothing imports)")
        elif source != ASIDE and target != ASIDE and LAYERS.index(target) > LAYERS.index(source):
            wrong.append(f"{imp.where()}  ({source or 'the package top'} imports {target or 'the package top'}, a layer above it)")
    assert not wrong, "imports that point up the layers (" + " -> ".join(x or "top" for x in LAYERS) + "):\n" + "\n".join(wrong)


def test_the_package_is_in_subpackages():
    subpackages = sorted(p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py"))
    loose = sorted(p.name for p in PACKAGE_DIR.glob("*.py"))
    assert len(subpackages) >= MIN_SUBPACKAGES, f"only {len(subpackages)} subpackages: {subpackages}"
    assert len(loose) <= MAX_LOOSE, f"{len(loose)} modules loose at the package top (at most {MAX_LOOSE}): {loose}"
    folders = {p.parent for p in PACKAGE_DIR.rglob("*.py")}
    bare = sorted(str(f.relative_to(PACKAGE_DIR.parent)) for f in folders if not (f / "__init__.py").is_file())
    assert not bare, f"folders of modules with no __init__.py (namespace packages): {bare}"


def test_no_two_modules_share_a_file_name():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in PACKAGE_DIR.rglob("*.py"):
        if path.name not in SHARED_FILE_NAMES:
            by_name[path.name].append(str(path.relative_to(PACKAGE_DIR.parent)))
    shared = {name: sorted(paths) for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, f"modules that share a file name: {shared}"


@pytest.mark.parametrize(
    "subpackage",
    [
        p.parent.name
        for p in sorted(PACKAGE_DIR.glob("*/__init__.py"))
    ],
)
def test_a_subpackage_init_is_only_a_docstring(subpackage):
    """Importing one module of a subpackage runs its __init__ first: an import there costs every user of the subpackage."""
    path = PACKAGE_DIR / subpackage / "__init__.py"
    body = ast.parse(path.read_bytes()).body
    assert body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str), (
        f"{path.relative_to(PACKAGE_DIR.parent)} has no docstring"
    )
    rest = [f"line {node.lineno}: {ast.unparse(node)}" for node in body[1:]]
    assert not rest, f"{path.relative_to(PACKAGE_DIR.parent)} holds more than its docstring:\n" + "\n".join(rest)


# --- names --------------------------------------------------------------------


def identifiers(tree: ast.Module) -> list[tuple[int, str, str]]:
    """Every identifier in ``tree`` as (line, kind, name); strings and comments are not identifiers."""
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            found.append((line, "name", node.id))
        elif isinstance(node, ast.Attribute):
            found.append((line, "attribute", node.attr))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((line, "function", node.name))
        elif isinstance(node, ast.ClassDef):
            found.append((line, "class", node.name))
        elif isinstance(node, ast.arg):
            found.append((line, "argument", node.arg))
        elif isinstance(node, ast.keyword) and node.arg:
            found.append((line, "keyword", node.arg))
        elif isinstance(node, ast.alias):
            found.append((line, "imported name", node.name))
            if node.asname:
                found.append((line, "import alias", node.asname))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((line, "imported module", node.module))
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            found += [(line, "global", n) for n in node.names]
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.append((line, "exception name", node.name))
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            found.append((line, "match name", node.name))
        elif isinstance(node, ast.MatchMapping) and node.rest:
            found.append((line, "match name", node.rest))
        elif isinstance(node, ast.MatchClass):
            found += [(line, "match keyword", n) for n in node.kwd_attrs]
    return found


def test_no_slurm_names_outside_executors():
    """Slurm is one executor: only executors/ (and devtools/, its test cluster) may name it in code.

    Help texts and comments may mention Slurm: only identifiers count.
    """
    found = []
    for module, (path, tree) in sources().items():
        if layer_of(module) in SLURM_HOMES:
            continue
        rel = path.relative_to(PACKAGE_DIR.parent)
        found += [f"{rel}:{line}: {kind} {name}" for line, kind, name in sorted(identifiers(tree)) if "slurm" in name.lower()]
    assert not found, f"{len(found)} identifiers name Slurm outside {', '.join(SLURM_HOMES)}:\n" + "\n".join(found)


# --- what the launch path imports ----------------------------------------------

#: Modules that neither launch_agent's parser nor a plain launch (no profile) needs.
NOT_ON_LAUNCH_PATH = (
    "psutil",  # the supervisor's and the readers' (liveness), never the launcher's
    "watchdog",  # --wait and the readers
    f"{PACKAGE}.supervisor",  # a process of its own
    f"{PACKAGE}.devtools",
    # Not listed: executors.slurm and executors.slurm_commands.  Every executor adds its own options to
    # the launching scripts' parsers (as a pytest plugin does), so each executor's module is imported;
    # they are stdlib-light (about 1 ms), and what a Slurm run alone needs (shlex, shutil.which) is
    # imported when a job is submitted.
    f"{PACKAGE}.usecases.cleanup",
    f"{PACKAGE}.claude.transcript_view",
    "tomllib",  # only with a profile
    "tomli",
    "asyncio",
    "email",
    "http",
)
#: Off the parser's path only: a launch needs them.
NOT_ON_PARSER_PATH: tuple[str, ...] = (
    # Not listed: filelock (options -> executors -> core.locks), which a launch needs anyway; only
    # --help and usage errors would gain (about 25 ms).
)

#: Runs in a fresh interpreter: prints the loaded modules' names as JSON on its last line.
PARSER_ONLY = """
import json, sys
import claude_orchestrator
from claude_orchestrator.commands import launch_agent
launch_agent.parse_args(["layers1", "a task"])
print(json.dumps({"package": claude_orchestrator.__file__, "modules": sorted(sys.modules)}))
"""
LAUNCH = """
import json, sys
import claude_orchestrator
from claude_orchestrator.commands import launch_agent
code = launch_agent.main(["layers1", "a task"])
print(json.dumps({"package": claude_orchestrator.__file__, "code": code, "modules": sorted(sys.modules)}))
"""


def loaded_modules(script: str, env: dict[str, str], cwd: Path) -> dict:
    """Run ``script`` under this interpreter; its last stdout line, as JSON (the loaded modules, ...)."""
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=str(cwd), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, f"the script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout.splitlines()[-1])
    assert Path(report["package"]).resolve().parent == PACKAGE_DIR, f"imported {report['package']}, not the package under test"
    return report


def unwanted(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """The ``modules`` that are one of ``names`` or inside one of them."""
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_launch_agent_parser_imports_only_what_it_needs(base_env, tmp_path):
    report = loaded_modules(PARSER_ONLY, base_env, tmp_path)
    assert f"{PACKAGE}.commands.launch_agent" in report["modules"]
    assert not unwanted(report["modules"], NOT_ON_LAUNCH_PATH + NOT_ON_PARSER_PATH)


def test_a_launch_imports_only_what_it_needs(fake_kit, tmp_path):
    report = loaded_modules(LAUNCH, fake_kit.env, tmp_path)
    assert report["code"] == 0
    # The run's supervisor is ours: let it end here (state_root then checks that nothing is left running).
    assert fake_kit.wait_terminal("layers1")["status"] == "completed"
    assert f"{PACKAGE}.usecases.launch" in report["modules"]
    assert not unwanted(report["modules"], NOT_ON_LAUNCH_PATH)
