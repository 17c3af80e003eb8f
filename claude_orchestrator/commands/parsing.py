"""Every script's parser and its parsing, in a module light enough for the scripts that launch nothing.

(:mod:`.options` holds the launch option groups, which import the run
spec, limits, profiles and isolation: check_status.py, wait_agents.py,
tail_agent.py, kill_agent.py and clear_outputs.py do not pay for those.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def new_parser(prog: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A script's parser; the epilog (examples, exit statuses) is shown as written."""
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None, positional: str) -> argparse.Namespace:
    """Parse options and positionals in any order; everything after ``--`` is positional.

    argparse's intermixed parsing mishandles ``--``, so the tail after it is
    split off first and appended to the list positional named ``positional``.
    A ``name`` positional left empty takes the tail's first word.

    Raises:
        SystemExit: bad usage (argparse prints it; exit 2), or ``--help`` (exit 0).
    """
    words = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1 :]
    args = p.parse_intermixed_args(words)
    if tail and hasattr(args, "name") and args.name is None:
        args.name = tail.pop(0)
    setattr(args, positional, list(getattr(args, positional) or []) + tail)
    if hasattr(args, "name") and args.name is None:
        p.error("the agent NAME is required")
    return args


def names_or_all(p: argparse.ArgumentParser, argv: Sequence[str] | None, verb: str) -> argparse.Namespace:
    """:func:`parse` for a script that takes NAMEs or ``--all``, not both nor neither.

    Raises:
        SystemExit: bad usage, "name the agents to VERB, or give --all" (exit 2).
    """
    args = parse(p, argv, "names")
    if bool(args.names) == bool(args.all):
        p.error(f"name the agents to {verb}, or give --all")
    return args
