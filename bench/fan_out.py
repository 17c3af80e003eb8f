"""Item 3, fan-out: one ``launch_parallel.py`` of 50 tasks on the fake CLI, no parallel limit.

Per round: the time until launch_parallel returns, until every agent's CLI
has started (the records' ``started``), and until every run has ended (the
records' ``finished``), all from the moment the command was started.  The
fake ``claude`` answers at once, so what is measured is the toolkit.

    python bench/fan_out.py [--rounds 3] [--agents 50]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import AGENTS, Row, ended, fake_env, record, table, timed, wait_until

from claude_orchestrator.records.shape import parse_time


def fan_out_once(env: dict[str, str], state: Path, agents: int, *options: str) -> tuple[float, float, float]:
    """One ``launch_parallel.py OPTIONS`` of ``agents`` tasks, waited to its end.

    Returns:
        Milliseconds from the command's start until it returned, until every
        agent's CLI had started (the records' ``started``), and until every run
        had ended (``finished``).  SystemExit if an agent did not complete.
    """
    names = [f"fan{i:02d}" for i in range(agents)]
    t0 = time.time()
    returned = timed([sys.executable, str(AGENTS / "launch_parallel.py"), *options,
                      "--names", ",".join(names), *[f"task {i}" for i in range(agents)]], env)
    wait_until(lambda: all(ended(state, n) for n in names), timeout=300, what="the fan-out to end")
    recs = [record(state, n) for n in names]
    bad = [n for n, r in zip(names, recs, strict=True) if not r or r["status"] != "completed"]
    if bad:
        raise SystemExit(f"fan-out {' '.join(options)}: {len(bad)} agents did not complete, e.g. {bad[0]}: {record(state, bad[0])}")
    running = (max(parse_time(r["started"]) for r in recs) - t0) * 1000
    return returned, running, (max(parse_time(r["finished"]) for r in recs) - t0) * 1000


def measure(quick: bool = False, rounds: int | None = None, agents: int = 50) -> list[Row]:
    rounds = rounds or (1 if quick else 3)
    returned, running, done = [], [], []
    for _ in range(rounds):
        with fake_env() as (env, state):
            figures = fan_out_once(env, state, agents, "--max-parallel", "0")
        for samples, value in zip((returned, running, done), figures, strict=True):
            samples.append(value)
    return [
        Row("3", f"`launch_parallel.py` of {agents} tasks returns", returned, "ms"),
        Row("3", f"  until all {agents} CLIs have started", running, "ms"),
        Row("3", f"  until all {agents} runs have ended", done, "ms"),
    ]


def run_alone(measure_fn, doc: str) -> int:
    """A fan-out item run by itself: ``--rounds`` and ``--agents``, then its table."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--agents", type=int, default=50)
    args = ap.parse_args()
    print(table(measure_fn(rounds=args.rounds, agents=args.agents)))
    return 0


def main() -> int:
    return run_alone(measure, __doc__)


if __name__ == "__main__":
    sys.exit(main())
