#!/usr/bin/env python3
"""clear_outputs.py: see `python3 agents/clear_outputs.py --help`; the logic is in claude_orchestrator.cli."""

import sys

try:
    from claude_orchestrator.cli import clear_outputs_main, entry
except ModuleNotFoundError as exc:  # the package is installed by `make install`, not found by path
    print(f"clear_outputs.py: error: {exc}; run `make install` with this python, or use the python it used", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    entry(clear_outputs_main)
