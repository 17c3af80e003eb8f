"""Words of a command line: text split as a POSIX shell splits it, and options that pass a word on verbatim.

``--on-complete CMD``, ``--split-tasks`` and an executor's options from the
environment are each one string that means several words; they are split
here (:func:`shlex.split`), and nothing is ever run through a shell.

``--claude-arg`` and ``--slurm-arg`` each pass one word on, as it is, to
another program; that word is usually an option of that program
(``--claude-arg --effort``).  Such options are declared with
:class:`VerbatimArg`, which the scripts' parsing
(:func:`..commands.parsing.parse`) lets take a next word that begins with ``-``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .errors import BadInput


class VerbatimArg(argparse.Action):
    """A repeatable option whose value is one word passed on verbatim to another program (appended to a list).

    Declared as ``parser.add_argument("--claude-arg", action=VerbatimArg, metavar="ARG")``;
    its default is an empty list.  argparse alone refuses a value that begins
    with ``-`` ("expected one argument"); the scripts' parsing joins the option
    and the word after it as ``--claude-arg=WORD`` first, so that
    ``--claude-arg --system-prompt-snapshot=on`` works as the docs show
    (:func:`..commands.parsing.join_verbatim_values`).
    """

    def __init__(self, option_strings: list[str], dest: str, default: Any = None, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=None, default=[] if default is None else default, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])


def split_words(text: str, what: str) -> list[str]:
    """``text`` split as a shell splits words (:func:`shlex.split`; nothing is run).

    Args:
        text: the string to split.
        what: where it came from, for the message (e.g. ``--on-complete``).

    Raises:
        BadInput: unbalanced quotes, named by ``what`` (exit 2).
    """
    import shlex  # here: a launch that splits nothing does not pay for it

    try:
        return shlex.split(text)
    except ValueError as exc:
        raise BadInput(f"{what}: {exc} (check the quotes)") from exc
