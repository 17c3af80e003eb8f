#!/usr/bin/env python3
"""clear_outputs.py: see `python agents/clear_outputs.py --help`; the logic is in claude_orchestrator.cli."""

from claude_orchestrator.cli import clear_outputs_main, entry

if __name__ == "__main__":
    entry(clear_outputs_main)
