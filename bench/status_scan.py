"""Item 4, ``check_status.py`` over 200 records, against ``python3 -c pass``, side by side.

The records are copies of one real record (an agent run on the fake CLI),
renamed: 150 completed and 50 running, whose life locks this benchmark
holds as their supervisors would, so that check_status probes 50 live locks
and 150 idle ones and finds nothing lost.

    python bench/status_scan.py [--rounds 20] [--records 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from common import AGENTS, Row, ended, fake_env, hold, record, script, table, timed, wait_until

from claude_orchestrator.core.files import write_atomic
from claude_orchestrator.core.paths import StatePaths


def measure(quick: bool = False, rounds: int | None = None, records: int = 200) -> list[Row]:
    rounds = rounds or (8 if quick else 20)
    running = records // 4
    with fake_env() as (env, state):
        script(env, "launch_agent", "model", "Summarise the README in five bullets")
        wait_until(lambda: ended(state, "model"), what="the model agent to end")
        template = record(state, "model")
        paths = StatePaths(state)
        held = []
        try:
            for i in range(records):
                name = f"s{i:03d}"
                rec = dict(template, agent=name)
                if i < running:
                    held.append(hold(paths, name))
                    rec.update(status="running", finished=None, duration_s=None, exit_code=None)
                write_atomic(paths.status(name), json.dumps(rec, indent=2) + "\n")
            base, status = [], []
            for _ in range(rounds):
                base.append(timed([sys.executable, "-c", "pass"], env))
                status.append(timed([sys.executable, str(AGENTS / "check_status.py")], env))
            lost = [r for r in (record(state, f"s{i:03d}") for i in range(records)) if r["status"] == "lost"]
            if lost:
                raise SystemExit(f"check_status marked {len(lost)} held runs lost")
        finally:
            for fd in held:
                os.close(fd)
            for i in range(running):  # they are "running" with no supervisor now: not ours to reap
                os.unlink(paths.status(f"s{i:03d}"))
    ratio = statistics.median(status) / statistics.median(base)
    return [
        Row("4", "`python3 -c pass`", base, "ms"),
        Row("4", f"`check_status.py` over {records} records ({running} running)", status, "ms",
            against="python3 -c pass"),
        Row("4", "  check_status / interpreter (ratio of medians; per-round min/max)",
            [s / b for b, s in zip(base, status, strict=True)], "x", value=ratio),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--records", type=int, default=200)
    args = ap.parse_args()
    print(table(measure(rounds=args.rounds, records=args.records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
