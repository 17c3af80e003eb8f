#!/usr/bin/env python3
"""launch_parallel.py: see `python agents/launch_parallel.py --help`; the logic is in claude_orchestrator.cli."""

from claude_orchestrator.cli import entry, launch_parallel_main

if __name__ == "__main__":
    entry(launch_parallel_main)
