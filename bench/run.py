"""Run every benchmark and print one table (make bench).

Items, in order (each module also runs alone; see its --help):

  1 launch_return  launch_agent.py against python3 -c pass, and the launch path's import time
  2 end_to_end     launch_agent.py --wait against the same CLI run directly: the real CLI on the fake API
                   (the fixed cost per run, and what it makes of a 0.5 s run); the fake CLI, against python3 -c pass
  3 fan_out        launch_parallel.py of 50 tasks: return, all running, all ended; --wait of 20 against one launch
  4 status_scan    check_status.py over 200 records against python3 -c pass
  5 wait_latency   a record turns terminal -> wait_agents.py exits; watching 100 idle agents
  6 supervision    a supervisor's RSS, PSS and CPU against the idle CLI's RSS, alone and in a fan-out of 20;
                   kill_agent latency
  7 scale          200 agents at once: nothing lost, every file complete, total memory
  8 slurm_fan_out  launch_parallel.py of 50 tasks on a private Slurm cluster against local (needs Slurm)
  9 messages       a message in the inbox -> the CLI reads it (and via message_agent.py); a waiting supervisor's idle CPU
 10 web_console    in chromium: a record change -> the page shows it; the first render of 500 agents; the server's idle CPU
 11 slurm_scale    1,000 held agents on a private Slurm cluster: launch_parallel.py, check_status.py, kill_agent.py --all
                   (needs Slurm)

Items 8 and 11 are skipped, with a line on stderr, where Slurm is missing
(``claude_orchestrator.devtools.slurm_cluster.missing``), and any item whose
module is not in bench/ is skipped the same way.  Item 10 needs chromium.
Items 2 and 6 need the pinned real CLI (``make install-cli``, or
``$CLAUDE_BIN``); it never talks to a real API.

Before the first item, the package that the bench imports and
agents/_bootstrap.py are compiled to bytecode (``compileall``, which skips
what is up to date): with ``PYTHONDONTWRITEBYTECODE`` set, or in a fresh
checkout, every launch would otherwise compile them again, which is not what
a user's launch costs.

The table is Markdown; it is also written, with the machine line, to
bench/results/latest.md (or --out), ready for docs/performance.md.
Nothing here is part of make test: figures on a shared machine are noisy, so
they are medians of alternated rounds, never pass/fail assertions.  Run it
on a quiet machine: the items take the 2 cores they are given.

To measure an older checkout with this bench (a before/after table): copy
this bench/ into the checkout and run it from the checkout's root with
``PYTHONPATH=<checkout>``, so that the scripts, the supervisors and the bench
import that checkout's package (the bench uses the scripts' arguments, the
records and a few of the package's functions that older checkouts have too:
the CLI's argument vector, the state paths, the fake API, the test cluster).

examples:
  python bench/run.py                 everything: about 6 minutes on 2 cores before issue 22's changes
                                      (items 8 and 11, on Slurm, about 1.5 of them)
  python bench/run.py --quick         fewer rounds and agents: a smoke run (about 2 minutes), not figures to publish
  python bench/run.py --only 1,5      some items
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, foreign_package, machine, table

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
    "11": "slurm_scale",
}
#: Items that start a private Slurm cluster: skipped where Slurm is missing.
NEEDS_SLURM = {"8", "11"}


def _skip(item: str) -> str | None:
    """Why ``item`` cannot run here (its module is not in bench/, or it needs Slurm and Slurm is missing), or None."""
    if not (Path(__file__).parent / f"{ITEMS[item]}.py").exists():
        return f"bench/{ITEMS[item]}.py is not there"
    if item in NEEDS_SLURM:
        from claude_orchestrator.devtools.slurm_cluster import missing

        return missing()
    return None


def compile_toolkit() -> None:
    """Write the bytecode of the imported ``claude_orchestrator`` and of agents/_bootstrap.py (up-to-date files skipped).

    The scripts and supervisors run from it, as after any first run with bytecode writing on; the bench
    itself may run with ``PYTHONDONTWRITEBYTECODE`` (compileall writes regardless).
    """
    import compileall

    import claude_orchestrator

    for folder in claude_orchestrator.__path__:
        compileall.compile_dir(folder, quiet=1)
    compileall.compile_file(str(ROOT / "agents" / "_bootstrap.py"), quiet=1)


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
    other = foreign_package()
    if other:
        ap.error(f"the package imported is the one in {other}, not this checkout's: run with PYTHONPATH={ROOT}")
    rows = []
    t0 = time.monotonic()
    compile_toolkit()
    for item in chosen:
        why = _skip(item)
        if why:
            print(f"bench: item {item} ({ITEMS[item]}) skipped: {why}", file=sys.stderr, flush=True)
            continue
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
