"""Item 7, scale: 200 agents at once on a fake CLI that waits, then checks that nothing was lost.

One ``launch_parallel.py`` of 200 tasks with no parallel limit; each fake
``claude`` starts, then waits until a release file exists.  Once all 200
records say ``running`` the benchmark takes the memory of every process
(RSS, and PSS, which splits shared pages fairly) and the supervisors' CPU
over a window; then it releases them all, waits for every run to end and
checks every agent's files: the record parses and says ``completed``, the
transcript's lines all parse and end with the result event, the output file
holds the answer, the session file holds the record's session ID.

    python bench/scale.py [--agents 200] [--idle 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil
from common import Row, ended, fake_env, memory, record, script, table, wait_until


def _check(state: Path, name: str, task: str) -> tuple[bool, bool]:
    """(record sound, transcript complete) for one agent."""
    rec = record(state, name)
    if not rec or rec.get("status") != "completed" or rec.get("agent") != name:
        return False, False
    try:
        lines = [json.loads(x) for x in Path(rec["transcript_file"]).read_text(encoding="utf-8").splitlines()]
        output = Path(rec["output_file"]).read_text(encoding="utf-8")
        session = (state / "sessions" / f"{name}_session.txt").read_text(encoding="utf-8").strip()
    except (OSError, ValueError):
        return True, False
    complete = (bool(lines) and lines[0].get("type") == "system" and lines[-1].get("type") == "result"
                and output.strip() == f"FAKE: {task}" and session == rec.get("session_id"))
    return True, complete


def measure(quick: bool = False, agents: int | None = None, idle: float | None = None) -> list[Row]:
    agents = agents or (50 if quick else 200)
    idle = idle or (2.0 if quick else 5.0)
    with fake_env() as (env, state), tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        release = Path(tmp) / "release"
        names = [f"sc{i:03d}" for i in range(agents)]
        tasks = [f"[[fake: until:{release}]] task {i}" for i in range(agents)]
        t0 = time.monotonic()
        script(env, "launch_parallel", "--max-parallel", "0", "--names", ",".join(names), *tasks)
        wait_until(lambda: all((r := record(state, n)) and r["status"] == "running" for n in names), timeout=600,
                   poll=0.2, what=f"all {agents} agents to be running")
        t_running = time.monotonic() - t0
        time.sleep(1.0)
        recs = [record(state, n) for n in names]
        sups = [psutil.Process(r["supervisor_pid"]) for r in recs]
        clis = [psutil.Process(r["pid"]) for r in recs]
        sup_rss, sup_pss = sum(memory(sups)), sum(memory(sups, "pss"))
        cli_rss, cli_pss = sum(memory(clis)), sum(memory(clis, "pss"))
        c0 = sum(p.cpu_times().user + p.cpu_times().system for p in sups)
        w0 = time.monotonic()
        time.sleep(idle)
        c1 = sum(p.cpu_times().user + p.cpu_times().system for p in sups)
        cpu = (c1 - c0) / (time.monotonic() - w0) * 100
        release.touch()
        t1 = time.monotonic()
        wait_until(lambda: all(ended(state, n) for n in names), timeout=600, poll=0.2, what="all agents to end")
        t_ended = time.monotonic() - t1
        checks = [_check(state, n, t) for n, t in zip(names, tasks, strict=True)]
    bad = sum(1 for sound, _ in checks if not sound)
    complete = sum(1 for _, c in checks if c)
    return [
        Row("7", f"{agents} agents at once: records lost or corrupt", [bad], "count", goal="0", met=bad == 0),
        Row("7", f"  transcripts, outputs and session files complete (of {agents})", [complete], "count",
            goal=str(agents), met=complete == agents),
        Row("7", f"  until all {agents} are running, from the launch", [t_running], "s"),
        Row("7", f"  until all {agents} have ended, from their release", [t_ended], "s"),
        Row("7", f"  {agents} supervisors: RSS, total", [sup_rss], "MiB"),
        Row("7", f"  {agents} supervisors: PSS (shared pages split), total", [sup_pss], "MiB"),
        Row("7", "    per supervisor (PSS)", [sup_pss / agents], "MiB", against="item 6: an idle real CLI's RSS"),
        Row("7", f"  {agents} fake CLIs (Python): RSS / PSS, total", [cli_rss], "MiB",
            against=f"PSS {cli_pss:.0f} MiB"),
        Row("7", f"  all {2 * agents} processes (total memory): RSS / PSS", [sup_rss + cli_rss], "MiB",
            against=f"PSS {sup_pss + cli_pss:.0f} MiB"),
        Row("7", f"  {agents} supervisors: CPU while idle ({idle:g} s window)", [cpu], "%", against="of one core"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--idle", type=float, default=5.0)
    args = ap.parse_args()
    print(table(measure(agents=args.agents, idle=args.idle)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
