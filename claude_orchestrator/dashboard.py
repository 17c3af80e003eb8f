"""``make dashboard``: a tmux session with the live status table and one pane per active agent.

The seed's visual dashboard, rebuilt on the toolkit's own scripts: the first
pane runs ``check_status.py --watch``; each of the first ``--max-panes``
active agents gets a pane following its transcript (``tail_agent.py -f``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys

from .core.errors import OrchestratorError
from .core.paths import TOOLKIT_ROOT, StatePaths
from .core.states import ExitCode
from .records.status_record import RecordStore
from .usecases.control import read_records

AGENTS = TOOLKIT_ROOT / "agents"


def _script(name: str, *args: str) -> str:
    """A pane's command line: every word quoted (agent names are validated as well)."""
    words = [sys.executable, str(AGENTS / f"{name}.py"), *args]
    return " ".join(shlex.quote(w) for w in words)


def main(argv: list[str] | None = None) -> int:
    """Build the tmux session; attach to it unless ``--no-attach`` or not on a terminal."""
    p = argparse.ArgumentParser(
        prog="python3 -m claude_orchestrator.dashboard",
        description="A tmux dashboard: live status plus one pane following each active agent.",
        epilog="examples:\n  make dashboard\n  python3 -m claude_orchestrator.dashboard --max-panes 4 --no-attach\n\n"
        "Inside tmux: Ctrl-B then an arrow key moves between panes; Ctrl-B d detaches.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--session", default="orchestrator", help="the tmux session name (default: orchestrator); an old one is replaced")
    p.add_argument("--max-panes", type=int, default=6, help="agents shown at most (default 6)")
    p.add_argument("--no-attach", action="store_true", help="build the session but do not attach to it")
    args = p.parse_args(argv)
    tmux = shutil.which("tmux")
    if tmux is None:
        print(
            "dashboard: error: tmux is not installed; install it (e.g. apt-get install tmux), "
            "or watch with: python3 agents/check_status.py --watch",
            file=sys.stderr,
        )
        return 127
    paths = StatePaths()
    try:
        active = [r.agent for r in read_records(RecordStore(paths)) if r.state.is_active]
    except OrchestratorError as exc:
        print(f"dashboard: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    env = ["-e", f"ORCHESTRATOR_HOME={paths.root}"]
    s = args.session

    def run(*words: str) -> None:
        subprocess.run([tmux, *words], check=True, stdin=subprocess.DEVNULL)

    subprocess.run([tmux, "kill-session", "-t", s], stdin=subprocess.DEVNULL, capture_output=True)
    run("new-session", "-d", "-s", s, "-x", "220", "-y", "60", *env, _script("check_status", "--watch"))
    run("set-option", "-t", s, "remain-on-exit", "on")  # a finished agent's pane stays readable
    shown = active[: max(0, args.max_panes)]
    for name in shown:
        run("split-window", "-t", s, *env, _script("tail_agent", name, "-f"))
        run("select-layout", "-t", s, "tiled")
    run("select-pane", "-t", f"{s}:0.0")
    more = len(active) - len(shown)
    print(f"tmux session {s!r}: status + {len(shown)} agent pane(s)" + (f" ({more} more active not shown)" if more > 0 else ""))
    if args.no_attach or not sys.stdout.isatty():
        print(f"attach with: tmux attach -t {s}")
        return int(ExitCode.OK)
    verb = "switch-client" if os.environ.get("TMUX") else "attach-session"
    os.execv(tmux, [tmux, verb, "-t", s])
    return int(ExitCode.OK)  # not reached


if __name__ == "__main__":
    sys.exit(main())
