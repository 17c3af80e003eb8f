#!/usr/bin/env python3
"""report_agents.py: see `python3 agents/report_agents.py --help`; the logic is in claude_orchestrator.commands."""

import _bootstrap  # beside this script: runs it under the python `make install` recorded, from any python3

if __name__ == "__main__":
    _bootstrap.run("report_agents")
