"""claude_orchestrator: run many background ``claude -p`` jobs, coordinated through files.

The scripts in ``agents/`` are thin wrappers around :mod:`claude_orchestrator.cli`.
Everything they share lives here: the state directory's paths (:mod:`.paths`),
run states (:mod:`.states`), the status record and its atomic store
(:mod:`.record`), the Claude CLI's argument vector (:mod:`.claude_cli`), the
launcher (:mod:`.launcher`) and the detached supervisor (:mod:`.supervisor`).
"""

__version__ = "0.1.0"
