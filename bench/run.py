"""Run every benchmark and print one table (make bench).

Items, in order (each module also runs alone; see its --help):

  1 launch_return  launch_agent.py against python3 -c pass, and the launch path's import time
  2 end_to_end     launch_agent.py --wait against the same claude -p, on the real CLI and the fake API
  3 fan_out        launch_parallel.py of 50 tasks: return, all running, all ended
  4 status_scan    check_status.py over 200 records against python3 -c pass
  5 wait_latency   a record turns terminal -> wait_agents.py exits; watching 100 idle agents
  6 supervision    a supervisor's RSS and CPU against the idle CLI's RSS; kill_agent latency
  7 scale          200 agents at once: nothing lost, every file complete, total memory
  8 slurm_fan_out  launch_parallel.py of 50 tasks on a private Slurm cluster against local (skipped without Slurm)
  9 messages       a message in the inbox -> the CLI reads it (and via message_agent.py); a waiting supervisor's idle CPU
 10 web_console    in chromium: a record change -> the page shows it; the first render of 500 agents; the server's idle CPU

The table is Markdown; it is also written, with the machine line, to
bench/results/latest.md (or --out), ready for docs/performance.md.
Nothing here is part of make test: figures on a shared machine are noisy, so
they are medians of alternated rounds, never pass/fail assertions.

examples:
  python bench/run.py                 everything (about 3 minutes on 2 cores)
  python bench/run.py --quick         fewer rounds, 50 agents for item 7 (about 1 minute)
  python bench/run.py --only 1,5      some items
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, machine, table

ITEMS = {
    "1": "launch_return",
    "2": "end_to_end",
    "3": "fan_out",
    "4": "status_scan",
    "5": "wait_latency",
    "6": "supervision",
    "7": "scale",
    "8": "slurm_fan_out",
    "9": "messages",
    "10": "web_console",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not figures to publish")
    ap.add_argument("--only", metavar="1,2,...", help="run only these items")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a figure misses its goal")
    ap.add_argument("--out", metavar="FILE", type=Path, default=ROOT / "bench" / "results" / "latest.md",
                    help="where to write the table (default: bench/results/latest.md)")
    args = ap.parse_args(argv)
    chosen = [i.strip() for i in args.only.split(",")] if args.only else list(ITEMS)
    unknown = [i for i in chosen if i not in ITEMS]
    if unknown:
        ap.error(f"--only: no item {', '.join(unknown)}; the items are 1 to {len(ITEMS)}")
    rows = []
    t0 = time.monotonic()
    for item in chosen:
        module = __import__(ITEMS[item])
        t = time.monotonic()
        print(f"bench: item {item} ({ITEMS[item]}) ...", file=sys.stderr, flush=True)
        rows += module.measure(quick=args.quick)
        print(f"bench: item {item} took {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    text = f"Machine: {machine()}\n\n{table(rows)}\n"
    if args.quick:
        text += "\n(--quick: fewer rounds; not figures to publish)\n"
    print()
    print(text, end="")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"\n{len(rows)} figures in {time.monotonic() - t0:.0f} s; also written to {args.out}", file=sys.stderr)
    missed = [r for r in rows if r.met is False]
    if missed:
        print(f"bench: {len(missed)} figure(s) miss their goal: " + "; ".join(r.measure.strip() for r in missed),
              file=sys.stderr)
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
