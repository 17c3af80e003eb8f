"""What the scripts do, as functions: launch, read back and control runs,
clean up, isolate workspaces, profiles, delegation, scheduling, and watching
the state root.

Imports :mod:`..core`, :mod:`..claude`, :mod:`..records` and :mod:`..executors`.
"""
