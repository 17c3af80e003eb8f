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

    JSON: one whole record object, or with ``as_list`` (launch_parallel) a
    list of :func:`.render.brief` objects; text: one :func:`.render.ended_line` each.
    """
    from ..usecases.control import wait_for  # here: control (executors, watchdog) is off the launch path without --wait

    recs = wait_for(RecordStore(paths), names)
    assert recs is not None  # no timeout given
    if as_json:
        print(render.json_list([render.brief(r) for r in recs]) if as_list else json.dumps(recs[0].to_dict(), indent=2))
    else:
        for r in recs:
            print(render.ended_line(r))
    return ExitCode.AGENT_FAILED if any(r.state in UNSUCCESSFUL for r in recs) else ExitCode.OK
