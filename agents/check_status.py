#!/usr/bin/env python3
"""check_status.py: see `python agents/check_status.py --help`; the logic is in claude_orchestrator.cli."""

from claude_orchestrator.cli import check_status_main, entry

if __name__ == "__main__":
    entry(check_status_main)
