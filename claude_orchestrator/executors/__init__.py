"""Where a run's supervisor runs: the executor interface (:mod:`.base`), the
registry of executors by name (:mod:`.registry`), and each executor
(:mod:`.local`, :mod:`.slurm` with the Slurm commands in :mod:`.slurm_commands`).

Every name of a particular scheduler lives here.  Imports :mod:`..core` and
:mod:`..records`.  (Empty of imports: an executor module is loaded only when a
run asks for it.)
"""
