"""The shape a status record must have to be trusted: every file under the state root is untrusted input.

:func:`check_shape` checks parsed JSON against the types every reader relies
on, so that a record that passes can be shown, waited on, stopped and cleared
without a type error; :data:`SPARSE` gives the optional fields' types.  Also
the record's time format (:func:`utc_now`, :func:`parse_time`).  Standard
library only: this is on every reader's path.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from ..core.paths import NAME_RE
from ..core.states import State


def utc_now(t: float | None = None) -> str:
    """The current time (or ``t``, seconds since the epoch) as ISO-8601 UTC with milliseconds, e.g. ``2026-11-20T23:03:01.123Z``."""
    moment = datetime.now(timezone.utc) if t is None else datetime.fromtimestamp(t, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an ISO-8601 time written by :func:`utc_now`, or None."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


#: An executor name whose stored keys (``<name>_args``, ``<name>_job_id``) may be derived from it.
_EXECUTOR_NAME = re.compile(r"[a-z][a-z0-9]{0,31}")


def executor_args(options: dict[str, Any], executor: str) -> tuple[str, ...] | None:
    """The executor's own options stored in ``options`` (``<executor>_args``), or None if there are
    none or they are not a list of strings (kept then among the unknown keys, not trusted)."""
    key = executor_args_key(executor)
    value = options.get(key) if key else None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def executor_args_key(executor: str) -> str | None:
    """The ``options`` key of an executor's own options: ``<executor>_args`` (``slurm_args``), or None
    for a name that is not a plain lower-case word (a record is untrusted input)."""
    return f"{executor}_args" if _EXECUTOR_NAME.fullmatch(executor) else None


def executor_ref_key(executor: str) -> str | None:
    """The record's key of the reference an executor gave a run: ``<executor>_job_id`` (``slurm_job_id``),
    or None for a name that is not a plain lower-case word."""
    return f"{executor}_job_id" if _EXECUTOR_NAME.fullmatch(executor) else None


_STR = (str,)
_NUM = (int, float)
#: Optional fields written only when set, with their types.  Schema 1 kept them
#: among the unknown keys unchecked, so one of the wrong type is not an error:
#: it stays an unknown key (:meth:`.status_record.StatusRecord.from_dict`).
SPARSE: dict[str, tuple[type, ...]] = {
    "stop_reason": _STR, "isolation": _STR, "worktree": (dict,), "slot_granted_at": _NUM, "tree": (list,),
    "orphans": (list,), "orphans_stopped": (list,), "stop_grace_s": _NUM, "api_error_status": (int,),
    "stopped_after_result": (bool,), "on_complete": (dict,), "stream_lines_skipped": (int,),
    "transcript_bytes_lost": (int,), "messages": (dict,), "keep_open_until": _STR, "waiting_for": (dict,),
    "questions": (dict,), "entered": (dict,),
}
#: The type of each field a reader relies on (None is allowed for every one except those in _REQUIRED_TYPES).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    **{k: _STR for k in ("created", "started", "finished", "status_changed", "last_activity", "cwd", "model",
                         "session_id", "resumed_from", "forked_from", "error", "result", "output_file",
                         "transcript_file", "log_file", "task_file")},
    **{k: _NUM for k in ("duration_s", "pid_started", "supervisor_started", "cost_usd", "peak_rss_mb")},
    **{k: (int,) for k in ("pid", "supervisor_pid", "exit_code")},
    "is_error": (bool,),
    "last_tool": (dict,),
    "tokens": (dict,),
    "usage": (dict,),
}
_REQUIRED_TYPES: dict[str, tuple[type, ...]] = {
    "agent": _STR, "run_id": _STR, "task": _STR, "status": _STR, "schema": (int,), "attempt": (int,),
    "num_turns": (int,), "memory_warnings": (list,), "options": (dict,),
}

#: Both, as ``key -> (types, None allowed)``: one look-up per key of every record read.
_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    **{k: (t, True) for k, t in _FIELD_TYPES.items()}, **{k: (t, False) for k, t in _REQUIRED_TYPES.items()},
}


def is_type(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not a number, nor is an infinite or NaN float (JSON's 1e400).

    JSON gives exact types, so the exact type is looked up first: this runs
    for every field of every record a reader reads (a bench figure).
    """
    kind = type(value)
    if kind is bool:
        return bool in types
    if kind is float:
        return float in types and math.isfinite(value)
    if kind in types:
        return True
    return isinstance(value, types) and not isinstance(value, (bool, float))


def check_shape(data: Any) -> None:
    """Check that ``data`` (parsed JSON) has the shape of a status record, as far as any reader relies on it.

    Every file under the state root is untrusted input: a record that passes
    can be shown, waited on, stopped and cleared without a type error.

    Raises:
        ValueError: what is wrong, in a few words (e.g. ``'num_turns' is a str, not an int``).
    """
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__}, not an object")
    if "agent" not in data:
        raise ValueError("no 'agent' field")
    for key, value in data.items():
        known = _TYPES.get(key)
        if known is None:
            continue
        types, nullable = known
        if value is None and nullable:
            continue
        if not is_type(value, types):
            what = "not a finite number" if isinstance(value, float) else f"a {type(value).__name__}"
            raise ValueError(f"{key!r} is {what}, not {' or '.join(t.__name__ for t in types)}")
    if not NAME_RE.fullmatch(data["agent"]):
        raise ValueError(f"'agent' {data['agent'][:80]!r} is not an agent name")
    if "status" in data:
        try:
            State(data["status"])
        except ValueError:
            raise ValueError(f"'status' {data['status'][:40]!r} is not a known state") from None
    _check_options(data.get("options") or {})
    tree = data.get("tree")
    if tree is not None and not isinstance(tree, list):
        raise ValueError("'tree' is not a list")
    worktree = data.get("worktree")
    if worktree is not None and not (isinstance(worktree, dict) and all(isinstance(worktree.get(k), str) for k in ("path", "branch", "repo"))):
        raise ValueError("'worktree' lacks its path, branch or repo")
    tokens = data.get("tokens")
    if tokens is not None and not all(is_type(tokens.get(k), (int,)) for k in ("input", "output")):
        raise ValueError("'tokens' lacks a whole number of input or output tokens")
    for key in ("created", "started", "finished", "status_changed", "last_activity"):
        if data.get(key) is not None and parse_time(data[key]) is None:
            raise ValueError(f"{key!r} is not an ISO-8601 time")
    if not all(isinstance(v, str) for v in (data.get("last_tool") or {}).values()):
        raise ValueError("'last_tool' holds a value that is not a string")


def _check_options(options: dict[str, Any]) -> None:
    """The launch request's parts that readers and the supervisor use (see :mod:`..usecases.launch`)."""
    for key in ("claude", "limits"):
        if not isinstance(options.get(key) or {}, dict):
            raise ValueError(f"'options.{key}' is not an object")
    limits = options.get("limits") or {}
    if not all(v is None or is_type(v, _NUM) for v in limits.values()):
        raise ValueError("'options.limits' holds a value that is not a number")
    claude = options.get("claude") or {}
    if claude.get("max_budget_usd") is not None and not is_type(claude["max_budget_usd"], _NUM):
        raise ValueError("'options.claude.max_budget_usd' is not a number")
    # not ``<executor>_args``: an executor's own options are its own to read (a newer toolkit's may not be
    # a list); one that is not a list of strings is kept among the unknown keys (:meth:`.spec.RunSpec.from_dict`)
    for key, holder in (("after", options), ("on_complete", options), ("claude_args", claude)):
        value = holder.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise ValueError(f"{key!r} is not a list of strings")
    for key in ("claude_bin", "context_from", "profile", "cwd", "isolation", "resume_id", "session_cwd", "forked_from", "executor"):
        if options.get(key) is not None and not isinstance(options[key], str):
            raise ValueError(f"'options.{key}' is not a string")
