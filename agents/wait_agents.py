#!/usr/bin/env python3
"""wait_agents.py: see `python3 agents/wait_agents.py --help`; the logic is in claude_orchestrator.cli."""

import sys

try:
    from claude_orchestrator.cli import entry, wait_agents_main
except ModuleNotFoundError as exc:  # the package is installed by `make install`, not found by path
    print(f"wait_agents.py: error: {exc}; run `make install` with this python, or use the python it used", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    entry(wait_agents_main)
