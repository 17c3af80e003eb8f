"""Item 9, talking to a running agent: message delivery latency, and a waiting supervisor's idle CPU.

On the fake CLI (tests/fake_claude.py), which notes the moment it takes each
message from its stdin (``$FAKE_CLAUDE_STAMP_DIR``), so delivery is measured
end to end, as the CLI sees it.  One agent is launched with ``--keep-open``
long, so that after each turn its supervisor waits with stdin and the inbox open.

1. Latency, inbox -> the CLI's stdin: N times, the bench appends a message
   line to the run's inbox as ``message_agent.py`` does (under the agent's
   record lock, one O_APPEND write: ``channel.append_message``); the clock
   starts just before the append (``time.time()``, the lock already held) and
   stops when the fake CLI has read the line.  Each message is sent once the
   previous turn has ended and the supervisor waits again, after a random
   pause of 50 to 300 ms (not in step with the supervisor's 0.25 s loop).
   The supervisor's own log line ("message N written to the CLI's stdin",
   millisecond timestamps, truncated) gives the share that is the supervisor's.
2. The same through ``message_agent.py NAME TEXT``: from starting the process
   to the CLI's read (Python's start and the command's imports included).
3. Idle CPU: the supervisor while its turn has ended and it waits for a
   message (``--keep-open``) and nothing happens: CPU seconds (user + system,
   all its threads) per second of wall time over a window, in % of one core.
   CPU times come in clock ticks (10 ms on Linux): over 20 s one tick is 0.05%.

    python bench/messages.py [--messages 50] [--scripts 10] [--idle 20]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
from common import AGENTS, Row, fake_env, p95, record, script, table, wait_until

from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.records import channel
from claude_orchestrator.records.shape import parse_time, utc_now
from claude_orchestrator.records.status_record import RecordStore

GOAL_P95_MS = 50.0
GOAL_IDLE_CPU = 0.2  # % of one core
NAME = "talk"


def _stamps(folder: Path) -> dict[str, float]:
    """What the fake CLI noted: message text -> when it read it (``time.time()``)."""
    out: dict[str, float] = {}
    for f in folder.glob("*.stamps"):
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue  # a line being written
            out[d["text"]] = d["t"]
    return out


def _written_at(log: Path) -> dict[int, float]:
    """The supervisor's log: message number -> when it wrote it whole to the CLI's stdin (epoch seconds, ms resolution)."""
    out: dict[int, float] = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "written to the CLI's stdin" in line and " supervisor[" in line:
            stamp, _, rest = line.partition(" supervisor[")
            words = rest.split("message ", 1)[-1].split()
            if words and words[0].isdigit() and (t := parse_time(stamp)) is not None:
                out[int(words[0])] = t
    return out


def _waiting(state: Path, answered: int) -> dict | None:
    """The record once ``answered`` messages are answered and the supervisor waits for the next one (keep-open)."""
    r = record(state, NAME)
    if not r or r.get("status") != "running" or not r.get("keep_open_until"):
        return None
    return r if (r.get("messages") or {}).get("answered", 0) >= answered else None


def _read_by_cli(stamps: Path, text: str) -> float:
    return wait_until(lambda: _stamps(stamps).get(text), timeout=30, poll=0.002, what=f"the CLI to read {text!r}")


def measure(quick: bool = False, messages: int | None = None, scripts: int | None = None,
            idle: float | None = None) -> list[Row]:
    n = messages or (20 if quick else 50)
    m = scripts or (3 if quick else 10)
    idle = idle or (10.0 if quick else 20.0)
    rng = random.Random(20)
    with fake_env() as (env, state):
        stamps = state.parent / "stamps"
        stamps.mkdir()
        env["FAKE_CLAUDE_STAMP_DIR"] = str(stamps)
        script(env, "launch_agent", NAME, "--keep-open", "3600", "--timeout", "3600", "bench: wait for messages")
        rec = wait_until(lambda: _waiting(state, 0), what="the agent's first turn to end")
        paths = StatePaths(state)
        store = RecordStore(paths)
        inbox = paths.inbox(NAME, rec["run_id"])
        sup = psutil.Process(rec["supervisor_pid"])

        # 1. inbox -> the CLI's stdin
        sent: dict[int, float] = {}
        direct = []
        for i in range(1, n + 1):
            time.sleep(rng.uniform(0.05, 0.3))
            text = f"bench message {i}"
            with store.locked(NAME):
                t0 = time.time()
                channel.append_message(inbox, channel.message_line(text, utc_now(), "bench"))
            sent[i] = t0
            direct.append((_read_by_cli(stamps, text) - t0) * 1000)
            wait_until(lambda i=i: _waiting(state, i), timeout=30, what=f"message {i}'s turn to end")
        written = _written_at(paths.log(NAME, rec["run_id"]))
        sup_ms = [(written[i] - sent[i]) * 1000 for i in sent if i in written]

        # 2. message_agent.py, from the process's start
        via = []
        for j in range(1, m + 1):
            time.sleep(rng.uniform(0.05, 0.3))
            text = f"bench message_agent {j}"
            t0 = time.time()
            proc = subprocess.Popen([sys.executable, str(AGENTS / "message_agent.py"), NAME, text], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
            via.append((_read_by_cli(stamps, text) - t0) * 1000)
            _, err = proc.communicate(timeout=60)
            if proc.returncode != 0:
                raise SystemExit(f"message_agent.py exited {proc.returncode}: {err.decode(errors='replace').strip()}")
            wait_until(lambda j=j: _waiting(state, n + j), timeout=30, what=f"message_agent {j}'s turn to end")

        # 3. idle CPU while the supervisor waits for a message
        time.sleep(1.0)
        c0, t0 = sup.cpu_times(), time.monotonic()
        time.sleep(idle)
        c1, t1 = sup.cpu_times(), time.monotonic()
        cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0) * 100
        if not _waiting(state, n + m):
            raise SystemExit("the agent stopped waiting during the idle window; the CPU figure would be wrong")
        script(env, "kill_agent", NAME, "--grace", "2")
    return [
        Row("9", "message appended to the inbox -> the CLI has read it", direct, "ms", goal=f"p95 <= {GOAL_P95_MS:g} ms",
            met=p95(direct) <= GOAL_P95_MS, p95=True),
        Row("9", "  of which: append -> supervisor wrote it to stdin (its log, ms)", sup_ms, "ms", p95=True),
        Row("9", "`message_agent.py NAME TEXT` started -> the CLI has read it", via, "ms", p95=True),
        Row("9", f"  supervisor waiting with an open inbox, idle: CPU ({idle:g} s window)", [cpu], "% of a core",
            goal=f"<= {GOAL_IDLE_CPU:g}% of a core", met=cpu <= GOAL_IDLE_CPU),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages, a shorter idle window")
    ap.add_argument("--messages", type=int, help="messages appended to the inbox (default 50; --quick 20)")
    ap.add_argument("--scripts", type=int, help="messages sent with message_agent.py (default 10; --quick 3)")
    ap.add_argument("--idle", type=float, help="seconds of the idle CPU window (default 20; --quick 10)")
    args = ap.parse_args()
    rows = measure(quick=args.quick, messages=args.messages, scripts=args.scripts, idle=args.idle)
    print(table(rows))
    direct = rows[0].samples
    print(f"\ninbox -> CLI read: median {statistics.median(direct):.1f} ms, p95 {p95(direct):.1f} ms (n={len(direct)})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
