"""Launch return time: ``launch_agent.py`` against ``python3 -c pass``, side by side.

Each round runs both commands alternately (so machine noise hits both alike)
and reports medians, min and max in milliseconds.  The agent runs the fake
``claude`` from tests/ (it answers at once), so only the launch is measured.

    python bench/launch_return.py [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _time(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake = Path(tmp) / "claude"
        fake.write_text(f"#!{sys.executable}\n" + (ROOT / "tests" / "fake_claude.py").read_text())
        fake.chmod(0o755)
        env = dict(os.environ, ORCHESTRATOR_HOME=str(Path(tmp) / "state"), CLAUDE_BIN=str(fake))
        base, launch = [], []
        for i in range(args.rounds):
            base.append(_time([sys.executable, "-c", "pass"], env))
            launch.append(_time([sys.executable, str(ROOT / "agents" / "launch_agent.py"), f"b{i}", "hello"], env))
        time.sleep(2)  # let the last supervisors finish before the folder goes
    for label, xs in (("python3 -c pass", base), ("launch_agent.py", launch)):
        print(f"{label:18} median {statistics.median(xs):6.1f} ms  min {min(xs):6.1f}  max {max(xs):6.1f}")
    print(f"ratio (medians)    {statistics.median(launch) / statistics.median(base):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
