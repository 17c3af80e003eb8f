"""Run a script of agents/ under the python that `make install` installed the toolkit into.

Every script in agents/ is ``import _bootstrap`` (importable because Python
puts a script's own folder first on the module search path) and
``_bootstrap.run("<name>")``, the name of its module in
:mod:`claude_orchestrator.commands` (the console command ``orch-*`` calls the
same ``main``).  :func:`run`:

1. reads the interpreter that `make install` recorded in
   ``<toolkit>/.orchestrator-python`` (JSON: ``python``, ``prefix``);
2. if this process runs under another one (its ``sys.prefix`` differs) and the
   recorded one exists, re-executes the script there with :func:`os.execv`
   (same argv; interpreter options such as ``-X`` are not carried over), at
   most once: ``$ORCHESTRATOR_REEXEC`` marks the re-executed process, which
   removes it again so that the processes it starts do not inherit it;
3. imports ``claude_orchestrator.commands.<name>`` and exits with its
   ``main()``, which parses and runs inside the one guard; if the package cannot
   be imported here, prints one line naming ``make -C <toolkit> install`` and
   exits 2, without a traceback.

So ``cd /tmp && python3 /path/to/agents/check_status.py`` works with any
python3 on PATH, and the module search path is never edited.
``python agents/_bootstrap.py --record`` is how `make install` writes the record
(with the interpreter it installed into) and says where the console commands are.

This module is stdlib only and keeps to syntax every Python 3 parses (no
f-strings, annotations or walrus; hence no ``from __future__ import
annotations`` either), so that an old python3 still gets to the one-line
message.  It does not work under ``python -I``/``-P`` or ``PYTHONSAFEPATH``,
which leave the script's folder off the module search path: run the script without them.
"""

import json
import os
import sys

#: The record `make install` writes at the toolkit's root (git-ignored).
RECORD_NAME = ".orchestrator-python"
#: Set in the environment of a re-executed script: never re-execute twice.
REEXEC_ENV = "ORCHESTRATOR_REEXEC"
#: claude_orchestrator.core.states.ExitCode.USAGE, which cannot be imported from here.
EXIT_USAGE = 2
#: The oldest Python the package runs on (pyproject's requires-python).
MIN_PYTHON = (3, 10)
#: The toolkit's root: the folder above agents/.
TOOLKIT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def recorded(root=TOOLKIT):
    """The interpreter `make install` recorded for the toolkit at ``root``.

    Returns:
        a dict with at least the str keys ``python`` (absolute path of the
        interpreter) and ``prefix`` (its ``sys.prefix``), or None if there is no
        readable record.
    """
    try:
        with open(os.path.join(root, RECORD_NAME), encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError):  # absent, unreadable, or not JSON: as if not recorded
        return None
    if isinstance(rec, dict) and isinstance(rec.get("python"), str) and isinstance(rec.get("prefix"), str):
        return rec
    return None


def _version(parts):
    """This interpreter's version as text, e.g. ``3.11`` for 2 parts."""
    return ".".join(str(n) for n in sys.version_info[:parts])


def _fail(why):
    """Print ``<script>: error: <why>: run make -C <toolkit> install`` on stderr and exit 2."""
    script = os.path.basename(sys.argv[0]) or "agents"
    sys.stderr.write(script + ": error: " + why + ": run make -C " + TOOLKIT + " install\n")
    sys.exit(EXIT_USAGE)


def run(command):
    """Run ``claude_orchestrator.commands.<command>.main()`` as this script's main, under the recorded python.

    Args:
        command: the name of a module of :mod:`claude_orchestrator.commands`
            (which has ``main(argv=None) -> int``), e.g. ``"launch_agent"``.

    Never returns: re-executes the process, or exits with the entry's status
    (2 with a one-line message if the toolkit is not installed for any python
    that can be reached).
    """
    rec = recorded()
    reexecuted = os.environ.pop(REEXEC_ENV, None)
    not_installed = "the toolkit is not installed"
    if rec is not None and os.path.realpath(sys.prefix) != os.path.realpath(rec["prefix"]):
        if reexecuted is not None:  # a stale record: its python's sys.prefix is not the recorded one
            why = rec["python"] + " does not have the recorded sys.prefix " + rec["prefix"]
        else:
            if os.access(rec["python"], os.X_OK):
                os.environ[REEXEC_ENV] = "1"
                try:
                    os.execv(rec["python"], [rec["python"]] + sys.argv)
                except OSError:  # it cannot be started after all: try this python
                    del os.environ[REEXEC_ENV]
            why = rec["python"] + ", recorded by make install, does not run"
        not_installed += " (" + why + ")"
    if sys.version_info < MIN_PYTHON:
        _fail(not_installed + " for this Python " + _version(2) + ", which is older than 3.10")
    try:
        import importlib

        module = importlib.import_module("claude_orchestrator.commands." + command)
    except ImportError as exc:
        # only a missing package or dependency means "not installed"; a broken import inside it is a bug to show
        if (getattr(exc, "name", None) or "").startswith("claude_orchestrator."):
            raise
        if getattr(exc, "name", None) != "claude_orchestrator":
            not_installed += " for " + sys.executable + " (" + str(exc) + ")"
        _fail(not_installed)
    sys.exit(module.main())


def record(root=TOOLKIT):
    """Record this interpreter as the toolkit's (``python`` and ``prefix``) in ``<root>/.orchestrator-python``.

    Written to a temp file beside it, then renamed, so a script never reads
    half a record.  Returns the lines `make install` prints: which python,
    and where its console commands (``orch-launch``, ...) are.
    """
    import sysconfig
    import tempfile

    python = os.path.abspath(sys.executable)  # not realpath: a venv's python must stay the venv's
    rec = {"python": python, "prefix": sys.prefix, "version": _version(3)}
    fd, tmp = tempfile.mkstemp(prefix=RECORD_NAME + ".", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(rec, f, indent=2, ensure_ascii=False)  # one key a line: the Makefile reads "python" with sed
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(root, RECORD_NAME))
    except BaseException:
        os.unlink(tmp)
        raise
    # pip puts them in the install scheme's scripts folder (a venv's bin/); a distro's patched scheme may differ
    folders = [sysconfig.get_path("scripts"), os.path.dirname(python)]
    where = next((d for d in folders if os.path.exists(os.path.join(d, "orch-launch"))), None)
    lines = ["make install: the toolkit runs under " + python + " (Python " + rec["version"] + "), recorded in " + RECORD_NAME]
    if where is None:
        lines.append("make install: warning: orch-launch was not found in " + " or ".join(folders))
    else:
        names = sorted(n for n in os.listdir(where) if n.startswith("orch-"))
        lines.append("make install: console commands " + ", ".join(names) + " are in " + where)
    return lines


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.stderr.write("usage: python agents/_bootstrap.py --record  (run by make install)\n")
        sys.exit(EXIT_USAGE)
    for line in record():
        print(line)
