"""Item 6, supervision costs, on the real CLI against the fake API.

1. Footprint: a supervisor's RSS and CPU (seconds of CPU per second) while
   its agent idles (the CLI waits on a slow API reply), next to the CLI's RSS.
2. Stop latency: from running ``kill_agent.py NAME`` to the moment no process
   of the run's tree is left (the real CLI exits on SIGTERM).

    python bench/supervision.py [--idle 10] [--kills 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psutil
from common import AGENTS, Row, real_env, record, script, table, wait_until


def measure(quick: bool = False, idle: float | None = None, kills: int | None = None) -> list[Row]:
    idle = idle or (4.0 if quick else 10.0)
    kills = kills or (2 if quick else 5)
    with real_env() as (env, state, server):
        # 1. footprint while idle
        script(env, "launch_agent", "idle", f"[[delay: {idle + 30:g}]] wait")
        rec = wait_until(lambda: (r := record(state, "idle")) and r.get("pid") and r, what="the idle agent's CLI")
        sup, cli = psutil.Process(rec["supervisor_pid"]), psutil.Process(rec["pid"])
        wait_until(lambda: len(server.messages_requests()) > 0, what="the CLI's first API request")
        time.sleep(1.0)  # the CLI is now waiting on the API
        c0, t0 = sup.cpu_times(), time.monotonic()
        rss_sup, rss_cli = [], []
        while time.monotonic() - t0 < idle:
            rss_sup.append(sup.memory_info().rss / 2**20)
            rss_cli.append(sum(p.memory_info().rss for p in [cli, *cli.children(recursive=True)]) / 2**20)
            time.sleep(0.5)
        c1, t1 = sup.cpu_times(), time.monotonic()
        cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
        script(env, "kill_agent", "idle", "--grace", "5")
        # 2. stop latency
        lat = []
        for i in range(kills):
            name = f"k{i}"
            script(env, "launch_agent", name, "[[delay: 60]] wait")
            rec = wait_until(lambda n=name: (r := record(state, n)) and r.get("pid") and r, what=f"{name}'s CLI")
            wait_until(lambda n=name: (r := record(state, n)) and os.path.getsize(r["transcript_file"]) > 0,
                       what=f"{name}'s first event")
            tree = [psutil.Process(rec["pid"]), *psutil.Process(rec["pid"]).children(recursive=True)]
            t0 = time.monotonic()
            subprocess.Popen([sys.executable, str(AGENTS / "kill_agent.py"), name], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            _, alive = psutil.wait_procs(tree, timeout=30)
            lat.append((time.monotonic() - t0) * 1000)
            if alive:
                raise SystemExit(f"kill_agent {name} left {alive} running")
            wait_until(lambda n=name: (r := record(state, n)) and r["status"] == "killed", what=f"{name} killed")
    share = [s / c * 100 for s, c in zip(rss_sup, rss_cli, strict=True)]
    ratio = statistics.median(rss_sup) / statistics.median(rss_cli) * 100
    return [
        Row("6", "the CLI's process tree, idle (RSS)", rss_cli, "MiB"),
        Row("6", "its supervisor, idle (RSS)", rss_sup, "MiB", against="the CLI's RSS"),
        Row("6", "  supervisor / CLI (RSS, ratio of medians)", share, "%", goal="<= 10%", met=ratio <= 10.0,
            value=ratio),
        Row("6", f"  supervisor CPU while its agent idles ({idle:g} s window)", [cpu * 100], "%"),
        Row("6", "`kill_agent.py` -> no process of the run's tree left", lat, "ms"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=10.0, help="seconds to watch an idle agent")
    ap.add_argument("--kills", type=int, default=5, help="stop-latency samples")
    args = ap.parse_args()
    print(table(measure(idle=args.idle, kills=args.kills)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
