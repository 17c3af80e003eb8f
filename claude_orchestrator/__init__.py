"""claude_orchestrator: run many background ``claude -p`` jobs, coordinated through files.

The package in layers, one folder each, each importing only those below it
(``tests/test_layers.py``): :mod:`.core` (states, errors, paths, atomic
writes, locks, processes, limits), :mod:`.claude` (the Claude CLI: its argument
vector, features, stream-json), :mod:`.records` (the run's spec, the status
record and its store, the one writer of its state), :mod:`.executors` (where a
run's supervisor runs: local, Slurm), :mod:`.usecases` (launch, control,
cleanup, ...), :mod:`.supervisor` (the detached process that owns a run),
:mod:`.commands` (one module per script: ``agents/*.py`` and the console
commands ``orch-*`` call their ``main``); :mod:`.devtools` serves the tests.
"""

__version__ = "0.1.0"
