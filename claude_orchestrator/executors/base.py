"""The executor interface: where a run's supervisor runs, behind six methods.

docs/how-it-works.md: the file contract is the same for every executor
(records, sessions, outputs and transcripts under the state root); what
differs is behind this interface (an ABC, as pipx's ``backends/_base.py``):

- :meth:`Executor.submit` hands runs whose records are written to supervisors (a fan-out's
  together), and returns at once;
- :meth:`Executor.probe` tells, for many records at once, whether each run's
  supervisor is alive, gone (with why, and how the run ended if the executor
  knows) or unknown (the executor cannot be asked);
- :meth:`Executor.stop` asks runs' supervisors to stop their runs, or
  (``force``) stops what is left of runs whose supervisor is gone or stuck;
- :meth:`Executor.unreadable_runs` finds (and stops) the live runs of an
  agent whose record cannot be read;
- :meth:`Executor.add_arguments` and :meth:`Executor.options_from`: the
  executor's own command-line options (as a pytest plugin adds its own), and
  the options a run gets from them, the profile and the environment.

The record carries the executor's name (``options.executor``), an opaque
reference the executor gave the run (:attr:`..records.status_record.StatusRecord.executor_ref`, e.g.
a job ID) and the executor's options (:attr:`..records.spec.RunSpec.executor_args`); only
the executor reads them.  Executors are found by name in :mod:`.registry`.
Standard library only: this module is on the launch path.
"""

from __future__ import annotations

import abc
import argparse
import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple

if TYPE_CHECKING:
    from ..core.errors import OrchestratorError
    from ..core.paths import StatePaths
    from ..core.states import State
    from ..records.status_record import StatusRecord


class Verdict(str, enum.Enum):
    """Whether a run's supervisor is alive, as its executor can tell."""

    ALIVE = "alive"  # alive, or about to be (a pending job, a supervisor not yet started)
    GONE = "gone"  # gone while the record may still say active: the reader may end the record
    UNKNOWN = "unknown"  # cannot be told (a scheduler that does not answer, an executor this toolkit does not know)


class Liveness(NamedTuple):
    """One run's answer of :meth:`Executor.probe`.

    Attributes:
        verdict: :class:`Verdict` of the run's supervisor.  An ended record is GONE, unless
            its ``--on-complete`` hook has not recorded its outcome
            (:attr:`..records.status_record.StatusRecord.hook_unfinished`): then ALIVE while
            its supervisor may still run the hook (it holds the agent's name until then).
        reason: for GONE (of an active record) and UNKNOWN, why, in one sentence (the
            record's ``error`` if the run is ended by a reader).
        ended: for GONE, the terminal state the executor knows the run came to
            (e.g. ``memory_exceeded`` when the scheduler killed the job for its
            memory); None: the outcome is unknown, the run is ``lost``.
        supervisor_running: (``deep`` only) the supervisor process or job still runs.
        cli_running: (``deep`` only) the run's CLI still runs (an executor that cannot
            see the CLI answers as for the supervisor).
        leftovers: (``deep`` only) processes of the run still run outside a live
            supervisor (its CLI, its recorded tree, orphans it was handed, a job still there).
    """

    verdict: Verdict
    reason: str | None = None
    ended: State | None = None
    supervisor_running: bool | None = None
    cli_running: bool | None = None
    leftovers: bool | None = None


class Handoff(NamedTuple):
    """What the launcher holds for a run on the launcher's host, for :meth:`Executor.submit`.

    Attributes:
        held: descriptors the launcher took for the run (the agent's life lock, then
            a ``--max-parallel`` slot if any); an executor whose supervisor runs on
            this host passes them on, another ignores them.
        log_fd: the run's log (``outputs/<agent>/<run_id>.log``), opened for appending.
        caller_waits: the launcher stays to wait for the run's end (``--wait``), so the
            supervisor's start is on the caller's path, and the launcher's own exit is not.
    """

    held: tuple[int, ...]
    log_fd: int
    caller_waits: bool = False


class Executor(abc.ABC):
    """Where a run's supervisor runs (see the module docstring).

    No method raises for a process or job that is gone: that is an answer
    (GONE, nothing to stop), not an error.  ``rec`` is always a record of this
    executor (:func:`.registry.executor_of`).

    Class attributes:
        name: the name a spec gives (``options.executor``), a key of :data:`.registry.EXECUTORS`.
        keeps_queue: True if ``--max-parallel`` slots and the FIFO queue are the toolkit's
            (``queued`` = waiting for a slot); False if the executor's scheduler keeps its
            own queue (``queued`` = pending there).
        submits_in_main_thread: True if :meth:`submit` must run in the launcher's main thread with no
            other thread alive (the local one forks the launcher); False if a fan-out may submit one
            chunk in a background thread while it claims the next (a scheduler's).
        host_bound: True if a run's liveness can be told only on the launcher's host (a
            lock, PIDs): a supervisor elsewhere (a cluster node) reads such a run's record as it is.
    """

    name: ClassVar[str] = ""
    keeps_queue: ClassVar[bool] = True
    submits_in_main_thread: ClassVar[bool] = True
    host_bound: ClassVar[bool] = True

    @abc.abstractmethod
    def submit(self, paths: StatePaths, runs: Sequence[tuple[StatusRecord, Handoff]]) -> list[BaseException | None]:
        """Hand runs (each's record written) to supervisors; return at once (or once a scheduler answered).

        A batch, as :meth:`probe` is: ``launch_parallel.py`` hands a fan-out's runs
        of one executor over together, so that an executor does it at less than the
        sum of single submissions (the local one forks every supervisor from one
        prepared process; a scheduler's submits in parallel).  An executor that
        gives a run a reference (a job ID) stores it in the record's ``executor_ref``.
        The descriptors of each :class:`Handoff` stay the caller's to close.

        Returns:
            One answer per run, in order: None (handed over), or why its supervisor
            could not be started: an ``OSError`` (the caller records the run
            ``failed``) or an :class:`..core.errors.OrchestratorError` (the executor
            refused the run, e.g. a scheduler's refusal, exit 69).  Other exceptions propagate.
        """

    @abc.abstractmethod
    def probe(self, paths: StatePaths, recs: Sequence[StatusRecord], *, deep: bool = False) -> list[Liveness]:
        """The liveness of each of ``recs``' runs, in order: one question to a scheduler for all of them.

        Cheap without ``deep`` (every reader asks it of every record): no process scan.
        ``deep`` also fills :attr:`Liveness.supervisor_running`, :attr:`Liveness.cli_running`
        and :attr:`Liveness.leftovers` (a stop and ``kill_agent.py --all`` ask it).
        """

    @abc.abstractmethod
    def stop(self, runs: Sequence[tuple[StatusRecord, float]], *, force: bool = False) -> list[bool | OrchestratorError]:
        """Stop runs, each given with its grace period in seconds: ``(record, grace_s)``.

        A batch, as :meth:`submit` and :meth:`probe` are: ``kill_agent.py`` of many
        agents hands their runs over together, so that a scheduler is asked once
        (one cancel for all its jobs) rather than once a run.

        Without ``force``: ask each run's supervisor to stop the run (it stops the tree:
        SIGTERM, ``grace_s`` seconds, SIGKILL; and records ``killed``).  With
        ``force``: stop what is left of runs whose supervisor is gone or stuck
        (their leftover processes, a stuck supervisor, a job still there).

        Returns:
            One answer per run, in order: without ``force``, False if there is no live
            supervisor to ask; with ``force``, True if anything was found to stop; or the
            :class:`..core.errors.OrchestratorError` saying the executor could not be
            asked while the run may still run (e.g. exit 69): nothing more was done for
            that run.  Other exceptions propagate.
        """

    @abc.abstractmethod
    def unreadable_runs(self, paths: StatePaths, name: str, *, stop_grace_s: float | None = None) -> list[str]:
        """The live runs of agent ``name`` whose record cannot be read, as references (a job ID, ``pid N``).

        With ``stop_grace_s``, each is stopped first (its supervisor asked, then,
        after the grace, stopped with what it runs); the supervisor of a run
        that ends this way rewrites its record from its own copy.

        Raises:
            OrchestratorError: the executor could not be asked while a run may still run.
        """

    @classmethod  # noqa: B027 - an optional hook, empty by default
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add this executor's own options to a launching script's ``parser`` (default: none)."""

    @classmethod
    def options_from(cls, args: argparse.Namespace, profile: dict, previous: Sequence[str] | None = None) -> tuple[str, ...]:
        """The options a run of this executor gets (the spec's ``executor_args``).

        Args:
            args: the parsed command line (with this executor's options, :meth:`add_arguments`).
            profile: the chosen profile's table (may hold ``<name>_args``).
            previous: a resumed run's options, kept unless the profile or environment give others.

        Raises:
            BadInput: a bad option, or one this executor cannot honour (exit 2).
        """
        return tuple(previous or ())
