"""A run's record: what was asked (the spec), its shape on disk, the status
record and its store, and the one writer of its state (lifecycle).

Imports :mod:`..core` and :mod:`..claude` (the spec holds the CLI's options).
"""
