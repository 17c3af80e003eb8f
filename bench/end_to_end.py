"""Item 2, end-to-end overhead: ``launch_agent.py --wait`` against the same ``claude -p`` run directly.

Both run a trivial task on the pinned real CLI against the fake Messages
API on 127.0.0.1, alternately, in the same working folder; the bare run gets
the argument vector the supervisor builds (print mode, stream-json, a new
session ID) and the task on stdin, as the supervisor gives it.  The toolkit's side includes the launch, the supervisor's
start, the stream pump, the record writes and the waiter's wake-up.

    python bench/end_to_end.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid

from common import AGENTS, Row, real_env, table, timed

from claude_orchestrator.claude.invocation import ClaudeOptions, build_argv, cli_env

GOAL = 1.10
TASK = "Reply with the word OK"


def measure(quick: bool = False, rounds: int | None = None) -> list[Row]:
    rounds = rounds or (4 if quick else 10)
    with real_env() as (env, _state, _server), tempfile.TemporaryDirectory(prefix="orch-bench-work-") as work:
        bare_env = cli_env(env)
        bare, wrapped = [], []
        # one unmeasured run of each: the CLI's first start in a config dir does extra work
        timed(build_argv(env["CLAUDE_BIN"], ClaudeOptions(), session_id=str(uuid.uuid4())), bare_env, TASK, cwd=work)
        timed([sys.executable, str(AGENTS / "launch_agent.py"), "warm", "--wait", "--cwd", work, TASK], env)
        for i in range(rounds):
            bare.append(timed(build_argv(env["CLAUDE_BIN"], ClaudeOptions(), session_id=str(uuid.uuid4())), bare_env,
                              TASK, cwd=work))
            wrapped.append(timed([sys.executable, str(AGENTS / "launch_agent.py"), f"e{i}", "--wait", "--cwd", work,
                                  TASK], env))
    ratio = statistics.median(wrapped) / statistics.median(bare)
    ratios = [w / b for b, w in zip(bare, wrapped, strict=True)]
    return [
        Row("2", "`claude -p` run directly (real CLI, fake API)", bare, "ms"),
        Row("2", "`launch_agent.py --wait` of the same task", wrapped, "ms", against="claude -p"),
        Row("2", "  toolkit / bare CLI (ratio of medians; per-round min/max)", ratios, "x", goal=f"<= {GOAL:.2f}x",
            met=ratio <= GOAL, value=ratio),
        Row("2", "  the toolkit's fixed cost per run (difference of medians; per-round min/max)",
            [w - b for b, w in zip(bare, wrapped, strict=True)], "ms",
            value=statistics.median(wrapped) - statistics.median(bare),
            against=f"{GOAL:.2f}x holds for runs over {(statistics.median(wrapped) - statistics.median(bare)) / (GOAL - 1) / 1000:.1f} s"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    print(table(measure(rounds=args.rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
