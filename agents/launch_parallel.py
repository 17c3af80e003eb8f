#!/usr/bin/env python3
"""launch_parallel.py: see `python3 agents/launch_parallel.py --help`; the logic is in claude_orchestrator.commands."""

import _bootstrap  # beside this script: runs it under the python `make install` recorded, from any python3

if __name__ == "__main__":
    _bootstrap.run("launch_parallel")
