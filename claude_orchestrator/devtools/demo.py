"""``make demo``: the whole core path offline, on the real Claude CLI.

Starts the fake Messages API on a free loopback port, launches three agents
in parallel (each writes a file through a Bash tool call), waits for them,
prints the status table and the results, resumes one agent and shows that it
kept its conversation, then stops the server.  Everything lives in a fresh
temp folder with its own ``CLAUDE_CONFIG_DIR``: the user's ``~/.claude`` and
the toolkit's own state folders are never touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..claude.invocation import find_claude
from ..core.errors import OrchestratorError
from ..core.paths import TOOLKIT_ROOT, StatePaths
from ..records.status_record import RecordStore
from ..usecases.control import wait_for
from .fake_api import serve_in_thread, user_prompt

AGENTS = TOOLKIT_ROOT / "agents"


def _script(env: dict[str, str], script: str, *args: str) -> subprocess.CompletedProcess:
    shown = " ".join(shlex.quote(a) for a in (f"agents/{script}.py", *args))
    print(f"\n$ python {shown}")
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(AGENTS / f"{script}.py"), *args], env=env, text=True, capture_output=True, stdin=subprocess.DEVNULL)
    took = time.monotonic() - started
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    print(f"  (exit status {done.returncode}, returned in {took:.2f} s)")
    return done


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 if every agent completed and the resume kept its context."""
    parser = argparse.ArgumentParser(prog="python -m claude_orchestrator.devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the demo's temp folder (default: delete it)")
    args = parser.parse_args(argv)
    wall = time.monotonic()
    try:
        claude = find_claude()
    except OrchestratorError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return int(exc.exit_code)

    tmp = Path(tempfile.mkdtemp(prefix="orchestrator-demo-"))
    state, work, config = tmp / "state", tmp / "workspace", tmp / "claude-config"
    for d in (state, work, config):
        d.mkdir()
    server = serve_in_thread()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(
        ORCHESTRATOR_HOME=str(state),
        CLAUDE_BIN=claude,
        CLAUDE_CONFIG_DIR=str(config),
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="offline-demo",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
    )
    print(f"fake Messages API on {server.url}; state root {state}; agents work in {work}")
    ok = True
    try:
        tasks = [
            f"Write the {word} file. [[bash: echo '{word} written by the agent' > {word}.txt && cat {word}.txt]]"
            for word in ("alpha", "beta", "gamma")
        ]
        launched = _script(env, "launch_parallel", "--cwd", str(work), "--allowed-tools", "Bash", *tasks)
        if launched.returncode != 0:
            return launched.returncode

        store = RecordStore(StatePaths(state))
        print("\nwaiting for the three agents ...")
        recs = wait_for(store, ["agent1", "agent2", "agent3"], timeout=180)
        if recs is None:
            print("demo: the agents did not finish within 180 s", file=sys.stderr)
            return 1
        _script(env, "check_status")
        for rec in recs:
            print(f"\n--- outputs/{rec.agent}_latest.txt ---\n{Path(rec.output_file).read_text().strip()}")
        print("\n--- files the agents wrote ---")
        for f in sorted(work.iterdir()):
            print(f"{f.name}: {f.read_text().strip()}")
        ok = all(str(r.status) == "completed" for r in recs) and len(list(work.iterdir())) == 3

        question = "Which file did you write before? [[reply: I wrote alpha.txt earlier in this session.]]"
        resumed = _script(env, "resume_agent", "agent1", "--wait", question)
        first = next((b for b in server.messages_requests() if user_prompt(b) == question), None)
        history = json.dumps(first["messages"]) if first else ""
        kept = "Write the alpha file" in history and "alpha written by the agent" in history
        print(f"\nthe resumed run's first request carried {len(first['messages']) if first else 0} messages, "
              f"{'including' if kept else 'WITHOUT'} the first run's task and tool result")
        ok = ok and resumed.returncode == 0 and kept
        _script(env, "check_status")
    finally:
        server.shutdown()
        server.server_close()
        if args.keep:
            print(f"\nkept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ndemo {'passed' if ok else 'FAILED'} in {time.monotonic() - wall:.1f} s wall time")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
