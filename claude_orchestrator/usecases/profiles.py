"""Agent profiles: named sets of launch options kept in a TOML file.

The file is ``agents/profiles.toml`` in the toolkit, or the one
``$ORCHESTRATOR_PROFILES`` names.  Each ``[profiles.NAME]`` table may set
the keys in :data:`KEYS`; explicit command-line flags win over a profile.

Example::

    [profiles.engineer]
    model = "sonnet"
    append_system_prompt = "You are the team's engineer. Make the change, run the tests."
    allowed_tools = "Bash,Edit,Read,Write,Glob,Grep"
    permission_mode = "acceptEdits"
    timeout = 1800
    memory_limit = 3072
    max_turns = 60
    isolation = "worktree"
    executor = "slurm"
    slurm_args = ["--partition=batch", "--cpus-per-task=1"]
    claude_args = ["--effort", "high"]
    aliases = ["developer", "dev"]
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, NotFound
from ..core.paths import TOOLKIT_ROOT
from ..executors.registry import NAMES as EXECUTOR_NAMES
from .isolation import ISOLATIONS

DEFAULT_FILE = TOOLKIT_ROOT / "agents" / "profiles.toml"
#: Allowed keys and the types they take.
KEYS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "append_system_prompt": (str,),
    "append_system_prompt_file": (str,),
    "allowed_tools": (str,),
    "permission_mode": (str,),
    "timeout": (int, float),
    "memory_limit": (int, float),
    "max_turns": (int,),
    "isolation": (str,),
    "executor": (str,),
    "ask_permission": (bool,),
    "question_timeout": (int, float),
    "keep_open": (int, float),
    "on_question": (str,),
    # one "<executor>_args" key per executor (e.g. slurm_args): that executor's options
    **{f"{name}_args": (list,) for name in EXECUTOR_NAMES if name != "local"},
    "claude_args": (list,),
    "aliases": (list,),
    "description": (str,),
}


def profiles_file() -> Path:
    """``$ORCHESTRATOR_PROFILES``, else ``agents/profiles.toml``."""
    env = os.environ.get("ORCHESTRATOR_PROFILES")
    return Path(env).expanduser() if env else DEFAULT_FILE


def load_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """All profiles of the file, validated: ``{name: {key: value}}``.

    ``append_system_prompt_file`` is read (relative to the TOML file) into
    ``append_system_prompt``.  A missing default file (``agents/profiles.toml``)
    or ``path`` means no profiles; a missing file that ``$ORCHESTRATOR_PROFILES``
    names is an error (the user asked for that file).

    Raises:
        BadInput: the file ``$ORCHESTRATOR_PROFILES`` names does not exist; the file
            cannot be read, is not valid TOML (with the parser's line and column), or a
            profile has an unknown key or a value of the wrong type (exit 2: a bad
            profiles file is bad input, as the exit-code table says; 4 is for a
            ``--profile`` that the file does not have).
    """
    if sys.version_info >= (3, 11):
        import tomllib  # only a launch with a profile reads TOML
    else:  # pragma: no cover
        import tomli as tomllib

    from_env = path is None and bool(os.environ.get("ORCHESTRATOR_PROFILES"))
    path = path or profiles_file()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        if from_env:
            raise BadInput(
                f"ORCHESTRATOR_PROFILES names {path}, which does not exist; fix the path, "
                f"or unset it to use {DEFAULT_FILE}"
            ) from None
        return {}
    except OSError as exc:
        raise BadInput(f"cannot read the profiles file {path}: {exc.strerror or exc}; fix it or set ORCHESTRATOR_PROFILES") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise BadInput(f"{path}: not valid TOML: nested too deeply") from None
    unknown_top = set(data) - {"profiles"}
    if unknown_top:
        raise BadInput(f"{path}: unknown top-level key {sorted(unknown_top)[0]!r}; profiles go in [profiles.NAME] tables")
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict):
        raise BadInput(f"{path}: 'profiles' must be a table of [profiles.NAME] tables")
    out: dict[str, dict[str, Any]] = {}
    for name, table in profiles.items():
        where = f"{path}: [profiles.{name}]"
        if not isinstance(table, dict):
            raise BadInput(f"{where} must be a table")
        for key, value in table.items():
            if key not in KEYS:
                raise BadInput(f"{where}: unknown key {key!r}; known keys: {', '.join(KEYS)}")
            if not isinstance(value, KEYS[key]) or (isinstance(value, bool) and bool not in KEYS[key]):
                raise BadInput(f"{where}: {key} must be {' or '.join(t.__name__ for t in KEYS[key])}, not {type(value).__name__}")
            if KEYS[key] == (list,) and not all(isinstance(v, str) for v in value):
                raise BadInput(f"{where}: {key} must be a list of strings")
        if table.get("isolation", "none") not in ISOLATIONS:
            raise BadInput(f"{where}: isolation must be one of {', '.join(ISOLATIONS)}")
        if table.get("executor", "local") not in EXECUTOR_NAMES:
            raise BadInput(f"{where}: executor must be one of {', '.join(EXECUTOR_NAMES)}")
        prof = dict(table)
        prompt_file = prof.pop("append_system_prompt_file", None)
        if prompt_file:
            if "append_system_prompt" in prof:
                raise BadInput(f"{where}: give append_system_prompt or append_system_prompt_file, not both")
            try:
                prof["append_system_prompt"] = (path.parent / prompt_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise BadInput(f"{where}: cannot read append_system_prompt_file {prompt_file!r}: {exc.strerror}") from None
        out[name] = prof
    return out


def role_key(role: str) -> str:
    """A role as a lookup key: lower case, an "Agent" suffix dropped, spaces to '-'.

    ``"Documentation Agent"`` -> ``"documentation"``; ``"QA"`` -> ``"qa"``.
    """
    text = re.sub(r"\s+agent$", "", role.strip(), flags=re.I)
    return re.sub(r"[\s_]+", "-", text.strip().lower())


def find_profile(profiles: dict[str, dict[str, Any]], role: str) -> str | None:
    """The profile for a role or profile name (case-insensitive, "Agent" dropped, aliases), or None."""
    key = role_key(role)
    for name, prof in profiles.items():
        if role_key(name) == key or key in {role_key(a) for a in prof.get("aliases", [])}:
            return name
    return None


def get_profile(name: str, path: Path | None = None) -> dict[str, Any]:
    """The profile called ``name`` (matched as :func:`find_profile` does).

    Raises:
        NotFound: no such profile (exit 4), with the known names.
        BadInput: the file is invalid.
    """
    profiles = load_profiles(path)
    found = find_profile(profiles, name)
    if found is None:
        raise NotFound(f"no profile {name!r} in {path or profiles_file()}; known: {', '.join(profiles) or 'none'}")
    return profiles[found]
