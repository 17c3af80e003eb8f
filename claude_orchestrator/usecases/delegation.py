"""Finding delegations in a PM-style text (claude-mpm's habit of writing them as prose).

Recognised at the start of a line (after optional list bullets or numbers)::

    **Engineer Agent**: task        **QA:** task
    Task(Engineer: task)            Task Tool → Documentation Agent: task
    Delegate to Research: task      → Reviewer: task   (or ->)
    [Engineer] task

A task may run over several lines; it ends at a blank line or at the next
delegation.  Bold text elsewhere in a sentence is not a delegation, nor are
markdown check boxes (``[ ]``, ``[x]``) and links (``[text](url)``).  The
``**Role**:`` and ``[Role]`` forms are also common labels ("**Note:**",
"[TODO]"), so there the role must end in "Agent" or be a known role (a
profile's name or alias, or one of :data:`KNOWN_ROLES`).
"""

from __future__ import annotations

import dataclasses
import re

from .profiles import role_key

ROLE = r"[A-Za-z][A-Za-z0-9 _/&.-]{0,40}?"
_LEAD = r"^\s*(?:(?:[-*+]|\d+[.)])\s+)?"
#: (pattern name, regex); the task may continue on the following lines.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("bold", re.compile(_LEAD + rf"\*\*(?P<role>{ROLE})\s*(?::\s*\*\*|\*\*\s*:)\s*(?P<task>.*)$")),
    ("task-call", re.compile(_LEAD + rf"Task\(\s*(?P<role>{ROLE})\s*:\s*(?P<task>.*)$")),
    ("task-tool", re.compile(_LEAD + rf"Task Tool\s*(?:→|->)\s*(?P<role>{ROLE})\s*:\s*(?P<task>.*)$", re.I)),
    ("delegate-to", re.compile(_LEAD + rf"Delegate to\s+(?P<role>{ROLE})\s*:\s*(?P<task>.*)$", re.I)),
    ("arrow", re.compile(_LEAD + rf"(?:→|->)\s*(?P<role>{ROLE})\s*:\s*(?P<task>.*)$")),
    ("bracket", re.compile(_LEAD + rf"\[(?P<role>{ROLE})\](?!\()\s+(?P<task>\S.*)$")),
]
#: Bracketed "roles" that are markdown, not roles.
NOT_ROLES = {"x", "X", " ", "!NOTE", "!TIP", "!WARNING"}
#: Role keys (see :func:`profiles.role_key`) accepted in the label-like forms besides profiles.
KNOWN_ROLES = frozenset(
    "engineer engineering developer dev qa tester test documentation docs doc writer research researcher "
    "analyst reviewer review security ops devops pm architect designer data version-control".split()
)
#: The forms that look like ordinary labels in prose.
LABEL_FORMS = frozenset({"bold", "bracket"})


@dataclasses.dataclass
class Delegation:
    """One delegation found in a text.

    Attributes:
        role: the role as written ("Engineer Agent").
        task: the task text (several lines joined by newlines).
        pattern: which form it was written in (see :data:`PATTERNS`).
        line: its first line number (1-based).
    """

    role: str
    task: str
    pattern: str
    line: int


def _match(line: str, known: frozenset[str]) -> tuple[str, str, str] | None:
    for name, pattern in PATTERNS:
        m = pattern.match(line)
        if not m or m.group("role").strip() in NOT_ROLES:
            continue
        role = m.group("role").strip()
        if name in LABEL_FORMS and not (role.lower().endswith("agent") or role_key(role) in known):
            continue
        return name, role, m.group("task")
    return None


def parse_delegations(text: str, known_roles: set[str] | frozenset[str] = frozenset()) -> list[Delegation]:
    """Every delegation in ``text``, in order.  Empty tasks are dropped.

    Args:
        text: the PM's reply.
        known_roles: role keys accepted in the label-like forms, on top of
            :data:`KNOWN_ROLES` (e.g. the profiles' names and aliases).
    """
    known = KNOWN_ROLES | frozenset(known_roles)
    found: list[Delegation] = []
    current: Delegation | None = None
    lines: list[str] = []

    def close() -> None:
        nonlocal current
        if current is not None:
            task = "\n".join(lines).strip()
            if current.pattern == "task-call" and task.endswith(")"):
                task = task[:-1].rstrip()  # Task(Role: ...) closes with ")"
            if task:
                current.task = task
                found.append(current)
        current = None

    for number, line in enumerate(text.splitlines(), start=1):
        hit = _match(line, known)
        if hit:
            close()
            pattern, role, first = hit
            current = Delegation(role=role, task="", pattern=pattern, line=number)
            lines = [first.strip()]
            if pattern == "task-call" and first.rstrip().endswith(")"):
                close()
            continue
        if not line.strip():
            close()
            continue
        if current is not None:
            lines.append(line.strip())
            if current.pattern == "task-call" and line.rstrip().endswith(")"):
                close()
    close()
    return found


def agent_names(roles: list[str], taken: set[str] | None = None) -> list[str]:
    """Unique agent names for roles: ``engineer``, ``engineer-2``, ``qa`` ...

    A role becomes lower case, an "Agent" suffix dropped, other characters
    than letters, digits, ``.``, ``_`` and ``-`` turned into ``-``.
    """
    taken = set(taken or ())
    out = []
    for role in roles:
        base = re.sub(r"[^a-z0-9._-]+", "-", role_key(role)).strip("-._") or "agent"
        base = base[:56]
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        out.append(name)
    return out
