"""The bottom layer: the toolkit's vocabulary and its use of the operating system.

States and exit codes, errors, every path of the state root, atomic file
writes, locks, processes, and a run's limits.  Nothing here imports another
layer of the package; everything else may import from here.  (Empty of
imports: a subpackage's ``__init__`` must not slow the launch path.)
"""
