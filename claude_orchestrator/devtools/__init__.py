"""Tools for tests, benchmarks and trials, never on a user's path: the fake
Messages API, a private Slurm cluster in a folder, and ``make demo``.
"""
