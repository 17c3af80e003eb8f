"""Installing on a stock python, and scripts that run under any python3 from any folder.

The scripts' bootstrap (agents/_bootstrap.py) is run on a copy of agents/ in a
temp "toolkit", with a record of its own, so the real toolkit's record is
never touched; the Makefile's choice of python is checked with dry runs
(``make -n``) and with fake base pythons that fail fast, so nothing here
installs from the network.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AGENTS, ROOT

RECORD = ".orchestrator-python"
SYSTEM_PYTHON = "/usr/bin/python3"
#: An interpreter other than the recorded one, and without the package: Debian's own python3.
needs_system_python = pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"{SYSTEM_PYTHON} does not exist here")


@pytest.fixture
def kit(tmp_path) -> Path:
    """A copy of the toolkit's agents/ and Makefile, without a record and without the package beside it."""
    root = tmp_path / "kit"
    shutil.copytree(AGENTS, root / "agents", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "Makefile", root / "Makefile")
    return Path(os.path.realpath(root))  # as the bootstrap names it


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> str:
    """A python with a sys.prefix of its own and without the package: a venv made --without-pip."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    return str(venv / "bin" / "python")


@pytest.fixture(params=["bare-venv", "system"])
def other_python(request, bare_python) -> str:
    """A python that is not the recorded one and cannot import the package itself."""
    if request.param == "system":
        if not os.access(SYSTEM_PYTHON, os.X_OK):
            pytest.skip(f"{SYSTEM_PYTHON} does not exist on this machine")
        return SYSTEM_PYTHON
    return bare_python


def _clean(env: dict[str, str]) -> dict[str, str]:
    """``env`` without what would choose a python behind the test's back (an outer make's MAKEFLAGS too)."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHON", "BASE_PYTHON", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ORCHESTRATOR_REEXEC")
    return {k: v for k, v in env.items() if k not in drop}


def _script(python: str, script: Path, *args: str, env: dict[str, str], cwd: Path, flags=()) -> subprocess.CompletedProcess:
    return subprocess.run([python, *flags, str(script), *args], env=env, cwd=str(cwd), capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def _record_here(kit: Path) -> subprocess.CompletedProcess:
    """``python agents/_bootstrap.py --record`` in ``kit`` with this python, as `make install` runs it."""
    done = subprocess.run([sys.executable, str(kit / "agents" / "_bootstrap.py"), "--record"], cwd=str(kit),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done


# -- the record and the re-execution -------------------------------------------


def test_record_names_this_python_and_where_the_console_commands_are(kit):
    done = _record_here(kit)
    rec = json.loads((kit / RECORD).read_text())
    assert rec["python"] == os.path.abspath(sys.executable) and rec["prefix"] == sys.prefix
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"make install: the toolkit runs under {rec['python']} ")
    assert len(lines) == 2 and "orch-launch" in lines[1], done.stdout
    assert not list(kit.glob(RECORD + ".*")), "the temp file is renamed, not left behind"
    # the Makefile reads the "python" line back with sed: one key a line
    assert f'  "python": {json.dumps(rec["python"], ensure_ascii=False)},' in (kit / RECORD).read_text().splitlines()


def test_a_script_reexecutes_under_the_recorded_python_from_any_folder(kit, other_python, base_env, tmp_path):
    _record_here(kit)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _clean(base_env)
    helped = _script(other_python, kit / "agents" / "check_status.py", "--help", env=env, cwd=elsewhere)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: check_status.py"), helped.stderr
    listed = _script(other_python, kit / "agents" / "check_status.py", "--json", env=env, cwd=elsewhere)
    assert (listed.returncode, listed.stdout.strip(), listed.stderr) == (0, "[]", "")


def test_a_reexecuted_launch_runs_an_agent_and_does_not_pass_the_guard_on(kit, bare_python, fake_kit, tmp_path):
    _record_here(kit)
    done = _script(bare_python, kit / "agents" / "launch_agent.py", "--wait", "r1", "hello", env=_clean(fake_kit.env), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert fake_kit.record("r1")["status"] == "completed"
    (argv,) = (tmp_path / "argv").glob("*.json")
    assert "ORCHESTRATOR_REEXEC" not in json.loads(argv.read_text())["env"]


@needs_system_python
def test_the_real_toolkit_runs_under_the_system_python_from_tmp(base_env):
    """What a user does after `make install`: any python3, any folder."""
    assert (ROOT / RECORD).is_file(), f"{ROOT / RECORD} is missing: run `make install`"
    done = _script(SYSTEM_PYTHON, AGENTS / "check_status.py", "--json", env=_clean(base_env), cwd=Path("/tmp"))
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "[]", "")
    assert _script(SYSTEM_PYTHON, AGENTS / "launch_agent.py", "--help", env=_clean(base_env), cwd=Path("/tmp")).returncode == 0


def test_without_a_record_or_the_package_the_error_is_one_line(kit, other_python, base_env, tmp_path):
    done = _script(other_python, kit / "agents" / "launch_agent.py", "a1", "task", env=_clean(base_env), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == f"launch_agent.py: error: the toolkit is not installed: run make -C {kit} install\n"


def test_the_same_under_this_python_without_its_site_packages(kit, base_env, tmp_path):
    # -S: no site-packages, so no package; -E: no PYTHONPATH; the script's folder stays importable
    done = _script(sys.executable, kit / "agents" / "wait_agents.py", env=_clean(base_env), cwd=tmp_path, flags=("-S", "-E"))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"wait_agents.py: error: the toolkit is not installed: run make -C {kit} install\n"


def test_a_recorded_python_that_is_gone_is_named(kit, base_env, tmp_path):
    (kit / RECORD).write_text(json.dumps({"python": str(tmp_path / "gone" / "python"), "prefix": str(tmp_path / "gone")}))
    done = _script(sys.executable, kit / "agents" / "check_status.py", env=_clean(base_env), cwd=tmp_path, flags=("-S", "-E"))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert f"{tmp_path / 'gone' / 'python'}, recorded by make install, does not run" in done.stderr
    assert done.stderr.endswith(f": run make -C {kit} install\n")


def test_a_stale_record_does_not_loop(kit, bare_python, base_env, tmp_path):
    """The recorded python reports another sys.prefix than the record: one re-execution, then the message."""
    (kit / RECORD).write_text(json.dumps({"python": bare_python, "prefix": str(tmp_path / "elsewhere")}))
    done = _script(bare_python, kit / "agents" / "check_status.py", env=_clean(base_env), cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1
    assert "does not have the recorded sys.prefix" in done.stderr


def test_the_bootstrap_and_the_scripts_parse_as_old_python3():
    """An old python3 must reach the one-line message, not a SyntaxError: no f-strings, annotations or walrus."""
    for path in AGENTS.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path), feature_version=(3, 4))
        for node in ast.walk(tree):
            assert not isinstance(node, ast.JoinedStr | ast.NamedExpr | ast.AnnAssign), f"{path.name}:{node.lineno}"
            if isinstance(node, ast.arguments):
                assert all(a.annotation is None for a in node.args + node.kwonlyargs), path.name
            if isinstance(node, ast.FunctionDef):
                assert node.returns is None, f"{path.name}: {node.name}"
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                raise AssertionError(f"{path.name}: a __future__ import needs 3.7")


def test_no_script_edits_the_module_search_path():
    edit = re.compile(r"\bsys\.path\b")  # even a mention: the CI check greps for the name
    for path in [*AGENTS.glob("*.py"), *(ROOT / "claude_orchestrator").glob("*.py")]:
        assert not edit.search(path.read_text()), path.name


def test_the_record_is_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", RECORD], timeout=30)
    assert done.returncode == 0, f"{RECORD} is not in .gitignore"


# -- the Makefile's choice of python -------------------------------------------


def _make(kit: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """make in ``kit`` with ``args``, in a clean environment plus ``env``."""
    return subprocess.run(["make", "--no-print-directory", "-C", str(kit), *args], env=dict(_clean(dict(os.environ)), **env),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _fake_python(tmp_path: Path, name: str, body: str) -> Path:
    exe = tmp_path / name
    exe.write_text(f"#!/bin/sh\n{body}\n")
    exe.chmod(0o755)
    return exe


def test_make_install_uses_the_project_venv_by_default(kit):
    out = _make(kit, "-n", "install")
    assert out.returncode == 0, out.stderr
    assert "-m venv --clear .venv" in out.stdout
    assert ".venv/bin/python -m pip install" in out.stdout and ".venv/bin/python agents/_bootstrap.py --record" in out.stdout
    assert "--break-system-packages" not in out.stdout and "sudo " not in out.stdout.replace("sudo apt install", "")


def test_make_install_uses_python_given_on_the_command_line_or_the_active_venv(kit, tmp_path):
    given = _make(kit, "-n", "install", "PYTHON=/opt/some/python")
    assert given.returncode == 0, given.stderr
    assert "/opt/some/python -m pip install" in given.stdout and "-m venv" not in given.stdout
    active = _make(kit, "-n", "install", VIRTUAL_ENV=str(tmp_path / "active"))
    assert active.returncode == 0, active.stderr
    assert f"{tmp_path / 'active'}/bin/python -m pip install" in active.stdout and "-m venv" not in active.stdout


def test_the_other_targets_run_the_recorded_python(kit):
    _record_here(kit)
    for target in ("test", "lint", "demo", "status"):
        out = _make(kit, "-n", target)
        assert out.returncode == 0, out.stderr
        assert f"{os.path.abspath(sys.executable)} " in out.stdout.splitlines()[-1], (target, out.stdout)
    assert "/opt/x/python -m pytest" in _make(kit, "-n", "test", "PYTHON=/opt/x/python").stdout


def test_make_test_without_an_install_says_so_in_one_line(kit):
    out = _make(kit, "test")
    assert out.returncode == 2
    assert out.stderr.splitlines()[0] == "make: .venv/bin/python does not exist: run make install first (or pass PYTHON=/path/to/python)"


def test_a_base_python_without_venv_names_the_apt_package(kit, tmp_path):
    # Debian's python3 without python3.X-venv: `import ensurepip` fails
    base = _fake_python(tmp_path, "python3", f'case "$*" in *ensurepip*) exit 1;; esac\nexec {sys.executable} "$@"')
    out = _make(kit, "install", f"BASE_PYTHON={base}")
    xy = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert out.returncode == 2
    assert f"make install: {base} (Python {xy}) has no venv module: sudo apt install python{xy}-venv, or pass PYTHON=/path/to/python" in out.stderr.splitlines()
    assert not (kit / ".venv").exists() and not (kit / RECORD).exists()


def test_a_base_python_older_than_3_10_is_refused_in_one_line(kit, tmp_path):
    base = _fake_python(tmp_path, "python3", "echo 3.8")  # what `python3 -c 'print the version'` prints on 3.8
    out = _make(kit, "install", f"BASE_PYTHON={base}")
    assert out.returncode == 2
    assert f"make install: {base} is Python 3.8, the toolkit needs 3.10+: pass BASE_PYTHON=python3.X, or PYTHON=/path/to/python" in out.stderr.splitlines()


def test_a_broken_venv_is_recreated_and_a_working_one_kept(kit, tmp_path):
    # a venv that makes no network call: no pip of its own, the base python's through system site-packages
    base = _fake_python(tmp_path, "python3", f'if [ "$1 $2" = "-m venv" ]; then shift 2; exec {sys.executable} -m venv --without-pip --system-site-packages "$@"; fi\nexec {sys.executable} "$@"')
    if subprocess.run([sys.executable, "-c", "import pip"], capture_output=True, timeout=60).returncode != 0:
        pytest.skip("this python has no pip to lend the test venv")
    broken = kit / ".venv" / "bin" / "python"
    broken.parent.mkdir(parents=True)
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    out = _make(kit, "venv", f"BASE_PYTHON={base}")
    assert out.returncode == 0, out.stderr
    assert "make install: recreating .venv/ with" in out.stdout
    assert subprocess.run([str(broken), "-c", "import pip"], timeout=60).returncode == 0
    again = _make(kit, "venv", f"BASE_PYTHON={base}")
    assert (again.returncode, again.stdout) == (0, "")


def test_a_console_command_an_earlier_install_generated_still_runs(tmp_path):
    """An ``orch-status`` wrapper of the previous release (``from claude_orchestrator.cli import check_status_main``)
    keeps working after a pull, until make install writes the new one."""
    old = tmp_path / "orch-status"
    old.write_text(
        f"#!{sys.executable}\nimport re, sys\nfrom claude_orchestrator.cli import check_status_main\n"
        "sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\nsys.exit(check_status_main())\n"
    )
    old.chmod(0o755)
    done = subprocess.run([str(old), "--nosuch"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage: orch-status" in done.stderr, done.stderr
