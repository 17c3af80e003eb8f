"""Item 8, fan-out on Slurm against local: one ``launch_parallel.py`` of 50 tasks on the fake CLI.

Per round, once with ``--executor local`` and once with ``--executor slurm``
(alternated, the local one first): the time until launch_parallel returns and
until every agent's CLI has started (the records' ``started``), from the
moment the command was started.  The Slurm runs go to a private one-node
cluster (:mod:`claude_orchestrator.slurm_cluster`) started for this item, so
the figure is the toolkit plus Slurm's own scheduling (sbatch, the
controller's scheduling passes, slurmd starting the batch step) on this
machine; on a real cluster add the network and the site's scheduler settings.
``--memory-limit 0``: no ``--mem`` per job, so the one node's memory does not
cap how many of the 50 run at once.  Skipped (no rows) without Slurm.

    python bench/slurm_fan_out.py [--rounds 3] [--agents 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import AGENTS, Row, ended, fake_env, record, table, timed, wait_until

from claude_orchestrator.record import parse_time
from claude_orchestrator.slurm_cluster import SlurmCluster, missing


def _one(env: dict[str, str], state: Path, executor: str, agents: int) -> tuple[float, float]:
    """``(ms until launch_parallel returned, ms until every CLI had started)`` for one fan-out."""
    names = [f"fan{i:02d}" for i in range(agents)]
    t0 = time.time()
    returned = timed([sys.executable, str(AGENTS / "launch_parallel.py"), "--executor", executor, "--memory-limit", "0",
                      "--names", ",".join(names), *[f"task {i}" for i in range(agents)]], env)
    wait_until(lambda: all(ended(state, n) for n in names), timeout=300, what=f"the {executor} fan-out to end")
    recs = [record(state, n) for n in names]
    bad = [n for n, r in zip(names, recs, strict=True) if not r or r["status"] != "completed"]
    if bad:
        raise SystemExit(f"{executor} fan-out: {len(bad)} agents did not complete, e.g. {bad[0]}: {record(state, bad[0])}")
    return returned, (max(parse_time(r["started"]) for r in recs) - t0) * 1000


def measure(quick: bool = False, rounds: int | None = None, agents: int = 50) -> list[Row]:
    why = missing()
    if why:
        print(f"bench: item 8 skipped: {why}", file=sys.stderr)
        return []
    rounds = rounds or (1 if quick else 3)
    figures: dict[str, tuple[list[float], list[float]]] = {"local": ([], []), "slurm": ([], [])}
    with tempfile.TemporaryDirectory(prefix="orch-bench-slurm-") as tmp, SlurmCluster(Path(tmp)) as cluster:
        for _ in range(rounds):
            for executor in ("local", "slurm"):
                with fake_env() as (env, state):
                    env.update(cluster.env)
                    returned, running = _one(env, state, executor, agents)
                    figures[executor][0].append(returned)
                    figures[executor][1].append(running)
    (l_ret, l_run), (s_ret, s_run) = figures["local"], figures["slurm"]
    return [
        Row("8", f"`launch_parallel.py` of {agents} tasks returns: local", l_ret, "ms"),
        Row("8", "  the same with `--executor slurm`", s_ret, "ms", against="local", value=None),
        Row("8", f"  until all {agents} CLIs have started: local", l_run, "ms"),
        Row("8", "  the same with `--executor slurm`", s_run, "ms", against="local"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--agents", type=int, default=50)
    args = ap.parse_args()
    print(table(measure(rounds=args.rounds, agents=args.agents)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
