#!/usr/bin/env python3
"""launch_agent.py: see `python agents/launch_agent.py --help`; the logic is in claude_orchestrator.cli."""

from claude_orchestrator.cli import entry, launch_agent_main

if __name__ == "__main__":
    entry(launch_agent_main)
