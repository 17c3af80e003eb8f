#!/usr/bin/env python3
"""resume_agent.py: see `python agents/resume_agent.py --help`; the logic is in claude_orchestrator.cli."""

from claude_orchestrator.cli import entry, resume_agent_main

if __name__ == "__main__":
    entry(resume_agent_main)
