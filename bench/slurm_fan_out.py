"""Item 8, fan-out on Slurm against local: one ``launch_parallel.py`` of 50 tasks on the fake CLI.

Per round, once with ``--executor local`` and once with ``--executor slurm``
(alternated, the local one first): the time until launch_parallel returns and
until every agent's CLI has started (the records' ``started``), from the
moment the command was started.  The Slurm runs go to a private one-node
cluster (:mod:`claude_orchestrator.devtools.slurm_cluster`) started for this item, so
the figure is the toolkit plus Slurm's own scheduling (sbatch, the
controller's scheduling passes, slurmd starting the batch step) on this
machine; on a real cluster add the network and the site's scheduler settings.
``--memory-limit 0``: no ``--mem`` per job, so the one node's memory does not
cap how many of the 50 run at once.  Skipped (no rows) without Slurm.

    python bench/slurm_fan_out.py [--rounds 3] [--agents 50]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from common import Row, fake_env
from fan_out import fan_out_once, run_alone

from claude_orchestrator.devtools.slurm_cluster import SlurmCluster, missing


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
                    returned, running, _ = fan_out_once(env, state, agents, "--executor", executor, "--memory-limit", "0")
                    figures[executor][0].append(returned)
                    figures[executor][1].append(running)
    (l_ret, l_run), (s_ret, s_run) = figures["local"], figures["slurm"]
    return [
        Row("8", f"`launch_parallel.py` of {agents} tasks returns: local", l_ret, "ms"),
        Row("8", "  the same with `--executor slurm`", s_ret, "ms", against="local"),
        Row("8", f"  until all {agents} CLIs have started: local", l_run, "ms"),
        Row("8", "  the same with `--executor slurm`", s_run, "ms", against="local"),
    ]


def main() -> int:
    return run_alone(measure, __doc__)


if __name__ == "__main__":
    sys.exit(main())
