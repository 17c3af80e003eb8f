#!/usr/bin/env python3
"""answer_agent.py: see `python3 agents/answer_agent.py --help`; the logic is in claude_orchestrator.commands."""

import _bootstrap  # beside this script: runs it under the python `make install` recorded, from any python3

if __name__ == "__main__":
    _bootstrap.run("answer_agent")
