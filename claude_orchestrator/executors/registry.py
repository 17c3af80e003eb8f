"""The executors of this release, by name: the one list, and the one place an executor is chosen.

:data:`EXECUTORS` maps the name a spec gives (``options.executor``) to the
class that runs it, as ``module:Class`` in this package; a module is
imported when its executor is first asked for, so a local run never loads
a scheduler's module.  A third executor (Kubernetes Jobs, HTCondor, ...) is
a module with an :class:`.base.Executor` subclass and one line here.

A record names an executor this release may not know (written by a newer
toolkit): :func:`executor_of` then gives an :class:`UnknownExecutor`, which
never judges, stops or rewrites the run and says why in one line.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..core.errors import BadInput, OrchestratorError
from ..core.states import ExitCode
from .base import Executor, Handoff, Liveness, Verdict

if TYPE_CHECKING:
    from ..core.paths import StatePaths
    from ..records.status_record import StatusRecord

#: Every executor of this release: name -> ``module:Class`` (a module of this package).
EXECUTORS = {
    "local": "local:LocalExecutor",
    "slurm": "slurm:SlurmExecutor",
}
#: Their names, the default first.
NAMES = tuple(EXECUTORS)
DEFAULT = "local"

_made: dict[str, Executor] = {}


def executor_class(name: str) -> type[Executor]:
    """The class of executor ``name``, its module imported now if it was not.

    Raises:
        BadInput: no such executor (exit 2); the message lists this release's.
    """
    where = EXECUTORS.get(name)
    if where is None:
        raise BadInput(f"executor {name!r}: no such executor; this release has: {', '.join(NAMES)}")
    module, cls = where.split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def get_executor(name: str | None = None) -> Executor:
    """The executor called ``name`` (default ``local``), made when first asked for.

    Raises:
        BadInput: no such executor (exit 2).
    """
    name = name or DEFAULT
    found = _made.get(name)
    if found is None:
        found = _made[name] = executor_class(name)()
    return found


def executor_of(rec: StatusRecord) -> Executor:
    """The executor that runs ``rec`` (its spec's); an :class:`UnknownExecutor` for a name this release does not know."""
    name = rec.spec.executor or DEFAULT
    if name in EXECUTORS:
        return get_executor(name)
    return UnknownExecutor(name)


def all_executors() -> list[Executor]:
    """Every executor of this release (asked about a run whose record cannot say which one runs it)."""
    return [get_executor(name) for name in NAMES]


class ExecutorUnknown(OrchestratorError):
    """A run's executor is not one this toolkit knows: it cannot be stopped from here (exit 69, sysexits.h EX_UNAVAILABLE)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNAVAILABLE)


class UnknownExecutor(Executor):
    """Stands for an executor this release does not know (a newer toolkit's record).

    Its runs are never judged (:meth:`probe` answers UNKNOWN, so no reader
    marks them ``lost``), stopped or rewritten; every answer says why.
    """

    keeps_queue = False
    host_bound = False

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]  # an instance's own name: not one of the registry's
        self.why = (
            f"executor {name[:40]!r} is not one this toolkit knows ({', '.join(NAMES)}): "
            "a newer toolkit's run? read and stop it with the toolkit that launched it"
        )

    def submit(self, paths: StatePaths, rec: StatusRecord, handoff: Handoff) -> None:
        """Never: a run is launched only with an executor of this release.

        Raises:
            BadInput: always (exit 2).
        """
        raise BadInput(self.why)

    def probe(self, paths: StatePaths, recs: Sequence[StatusRecord], *, deep: bool = False) -> list[Liveness]:
        """UNKNOWN for every active run (GONE for an ended one), with :attr:`why`."""
        return [
            Liveness(Verdict.UNKNOWN, self.why) if r.state.is_active else Liveness(Verdict.GONE, supervisor_running=None)
            for r in recs
        ]

    def stop(self, runs: Sequence[tuple[StatusRecord, float]], *, force: bool = False) -> list[bool | OrchestratorError]:
        """Never: what runs the runs is unknown here; each answer is an ``ExecutorUnknown`` (exit 69)."""
        return [ExecutorUnknown(f"cannot stop {rec.agent}: {self.why}") for rec, _ in runs]

    def unreadable_runs(self, paths: StatePaths, name: str, *, stop_grace_s: float | None = None) -> list[str]:
        """None found: an unreadable record names no executor, and this one is asked only about readable records."""
        return []

    @classmethod
    def options_from(cls, args: argparse.Namespace, profile: dict, previous: Sequence[str] | None = None) -> tuple[str, ...]:
        """The previous run's options, unread."""
        return tuple(previous or ())
