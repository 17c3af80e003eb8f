"""What the toolkit knows of the Claude Code CLI: its options and argument vector,
the features an installed CLI supports, its stream-json events, and their rendering.

Imports only :mod:`..core`.  (Empty of imports: see :mod:`..core`.)
"""
