"""Tools for tests, benchmarks and trials, never on a user's path: the fake
Messages API, a private Slurm cluster in a folder, ``make demo``, and
``offline`` (the fake API and a CLI config with the first run behind it, to
try the toolkit, ``make orchestrator`` included, without the network).
"""
