"""Item 6, supervision costs, on the real CLI against the fake API.

1. Footprint of one: a supervisor's RSS, PSS and CPU (seconds of CPU per
   second) while its agent idles (the CLI waits on a slow API reply), next to
   the CLI's RSS (its process tree), sampled every 0.5 s over a window.
2. Footprint in a fan-out: one ``launch_parallel.py`` of 20 tasks that idle the
   same way; once every CLI waits on the API, the PSS of each supervisor and
   the RSS of each CLI's tree (three samples each, their median).  PSS
   (``/proc/PID/smaps_rollup``) splits the pages that processes share among
   them, so supervisors that share their code pages each count only their
   part: the figure that adds up to what the machine holds.  Goal (issue 22):
   a supervisor's PSS at most 5% of an idle CLI's RSS, alone and in the fan-out.
3. Stop latency: from running ``kill_agent.py NAME`` to the moment no process
   of the run's tree is left (the real CLI exits on SIGTERM).

    python bench/supervision.py [--idle 10] [--fan 20] [--kills 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import psutil
from common import AGENTS, Row, ended, memory, real_env, record, script, table, tree_rss, wait_until

GOAL_RSS = 10.0  # %, a supervisor's RSS of the CLI's
GOAL_PSS = 5.0  # %, a supervisor's PSS of the CLI's RSS (issue 22)


def _share(part: list[float], whole: list[float]) -> tuple[list[float], float]:
    """Per-sample ``part / whole`` in %, and the ratio of their medians in %."""
    return ([p / w * 100 for p, w in zip(part, whole, strict=True)],
            statistics.median(part) / statistics.median(whole) * 100)


def _asked(server, marks: list[str]) -> bool:
    """True once the fake API has had a request whose body holds each of ``marks`` (each CLI is waiting on it)."""
    bodies = [json.dumps(b) for b in server.messages_requests()]
    return all(any(m in b for b in bodies) for m in marks)


def one_alone(env: dict[str, str], state, server, idle: float) -> list[Row]:
    """Part 1: one idle agent, sampled every 0.5 s for ``idle`` s."""
    script(env, "launch_agent", "idle", f"[[delay: {idle + 30:g}]] idle-alone wait")
    rec = wait_until(lambda: (r := record(state, "idle")) and r.get("pid") and r, what="the idle agent's CLI")
    sup, cli = psutil.Process(rec["supervisor_pid"]), psutil.Process(rec["pid"])
    wait_until(lambda: _asked(server, ["idle-alone"]), what="the CLI's first API request")
    time.sleep(1.0)  # the CLI is now waiting on the API
    c0, t0 = sup.cpu_times(), time.monotonic()
    rss_sup, pss_sup, rss_cli = [], [], []
    while time.monotonic() - t0 < idle:
        rss_sup += memory([sup])
        pss_sup += memory([sup], "pss")
        rss_cli.append(tree_rss(cli))
        time.sleep(0.5)
    c1, t1 = sup.cpu_times(), time.monotonic()
    cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
    script(env, "kill_agent", "idle", "--grace", "5")
    wait_until(lambda: ended(state, "idle"), what="the idle agent to stop")
    rss_share, rss_ratio = _share(rss_sup, rss_cli)
    pss_share, pss_ratio = _share(pss_sup, rss_cli)
    return [
        Row("6", "the CLI's process tree, idle (RSS)", rss_cli, "MiB"),
        Row("6", "its supervisor, idle (RSS)", rss_sup, "MiB", against="the CLI's RSS"),
        Row("6", "  supervisor / CLI (RSS, ratio of medians)", rss_share, "%", goal=f"<= {GOAL_RSS:g}%",
            met=rss_ratio <= GOAL_RSS, value=rss_ratio),
        Row("6", "its supervisor, idle (PSS: shared pages split)", pss_sup, "MiB", against="the CLI's RSS"),
        Row("6", "  supervisor PSS / CLI RSS (ratio of medians)", pss_share, "%", goal=f"<= {GOAL_PSS:g}%",
            met=pss_ratio <= GOAL_PSS, value=pss_ratio),
        Row("6", f"  supervisor CPU while its agent idles ({idle:g} s window)", [cpu * 100], "%"),
    ]


def fan_out(env: dict[str, str], state, server, fan: int) -> list[Row]:
    """Part 2: one ``launch_parallel.py`` of ``fan`` idle agents; each supervisor's PSS, each CLI's RSS."""
    names = [f"fan{i:02d}" for i in range(fan)]
    marks = [f"idle-fan-{i:02d}" for i in range(fan)]
    script(env, "launch_parallel", "--max-parallel", "0", "--names", ",".join(names),
           *[f"[[delay: 600]] {m} wait" for m in marks])
    recs = wait_until(lambda: all((r := record(state, n)) and r.get("pid") for n in names)
                      and [record(state, n) for n in names], timeout=300, what=f"the {fan} agents' CLIs")
    wait_until(lambda: _asked(server, marks), timeout=300, poll=0.2, what=f"the {fan} CLIs' API requests")
    time.sleep(1.0)
    sups = [psutil.Process(r["supervisor_pid"]) for r in recs]
    clis = [psutil.Process(r["pid"]) for r in recs]
    pss_rounds, rss_rounds = [], []
    for _ in range(3):
        pss_rounds.append(memory(sups, "pss"))
        rss_rounds.append([tree_rss(c) for c in clis])
        time.sleep(0.5)
    pss = [statistics.median(xs) for xs in zip(*pss_rounds, strict=True)]
    rss = [statistics.median(xs) for xs in zip(*rss_rounds, strict=True)]
    script(env, "kill_agent", *names, "--grace", "5")
    wait_until(lambda: all(ended(state, n) for n in names), timeout=120, what="the fan-out to stop")
    share, ratio = _share(pss, rss)
    return [
        Row("6", f"each CLI of a `launch_parallel.py` of {fan} idle agents (RSS of its tree)", rss, "MiB"),
        Row("6", f"  each of their {fan} supervisors (PSS)", pss, "MiB", against="their CLIs' RSS"),
        Row("6", f"  supervisor PSS / CLI RSS in the fan-out of {fan} (ratio of medians)", share, "%",
            goal=f"<= {GOAL_PSS:g}%", met=ratio <= GOAL_PSS, value=ratio),
        Row("6", f"  the {fan} supervisors' PSS, total", [sum(pss)], "MiB"),
    ]


def kill_latency(env: dict[str, str], state, kills: int) -> list[Row]:
    """Part 3: ``kill_agent.py NAME`` -> no process of the run's tree left, ``kills`` times."""
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
    return [Row("6", "`kill_agent.py` -> no process of the run's tree left", lat, "ms")]


def measure(quick: bool = False, idle: float | None = None, fan: int | None = None, kills: int | None = None) -> list[Row]:
    idle = idle or (4.0 if quick else 10.0)
    fan = fan or (5 if quick else 20)
    kills = kills or (2 if quick else 5)
    with real_env() as (env, state, server):
        rows = one_alone(env, state, server, idle)
        rows += fan_out(env, state, server, fan)
        rows += kill_latency(env, state, kills)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=10.0, help="seconds to watch an idle agent")
    ap.add_argument("--fan", type=int, default=20, help="idle agents of the fan-out")
    ap.add_argument("--kills", type=int, default=5, help="stop-latency samples")
    args = ap.parse_args()
    print(table(measure(idle=args.idle, fan=args.fan, kills=args.kills)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
