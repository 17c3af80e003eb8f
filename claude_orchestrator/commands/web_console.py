"""``web_console.py [--port N] [--host ADDR] [--no-browser]``: the agents in a browser, live."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.errors import BadInput
from ..core.paths import StatePaths
from ..core.programs import program_name
from ..core.states import ExitCode
from . import parsing
from .guard import guarded

SCRIPT = "web_console"
#: The port tried first (Jupyter's is 8888); --port 0 takes any free one.
DEFAULT_PORT = 8642
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

EPILOG = f"""\
examples:
  python3 agents/web_console.py                 serve on 127.0.0.1:{DEFAULT_PORT} and open a browser
  python3 agents/web_console.py --port 0 --no-browser
  ssh -L {DEFAULT_PORT}:127.0.0.1:{DEFAULT_PORT} login-node   then open the printed URL here (a cluster)

Prints one line with the URL; it carries a random token, as Jupyter's does:
the page needs it (then a cookie), and so does every request. The page shows
every agent (state, run, times, cost, tokens, turns, executor, a waiting
question), a timeline of their runs, and each agent's transcript and result;
from it you can send a message, answer a question, kill, resume and clear,
each as the scripts do. It updates live as records change. Ctrl-C stops it.
It listens on 127.0.0.1 only, unless --host says otherwise: the page shows
transcripts, which may hold secrets, and can stop runs.
Needs the [web] extra (starlette, uvicorn, sse-starlette): make install.
exit status: 0 stopped with Ctrl-C, 2 bad input (the port is taken, no [web] extra), 70 an internal error.
"""


def build_parser() -> argparse.ArgumentParser:
    """web_console.py's parser: ``--port``, ``--host``, ``--no-browser``."""
    p = parsing.new_parser(program_name(SCRIPT), "Serve a live web console of the background Claude Code agents.", EPILOG)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="N", help=f"the port (default {DEFAULT_PORT}; 0: any free one)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="the address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser (none opens without a display anyway)")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; exits 2 on bad usage."""
    p = build_parser()
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error(f"--port {args.port}: give 0 to 65535")
    return args


def run(args: argparse.Namespace) -> ExitCode:
    """Serve until Ctrl-C.

    Raises:
        BadInput: the [web] extra is missing, or the address cannot be bound (exit 2).
    """
    try:
        from ..web import serve  # here: the web libraries load only for the console
    except ImportError as e:
        raise BadInput(f"the web console needs the [web] extra ({e.name} is missing): make install, "
                       f"or {sys.executable} -m pip install 'starlette' 'uvicorn' 'sse-starlette'") from None
    from ..records.status_record import RecordStore

    if args.host not in LOCAL_HOSTS:
        print(f"warning: listening on {args.host}: anyone who can reach it and has the URL can read the transcripts "
              f"and stop runs; prefer 127.0.0.1 and ssh -L", file=sys.stderr)
    paths = StatePaths()
    paths.ensure()

    def announce(url: str) -> None:
        print(f"web console: {url}  (Ctrl-C to stop)", flush=True)

    serve.serve(RecordStore(paths), args.host, args.port, open_browser=not args.no_browser and serve.can_open_browser(),
                announce=announce)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run web_console.py with ``argv`` inside the one guard (:func:`.guard.guarded`); its exit status.

    The console command ``orch-web`` and ``agents/web_console.py`` both call it.
    """
    return guarded(program_name(SCRIPT), lambda: run(parse_args(argv)))
