"""Text split into words as a POSIX shell splits them, for options given as one string.

``--on-complete CMD``, ``--split-tasks`` and an executor's options from the
environment are each one string that means several words; they are split
here (:func:`shlex.split`), and nothing is ever run through a shell.
"""

from __future__ import annotations

from .errors import BadInput


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
