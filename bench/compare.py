"""Before and after: the launch figures of two checkouts, measured alternately in the same rounds.

A table of two bench runs taken minutes apart on a shared machine mixes the
change with the machine's load; this runs each measure on the other checkout
(``--before DIR``, e.g. a ``git worktree`` of an older commit) and on this one
in turn, round after round, so the load hits both alike.  Agents run on
tests/fake_claude.py (a CLI that answers at once), so what is measured is the
toolkit.  Each checkout's scripts and supervisors import its own package
(``PYTHONPATH``; the bytecode is compiled first).

    git worktree add --detach /tmp/base e0d9d10
    python bench/compare.py --before /tmp/base [--rounds 5]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import sys
import time
from pathlib import Path

from common import ROOT, Row, ended, fake_env, machine, table, timed, wait_until

#: Tasks of the two fan-outs: the issue's figures (50 returns; 20 against one, each run to its end).
FAN_OUT, AGAINST_ONE = 50, 20


def _measure_once(tree: Path, tag: str) -> dict[str, float]:
    """One round of every measure on checkout ``tree`` (milliseconds)."""
    py, agents = sys.executable, tree / "agents"
    out: dict[str, float] = {}
    with fake_env() as (env, state):
        env["PYTHONPATH"] = str(tree)

        def settled(names: list[str]) -> None:  # each measure starts with nothing of the one before running
            wait_until(lambda: all(ended(state, n) for n in names), timeout=300, what="the runs to end")

        out["pass"] = timed([py, "-c", "pass"], env)
        out["launch"] = timed([py, str(agents / "launch_agent.py"), f"{tag}l", "x"], env)
        settled([f"{tag}l"])
        out["wait"] = timed([py, str(agents / "launch_agent.py"), f"{tag}w", "--wait", "x"], env)
        settled([f"{tag}w"])
        names = [f"{tag}a{i:02d}" for i in range(AGAINST_ONE)]
        out["twenty"] = timed([py, str(agents / "launch_parallel.py"), "--wait", "--max-parallel", "0",
                               "--names", ",".join(names), *["x"] * AGAINST_ONE], env)
        settled(names)
        names = [f"{tag}f{i:02d}" for i in range(FAN_OUT)]
        out["fifty"] = timed([py, str(agents / "launch_parallel.py"), "--max-parallel", "0",
                              "--names", ",".join(names), *["x"] * FAN_OUT], env)
        settled(names)
    return out


def measure(before: Path, rounds: int) -> list[Row]:
    trees = {"before": before.resolve(), "after": ROOT}
    for tree in trees.values():
        compileall.compile_dir(str(tree / "claude_orchestrator"), quiet=1)
        compileall.compile_file(str(tree / "agents" / "_bootstrap.py"), quiet=1)
    got: dict[str, dict[str, list[float]]] = {k: {} for k in trees}
    for r in range(rounds):
        for which, tree in trees.items():
            for key, value in _measure_once(tree, f"r{r}").items():
                got[which].setdefault(key, []).append(value)
    rows = []
    labels = {
        "launch": "`launch_agent.py NAME TASK` returns",
        "wait": "`launch_agent.py --wait` (a CLI that answers at once)",
        "twenty": f"`launch_parallel.py --wait` of {AGAINST_ONE} tasks",
        "fifty": f"`launch_parallel.py` of {FAN_OUT} tasks returns",
        "pass": "`python3 -c pass`",
    }
    for key, label in labels.items():
        for which in trees:
            rows.append(Row("A/B", f"{label}: {which}", got[which][key], "ms"))
    for which in trees:
        m = {k: statistics.median(v) for k, v in got[which].items()}
        rows.append(Row("A/B", f"{AGAINST_ONE} against one (ratio of medians): {which}", [m["twenty"] / m["wait"]], "x",
                        value=m["twenty"] / m["wait"]))
        rows.append(Row("A/B", f"launch / interpreter (ratio of medians): {which}", [m["launch"] / m["pass"]], "x",
                        value=m["launch"] / m["pass"]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, type=Path, help="the other checkout (its root folder)")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if not (args.before / "agents" / "launch_agent.py").is_file():
        ap.error(f"--before {args.before}: not a checkout of this toolkit (no agents/launch_agent.py)")
    t0 = time.monotonic()
    rows = measure(args.before, args.rounds)
    print(f"Machine: {machine()}\n\n{table(rows)}")
    print(f"\n{len(rows)} figures in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    sys.exit(main())
