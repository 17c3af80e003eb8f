"""Every script's parser and its parsing, in a module light enough for the scripts that launch nothing.

(:mod:`.options` holds the launch option groups, which import the run
spec, limits, profiles and isolation: check_status.py, wait_agents.py,
tail_agent.py, kill_agent.py and clear_outputs.py do not pay for those.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.shell_words import VerbatimArg


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
    A ``name`` positional left empty takes the tail's first word.  Before
    ``--``, an option declared with :class:`..core.shell_words.VerbatimArg`
    (``--claude-arg``, ``--slurm-arg``) takes the next word even if it begins
    with ``-`` (:func:`join_verbatim_values`).

    Args:
        p: the script's parser.
        argv: the words (default ``sys.argv[1:]``).
        positional: the list positional the tail after ``--`` joins: ``task`` or
            ``tasks`` (a launcher's), ``names`` (the others').

    Raises:
        SystemExit: bad usage (argparse prints it; exit 2), or ``--help`` (exit 0).
            A launcher given a word that looks like an option it does not have
            (``launch_agent.py x -v``) exits 2 with one line saying that a task
            that begins with ``-`` goes after ``--`` (:func:`task_after_double_dash`).
    """
    words = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1 :]
    words = join_verbatim_values(p, words)
    if positional in TASK_POSITIONALS:
        args, unknown = p.parse_known_intermixed_args(words)
        if unknown:
            typo = misspelt_option(p, unknown)
            if typo:
                p.exit(2, typo)
            p.exit(2, task_after_double_dash(p.prog, getattr(args, "name", None), unknown, positional == "task"))
    else:
        args = p.parse_intermixed_args(words)
    if tail and hasattr(args, "name") and args.name is None:
        args.name = tail.pop(0)
    setattr(args, positional, list(getattr(args, positional) or []) + tail)
    if hasattr(args, "name") and args.name is None:
        p.error("the agent NAME is required")
    return args


#: The launchers' list positionals: a word there that begins with ``-`` is most likely a task.
TASK_POSITIONALS = ("task", "tasks")


def misspelt_option(p: argparse.ArgumentParser, unknown: list[str]) -> str | None:
    """The one line (newline-ended) for an unknown long option that is close to one the parser has
    (``--tiemout`` -> ``did you mean --timeout?``), else None: a typo is no task that begins with ``-``.

    Args:
        p: the script's parser.
        unknown: the words argparse did not recognise.
    """
    import difflib  # here: only a usage error needs it

    known = [s for a in p._actions for s in a.option_strings if s.startswith("--")]  # argparse keeps no public list
    for word in unknown:
        if word.startswith("--"):
            close = difflib.get_close_matches(word.partition("=")[0], known, n=1, cutoff=0.75)
            if close:
                return f"{p.prog}: error: unknown option {word.partition('=')[0]}; did you mean {close[0]}? ({p.prog} --help lists them)\n"
    return None


def task_after_double_dash(prog: str, name: str | None, unknown: list[str], has_name: bool) -> str:
    """The one line (newline-ended) for a launcher's words that argparse did not recognise.

    argparse's own error would print the whole usage and "unrecognized
    arguments", and never say that a task beginning with ``-`` goes after
    ``--``; this names the options it does not know and shows the command with
    the words moved after ``--``:
    ``launch_agent.py: error: unknown option -v; a task that begins with '-' goes after '--': launch_agent.py x -- "-v"``.

    Args:
        prog: the script's name as run.
        name: the agent's name if one was given (shown in the example), else ``NAME``.
        unknown: the words argparse did not recognise, in order (an unknown option and the words after it).
        has_name: the script takes an agent NAME before the task (launch_agent, resume_agent).
    """
    import shlex  # here: only a usage error needs it

    options = [w for w in unknown if w.startswith("-")] or unknown
    task = " ".join(unknown)
    quoted = shlex.quote(task) if any(c in task for c in '"$`\\!') else f'"{task}"'
    example = " ".join([prog, *([name or "NAME"] if has_name else []), "--", quoted])
    return (
        f"{prog}: error: unknown option{'s' if len(options) > 1 else ''} {', '.join(options)}; "
        f"a task that begins with '-' goes after '--': {example}\n"
    )


def join_verbatim_values(p: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """``words`` with each verbatim option and the word after it joined into one: ``--claude-arg=WORD``.

    argparse takes a word that begins with ``-`` for an option, so
    ``--claude-arg --effort`` would fail with "expected one argument"; joined,
    argparse reads the value as it is.  Only the option's exact spelling is
    joined (an abbreviation such as ``--claude-a`` is left to argparse, which
    refuses a dash value), and never a ``--`` (:func:`parse` splits the words at
    the first ``--`` before they get here, so an option written last before it
    is left without a value, and argparse says so).

    Args:
        p: the parser, whose :class:`..core.shell_words.VerbatimArg` options are the ones joined.
        words: the command line's words before any ``--``.
    """
    verbatim = {s for a in p._actions if isinstance(a, VerbatimArg) for s in a.option_strings}  # argparse keeps no public list
    out: list[str] = []
    i = 0
    while i < len(words):
        if words[i] in verbatim and i + 1 < len(words):
            out.append(f"{words[i]}={words[i + 1]}")
            i += 2
        else:
            out.append(words[i])
            i += 1
    return out


def names_or_all(p: argparse.ArgumentParser, argv: Sequence[str] | None, verb: str) -> argparse.Namespace:
    """:func:`parse` for a script that takes NAMEs or ``--all``, not both nor neither.

    Raises:
        SystemExit: bad usage, "name the agents to VERB, or give --all" (exit 2).
    """
    args = parse(p, argv, "names")
    if bool(args.names) == bool(args.all):
        p.error(f"name the agents to {verb}, or give --all")
    return args
