"""Supervision costs, on the real CLI against the fake API.

1. Footprint: a supervisor's RSS and CPU (seconds of CPU per second) while
   its agent idles (the CLI waits on a slow API reply), next to the CLI's RSS.
2. Stop latency: from running ``kill_agent.py NAME`` to the moment no process
   of the run's tree is left (the real CLI exits on SIGTERM).

    python bench/supervision.py [--idle 10] [--kills 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from claude_orchestrator.claude_cli import find_claude
from claude_orchestrator.fake_api import serve_in_thread

ROOT = Path(__file__).resolve().parent.parent


def _script(env, *args):
    return subprocess.run([sys.executable, str(ROOT / "agents" / f"{args[0]}.py"), *args[1:]], env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)


def _record(state: Path, name: str) -> dict | None:
    try:
        return json.loads((state / "status" / f"{name}.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def _wait(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise SystemExit("timed out")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=float, default=10.0, help="seconds to watch an idle agent")
    ap.add_argument("--kills", type=int, default=5, help="stop-latency samples")
    args = ap.parse_args()
    server = serve_in_thread()
    with tempfile.TemporaryDirectory() as tmp:
        state, config = Path(tmp) / "state", Path(tmp) / "config"
        config.mkdir()
        env = dict(os.environ, ORCHESTRATOR_HOME=str(state), CLAUDE_BIN=find_claude(), CLAUDE_CONFIG_DIR=str(config),
                   ANTHROPIC_BASE_URL=server.url, ANTHROPIC_API_KEY="bench", CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1")
        env.pop("CLAUDECODE", None)
        # 1. footprint while idle
        _script(env, "launch_agent", "idle", f"[[delay: {args.idle + 20}]] wait")
        rec = _wait(lambda: (r := _record(state, "idle")) and r.get("pid") and r)
        sup, cli = psutil.Process(rec["supervisor_pid"]), psutil.Process(rec["pid"])
        _wait(lambda: len(server.messages_requests()) > 0)  # the CLI is now waiting on the API
        time.sleep(1.0)
        c0, t0 = sup.cpu_times(), time.monotonic()
        rss_sup, rss_cli = [], []
        while time.monotonic() - t0 < args.idle:
            rss_sup.append(sup.memory_info().rss / 2**20)
            rss_cli.append(sum(p.memory_info().rss for p in [cli, *cli.children(recursive=True)]) / 2**20)
            time.sleep(0.5)
        c1, t1 = sup.cpu_times(), time.monotonic()
        cpu = (c1.user + c1.system - c0.user - c0.system) / (t1 - t0)
        _script(env, "kill_agent", "idle", "--grace", "5")
        print(f"supervisor RSS      median {statistics.median(rss_sup):7.1f} MiB")
        print(f"CLI tree RSS        median {statistics.median(rss_cli):7.1f} MiB")
        print(f"supervisor/CLI RSS  {statistics.median(rss_sup) / statistics.median(rss_cli):.1%}")
        print(f"supervisor CPU      {cpu * 100:.2f}% of a core while idle ({args.idle:g} s)")
        # 2. stop latency
        lat = []
        for i in range(args.kills):
            name = f"k{i}"
            _script(env, "launch_agent", name, "[[delay: 60]] wait")
            rec = _wait(lambda n=name: (r := _record(state, n)) and r.get("pid") and r)
            _wait(lambda n=name: (r := _record(state, n)) and r.get("session_id") and os.path.getsize(r["transcript_file"]) > 0)
            tree = [psutil.Process(rec["pid"]), *psutil.Process(rec["pid"]).children(recursive=True)]
            t0 = time.monotonic()
            subprocess.Popen([sys.executable, str(ROOT / "agents" / "kill_agent.py"), name], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            _, alive = psutil.wait_procs(tree, timeout=30)
            lat.append((time.monotonic() - t0) * 1000)
            assert not alive
            _wait(lambda n=name: (r := _record(state, n)) and r["status"] == "killed")
        print(f"kill_agent -> dead tree  median {statistics.median(lat):6.0f} ms  min {min(lat):6.0f}  max {max(lat):6.0f}  (n={len(lat)})")
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
