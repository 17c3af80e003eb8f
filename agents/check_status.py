#!/usr/bin/env python3
"""check_status.py: see `python3 agents/check_status.py --help`; the logic is in claude_orchestrator.cli."""

import sys

try:
    from claude_orchestrator.cli import check_status_main, entry
except ModuleNotFoundError as exc:  # the package is installed by `make install`, not found by path
    print(f"check_status.py: error: {exc}; run `make install` with this python, or use the python it used", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    entry(check_status_main)
