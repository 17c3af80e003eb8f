"""A run's limits: timeout, kill grace, memory, parallel slots, retries.

Defaults: 600 s, 10 s grace, 2048 MiB, 4 slots, no retries (issue 3); the
environment can change three of them (``ORCHESTRATOR_TIMEOUT``,
``ORCHESTRATOR_MAX_PARALLEL``, ``ORCHESTRATOR_MEMORY_LIMIT``).  Memory levels
are claude-mpm's from the seeds: warn at 50 %, critical at 80 %, stop at 100 %.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from .errors import BadInput

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_KILL_GRACE_S = 10.0
DEFAULT_MEMORY_LIMIT_MB = 2048.0
DEFAULT_MAX_PARALLEL = 4
DEFAULT_RETRY_BACKOFF_S = 2.0
#: Fractions of the memory limit that are logged and kept in ``memory_warnings``.
MEMORY_LEVELS = (("warning", 0.5), ("critical", 0.8))
#: HTTP statuses of API errors worth another attempt (rate limit, server errors, overloaded).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 529})
RETRYABLE_TEXT = re.compile(r"\b(?:429|500|502|503|529)\b|overloaded|rate.?limit", re.I)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise BadInput(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise BadInput(f"{name}={raw!r} must be 0 or more")
    return value


@dataclasses.dataclass
class RunLimits:
    """What the supervisor enforces.  Stored in the record's ``options["limits"]``.

    Attributes:
        timeout_s: seconds of the run's work, from the CLI's start to SIGTERM of its tree, less the
            time it waits on the master (idle after a turn with ``--keep-open``, a permission
            question pending), which ``--keep-open`` and ``--question-timeout`` bound; 0 = none.
        kill_grace_s: seconds between SIGTERM and SIGKILL; also how long a CLI
            may linger after its result event.
        memory_limit_mb: tree RSS (MiB) at which the run is stopped; 0 = none.
        max_parallel: slots shared by all runs of the state root; 0 = unlimited.
        retries: extra attempts after a retryable API error.
        retry_backoff_s: the first backoff; it doubles on each further attempt.
    """

    timeout_s: float = DEFAULT_TIMEOUT_S
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    memory_limit_mb: float = DEFAULT_MEMORY_LIMIT_MB
    max_parallel: int = DEFAULT_MAX_PARALLEL
    retries: int = 0
    retry_backoff_s: float = DEFAULT_RETRY_BACKOFF_S

    @classmethod
    def from_env(cls, **overrides: Any) -> RunLimits:
        """Defaults from ``ORCHESTRATOR_TIMEOUT``, ``ORCHESTRATOR_MAX_PARALLEL`` and
        ``ORCHESTRATOR_MEMORY_LIMIT``, then ``overrides`` that are not None.

        Raises:
            BadInput: an environment value or override is not a number >= 0.
        """
        limits = cls(
            timeout_s=_env_number("ORCHESTRATOR_TIMEOUT", DEFAULT_TIMEOUT_S),
            memory_limit_mb=_env_number("ORCHESTRATOR_MEMORY_LIMIT", DEFAULT_MEMORY_LIMIT_MB),
            max_parallel=int(_env_number("ORCHESTRATOR_MAX_PARALLEL", DEFAULT_MAX_PARALLEL)),
        )
        for key, value in overrides.items():
            if value is not None:
                setattr(limits, key, value)
        limits.validate()
        return limits

    def validate(self) -> None:
        """Raises :class:`BadInput` for a negative value."""
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise BadInput(f"--{f.name.replace('_s', '').replace('_mb', '').replace('_', '-')} must be 0 or more")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RunLimits:
        names = cls.__dataclass_fields__  # a dict keyed by field name, built once with the class
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


def is_retryable(api_error_status: Any, error: str | None) -> bool:
    """True for a rate-limit, server or overload error (by status, else by its text)."""
    try:
        if int(api_error_status) in RETRYABLE_STATUSES:
            return True
    except (TypeError, ValueError):
        pass
    return bool(error and RETRYABLE_TEXT.search(error))
