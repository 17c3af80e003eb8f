"""Item 11, Slurm at scale: 1,000 held agents launched, read and killed on a private one-node cluster.

Per round, on the fake CLI (it never runs: every job is held), from the moment
each command is started until it has exited:

- ``launch_parallel.py --executor slurm --slurm-arg --hold`` of N tasks
  (every run's record written and its job submitted; goal: 1,000 in at most 5 s);
- ``check_status.py`` over the N records (one ``squeue`` for all the jobs;
  goal: at most 0.3 s), run :data:`STATUS_REPEATS` times a round;
- ``kill_agent.py --all`` (every pending job cancelled and every run recorded
  ``killed``; goal: at most 2 s).

After each round it checks what the commands claim: every run had its own
job ID, every record ends ``killed``, and Slurm has no job of the round left
alive; a round that fails that stops the item (SystemExit).

The cluster (:mod:`claude_orchestrator.devtools.slurm_cluster`) is started for
this item.  Its defaults allow this: Slurm's ``MaxJobCount`` is 10,000 by default
(slurm.conf(5)) and a cancelled job stays in the controller's memory for
``MinJobAge`` (300 s), so three rounds of 1,000 stay under it; a held job
takes no CPU or memory of the node.  The figures are the toolkit plus
Slurm's own RPCs (sbatch, squeue, scancel and the controller) on this machine,
sharing its cores; on a real cluster add the network.  ``--quick`` launches
:data:`QUICK_AGENTS` agents, and its rows say so.  Skipped (no rows) without Slurm.

Runs against an older checkout too (only the scripts' command lines are used).

    python bench/slurm_scale.py [--quick] [--rounds 3] [--agents 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import AGENTS, Row, fake_env, record, table, timed

from claude_orchestrator.devtools.slurm_cluster import SlurmCluster, missing

#: Agents of a full run (the issue's figure) and of a ``--quick`` one.
AGENTS_FULL = 1000
QUICK_AGENTS = 200
#: ``check_status.py`` runs per round (it is cheap; the median smooths this shared machine's noise).
STATUS_REPEATS = 5
#: Goals, in seconds, for 1,000 agents (issue 22).
LAUNCH_GOAL_S = 5.0
STATUS_GOAL_S = 0.3
KILL_GOAL_S = 2.0
#: Job states in which Slurm still has a job alive (a subset suffices: a held job is PENDING, a cancelled one
#: passes through COMPLETING at most).
_ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "SIGNALING"}


def one_round(cluster: SlurmCluster, agents: int) -> tuple[float, list[float], float]:
    """Launch ``agents`` held Slurm agents, read them, kill them all; milliseconds of each command.

    Returns:
        ``(launch, [check_status ...], kill)`` in ms.

    Raises:
        SystemExit: a command failed, or what it left is not what it claims (a run without its own
            job, a record not ``killed``, a job still alive in Slurm).
    """
    names = [f"s{i:04d}" for i in range(agents)]
    with fake_env() as (env, state):
        env.update(cluster.env, ORCHESTRATOR_SLURM_SETTLE="0")
        launch = timed([sys.executable, str(AGENTS / "launch_parallel.py"), "--executor", "slurm",
                        "--slurm-arg", "--hold",
                        "--names", ",".join(names), *[f"task {i}" for i in range(agents)]], env)
        recs = [record(state, n) or {} for n in names]
        jobs = [r.get("slurm_job_id") for r in recs]
        if not all(jobs) or len(set(jobs)) != agents or any(r.get("status") != "queued" for r in recs):
            bad = next(r for r in recs if not r.get("slurm_job_id") or r.get("status") != "queued")
            raise SystemExit(f"slurm_scale: a launched run is not a held job of its own: {json.dumps(bad)[:300]}")
        status = [timed([sys.executable, str(AGENTS / "check_status.py")], env) for _ in range(STATUS_REPEATS)]
        kill = timed([sys.executable, str(AGENTS / "kill_agent.py"), "--all"], env)
        not_killed = [n for n in names if (record(state, n) or {}).get("status") != "killed"]
        if not_killed:
            raise SystemExit(f"slurm_scale: {len(not_killed)} runs not killed by kill_agent.py --all, e.g. {record(state, not_killed[0])}")
        listed = cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%T", "-j", ",".join(jobs)).stdout.split()
        alive = [line for line in listed if line.split("|")[1] in _ALIVE and line.split("|")[0] in set(jobs)]
        if alive:
            cluster.run("scancel", *(line.split("|")[0] for line in alive), check=False)
            raise SystemExit(f"slurm_scale: {len(alive)} jobs still alive after kill_agent.py --all, e.g. {alive[0]}")
    return launch, status, kill


def measure(quick: bool = False, rounds: int | None = None, agents: int | None = None) -> list[Row]:
    why = missing()
    if why:
        print(f"bench: item 11 skipped: {why}", file=sys.stderr)
        return []
    rounds = rounds or (1 if quick else 3)
    agents = agents or (QUICK_AGENTS if quick else AGENTS_FULL)
    launches: list[float] = []
    statuses: list[float] = []
    kills: list[float] = []
    with tempfile.TemporaryDirectory(prefix="orch-bench-slurm-") as tmp, SlurmCluster(Path(tmp)) as cluster:
        for _ in range(rounds):
            launch, status, kill = one_round(cluster, agents)
            launches.append(launch)
            statuses.append(statistics.median(status))
            kills.append(kill)
    scaled = "" if agents == AGENTS_FULL else f" ({agents} agents, not {AGENTS_FULL}: goal not judged)"
    full = agents == AGENTS_FULL

    def row(what: str, samples: list[float], goal_s: float) -> Row:
        met = statistics.median(samples) <= goal_s * 1000 if full else None
        return Row("11", what + scaled, samples, "ms", goal=f"<= {goal_s:g} s for {AGENTS_FULL}", met=met)

    return [
        row(f"`launch_parallel.py --executor slurm --slurm-arg --hold` of {agents} tasks returns", launches, LAUNCH_GOAL_S),
        row(f"  `check_status.py` over the {agents} held Slurm runs", statuses, STATUS_GOAL_S),
        row(f"  `kill_agent.py --all` of the {agents} held jobs", kills, KILL_GOAL_S),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help=f"one round of {QUICK_AGENTS} agents")
    ap.add_argument("--rounds", type=int, help="rounds (default: 3, --quick 1)")
    ap.add_argument("--agents", type=int, help=f"agents a round (default: {AGENTS_FULL}, --quick {QUICK_AGENTS})")
    args = ap.parse_args()
    print(table(measure(args.quick, rounds=args.rounds, agents=args.agents)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
