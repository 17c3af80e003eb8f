"""Item 3, fan-out on the fake CLI (answers at once, so what is measured is the toolkit), no parallel limit.

1. One ``launch_parallel.py`` of 50 tasks, per round: the time until it
   returns, until every agent's CLI has started (the records' ``started``),
   and until every run has ended (the records' ``finished``), all from the
   moment the command was started.  Goal (issue 22): it returns within 1 s.
2. A fan-out against one launch: ``launch_parallel.py --wait`` of 20 tasks and
   ``launch_agent.py --wait`` of one, alternately in the same rounds (the
   fan-out's 20 supervisors ended before the next command starts); the
   ratio of their medians.  Goal (issue 22): at most 4x, i.e. 20 runs cost
   little more than one.

    python bench/fan_out.py [--rounds 3] [--agents 50] [--pairs 5] [--fan 20]
"""

from __future__ import annotations

import argparse
import statistics
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


#: Issue 22: ``launch_parallel.py`` of :data:`GOAL_AGENTS` tasks returns within this many ms ...
GOAL_RETURN_MS = 1000.0
GOAL_AGENTS = 50
#: ... and ``--wait`` of :data:`GOAL_FAN` tasks takes at most this many times one ``launch_agent.py --wait``.
GOAL_RATIO = 4.0
GOAL_FAN = 20


def fan_against_one(env: dict[str, str], state: Path, pairs: int, fan: int) -> tuple[list[float], list[float]]:
    """``pairs`` rounds of ``launch_agent.py --wait`` of one task, then ``launch_parallel.py --wait`` of ``fan``.

    One unmeasured round first (the toolkit's first run in a state root probes and caches the CLI's
    ``--help``).  Each command starts once every supervisor of the one before has let go.

    Returns:
        (one, fan-out): milliseconds of each command, per round.
    """
    one, many = [], []
    for r in range(-1, pairs):
        tag = "w" if r < 0 else str(r)
        t_one = timed([sys.executable, str(AGENTS / "launch_agent.py"), f"one{tag}", "--wait", "task"], env)
        wait_until(lambda n=f"one{tag}": ended(state, n), what=f"agent one{tag} to end")
        names = [f"p{tag}x{i:02d}" for i in range(fan)]
        t_many = timed([sys.executable, str(AGENTS / "launch_parallel.py"), "--max-parallel", "0", "--wait",
                        "--names", ",".join(names), *[f"task {i}" for i in range(fan)]], env)
        wait_until(lambda ns=names: all(ended(state, n) for n in ns), timeout=300, what=f"fan-out {tag} to end")
        if r >= 0:
            one.append(t_one)
            many.append(t_many)
    return one, many


def measure(quick: bool = False, rounds: int | None = None, agents: int = GOAL_AGENTS, pairs: int | None = None,
            fan: int = GOAL_FAN) -> list[Row]:
    rounds = rounds or (1 if quick else 3)
    pairs = pairs or (2 if quick else 5)
    returned, running, done = [], [], []
    for _ in range(rounds):
        with fake_env() as (env, state):
            figures = fan_out_once(env, state, agents, "--max-parallel", "0")
        for samples, value in zip((returned, running, done), figures, strict=True):
            samples.append(value)
    with fake_env() as (env, state):
        one, many = fan_against_one(env, state, pairs, fan)
    ret = statistics.median(returned)
    ratio = statistics.median(many) / statistics.median(one)
    return [
        Row("3", f"`launch_parallel.py` of {agents} tasks returns", returned, "ms",
            **({"goal": f"<= {GOAL_RETURN_MS:g} ms", "met": ret <= GOAL_RETURN_MS} if agents == GOAL_AGENTS else {})),
        Row("3", f"  until all {agents} CLIs have started", running, "ms"),
        Row("3", f"  until all {agents} runs have ended", done, "ms"),
        Row("3", "`launch_agent.py --wait` of one task", one, "ms"),
        Row("3", f"`launch_parallel.py --wait` of {fan} tasks, in the same rounds", many, "ms",
            against="one launch_agent.py --wait"),
        Row("3", f"  {fan} / one (ratio of medians; per-round min/max)", [m / o for o, m in zip(one, many, strict=True)],
            "x", value=ratio, **({"goal": f"<= {GOAL_RATIO:g}x", "met": ratio <= GOAL_RATIO} if fan == GOAL_FAN else {})),
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of part 1")
    ap.add_argument("--agents", type=int, default=GOAL_AGENTS, help="tasks of part 1's fan-out")
    ap.add_argument("--pairs", type=int, default=5, help="rounds of part 2")
    ap.add_argument("--fan", type=int, default=GOAL_FAN, help="tasks of part 2's fan-out")
    args = ap.parse_args()
    print(table(measure(rounds=args.rounds, agents=args.agents, pairs=args.pairs, fan=args.fan)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
