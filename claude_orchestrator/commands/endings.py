"""How launch_agent.py, resume_agent.py and launch_parallel.py end: the launched lines, or ``--wait``."""

from __future__ import annotations

import argparse
import json

from ..core.paths import StatePaths
from ..core.states import UNSUCCESSFUL, ExitCode
from ..records.status_record import RecordStore, StatusRecord
from . import render


def finish_launch(paths: StatePaths, rec: StatusRecord, args: argparse.Namespace) -> ExitCode:
    """End a one-agent launch or resume: with ``--wait`` wait for it; else print where its files are.

    Prints :func:`.render.launch_summary` as JSON with ``--json``, else :func:`.render.launched`.

    Returns:
        OK, or (``--wait``) AGENT_FAILED if the run did not complete.
    """
    if args.wait:
        return finish_wait(paths, [rec.agent], args.json)
    if args.json:
        print(json.dumps(render.launch_summary(paths, rec), indent=2))
    else:
        print(render.launched(paths, rec))
    return ExitCode.OK


def finish_wait(paths: StatePaths, names: list[str], as_json: bool, as_list: bool = False) -> ExitCode:
    """Wait for ``names`` to end, print them, return OK if all completed else AGENT_FAILED.

    JSON: the short form ``check_status.py --json`` gives (:func:`.render.brief`: agent,
    status, run_id, error, a result preview, turns, cost, duration, session_id,
    output_file, ...), one object on one line, or with ``as_list`` (launch_parallel) a
    list of them; the whole record is ``check_status.py --full NAME``'s.  Text: one
    :func:`.render.ended_line` each, and a git worktree's path and branch under it.
    """
    from ..executors.detach import open_gates
    from ..usecases.control import wait_for  # here: control (executors, watchdog) is off the launch path without --wait

    open_gates()  # a fan-out's supervisors start when the launcher exits, or now that it waits for them
    recs = wait_for(RecordStore(paths), names)
    assert recs is not None  # no timeout given
    if as_json:
        print(render.json_list([render.brief(r) for r in recs]) if as_list else render.compact(render.brief(recs[0])))
    else:
        for r in recs:
            print("\n".join([render.ended_line(r), *render.worktree_lines(r)]))
    return ExitCode.AGENT_FAILED if any(r.state in UNSUCCESSFUL for r in recs) else ExitCode.OK
