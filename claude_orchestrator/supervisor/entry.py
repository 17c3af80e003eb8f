"""The supervisor process's entry point: ``python -m claude_orchestrator.supervisor``.

Started by the launcher, not by hand: forked from it, which then calls :func:`main`
with the arguments below (:func:`..executors.detach.fork_supervisors`), or as
``python -S -m claude_orchestrator.supervisor --root ROOT [--alive-fd N] [--slot-fd N]
[--time-limit-signal SIG] [--ref-from-env VAR] NAME RUN_ID``
(:func:`..executors.detach.supervisor_command`; a cluster job's batch script runs that).
"""

from __future__ import annotations

import argparse
import os
import signal

from ..core.modes import adopt_private_umask
from ..core.paths import StatePaths
from ..core.states import ExitCode
from .core import Supervisor


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's formatter with a fixed width: without one it imports :mod:`shutil` to ask
    the terminal's (argparse makes a formatter for every ``add_argument``), and shutil,
    with the compression modules it imports, cost every supervisor about 0.5 MiB of RSS."""
    return argparse.HelpFormatter(prog, width=100)


def _signal_number(name: str) -> int:
    """A signal's number from its name (``USR1``, ``SIGUSR1``) or number.

    Raises:
        argparse.ArgumentTypeError: no such signal.
    """
    try:
        return int(name) if name.isdigit() else int(getattr(signal, name if name.startswith("SIG") else f"SIG{name}"))
    except (AttributeError, TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"no such signal: {name}") from None


def _parser() -> argparse.ArgumentParser:
    """The supervisor's own command line, as :mod:`..executors.detach` gives it."""
    parser = argparse.ArgumentParser(prog="python -m claude_orchestrator.supervisor", formatter_class=_formatter)
    parser.add_argument("--root", required=True, help="the state root")
    parser.add_argument("--alive-fd", type=int, help="an inherited descriptor holding the agent's life lock")
    parser.add_argument("--slot-fd", type=int, help="an inherited descriptor holding a parallel slot")
    parser.add_argument("--time-limit-signal", metavar="SIG", type=_signal_number,
                        help="the signal that means the job's time limit is near (e.g. USR1): the run ends as timeout")
    parser.add_argument("--ref-from-env", metavar="VAR",
                        help="the environment variable holding the executor's reference for the run (e.g. a job ID)")
    # The batch script of a job submitted by an earlier release (still pending across an upgrade) says
    # --slurm-job, which meant both of the above: SIGUSR1 and SLURM_JOB_ID.
    parser.add_argument("--slurm-job", dest="earlier_batch_job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("name")
    parser.add_argument("run_id")
    return parser


def executor_flags(args: argparse.Namespace) -> tuple[int | None, str | None]:
    """``(time-limit signal, variable of the executor's reference)`` from the supervisor's options
    (``--slurm-job``, an earlier release's batch script, means SIGUSR1 and ``SLURM_JOB_ID``)."""
    if args.earlier_batch_job:
        return args.time_limit_signal or int(signal.SIGUSR1), args.ref_from_env or "SLURM_JOB_ID"
    return args.time_limit_signal, args.ref_from_env


def _restore_pythonpath() -> None:
    """Give the CLI (and its tools) the caller's ``PYTHONPATH`` back, not the supervisor's own (see :func:`..executors.detach.supervisor_command`)."""
    if "ORCHESTRATOR_CALLER_PYTHONPATH" in os.environ:
        caller = os.environ.pop("ORCHESTRATOR_CALLER_PYTHONPATH")
        if caller:
            os.environ["PYTHONPATH"] = caller
        else:
            os.environ.pop("PYTHONPATH", None)


def main(argv: list[str] | None = None) -> int:
    """Run one run's supervisor to its end, then its ``--on-complete`` hook; the life lock is held until both are done.

    Returns:
        0, or 70 (:attr:`..core.states.ExitCode.INTERNAL`) after an internal error
        (the run is then recorded ``failed``) or a failed hook.
    """
    args = _parser().parse_args(argv)
    _restore_pythonpath()
    # Its files are the owner's (or a group's): the launcher's setting and the caller's umask, which the
    # CLI and the hook get back, come in the environment (a Slurm job's too: sbatch exports it).
    adopt_private_umask(launched=True)
    sup = Supervisor(StatePaths(args.root), args.name, args.run_id)
    sup.slot_fd = args.slot_fd
    sup.time_limit_signal, sup.ref_from_env = executor_flags(args)
    # The life lock is held through args.alive_fd until this process exits; it
    # must not be inherited further (Popen(close_fds=True) sees to that).
    code = ExitCode.OK
    try:
        sup.run()
    except Exception as exc:  # noqa: BLE001 - a bug: the CLI must not outlive its supervision, nor the record stay active
        sup.internal_error(exc)
        code = ExitCode.INTERNAL
    try:
        sup.run_on_complete()
    except Exception as exc:  # noqa: BLE001 - the run has ended; only the hook failed
        import traceback  # only after a failed hook

        sup.log(f"on-complete failed: {exc!r}\n{traceback.format_exc()}")
        code = ExitCode.INTERNAL
    if args.alive_fd is not None:
        # The name is free once the hook's outcome is in the record (a launch meanwhile: exit 3).
        os.close(args.alive_fd)
    sup.continue_conversation()  # messages the CLI never got: the session goes on with them
    return int(code)
