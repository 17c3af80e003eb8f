#!/usr/bin/env python3
"""tail_agent.py: see `python3 agents/tail_agent.py --help`; the logic is in claude_orchestrator.cli."""

import sys

try:
    from claude_orchestrator.cli import entry, tail_agent_main
except ModuleNotFoundError as exc:  # the package is installed by `make install`, not found by path
    print(f"tail_agent.py: error: {exc}; run `make install` with this python, or use the python it used", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    entry(tail_agent_main)
