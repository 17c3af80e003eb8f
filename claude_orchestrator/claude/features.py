"""What the installed Claude CLI supports, detected from its own ``--help``, cached per binary.

Users run whatever CLI they have; the toolkit must neither pass a flag an
older CLI rejects nor refuse a value a newer CLI accepts.  Facts verified
offline (docs/how-it-works.md):

- 2.1.330 records a conversation's system prompt once and reuses it on every
  resume and fork (``--system-prompt-snapshot on``, its default), whatever
  ``--append-system-prompt`` a later run passes; ``off`` restores the
  2.1.197 behaviour.  2.1.197 rejects the flag as unknown.
- ``--permission-mode``'s choices differ: 2.1.197 has ``default``, 2.1.330
  calls it ``manual`` (and still accepts ``default``).  ``--help`` lists them
  as ``(choices: "acceptEdits", ...)``.

Detection runs in the supervisor, never on the launch path: ``claude
--version`` (10-200 ms) and ``claude --help`` (about 0.2 s) once per binary.
What they say is cached in ``status/.cli/<key>.json`` under the state root,
keyed by the resolved path of the executable with its size and modification
time.  The launcher only reads an entry that is already there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from ..core.errors import OrchestratorError
from ..core.files import write_atomic
from ..core.paths import StatePaths

#: The flag that turns 2.1.330's system-prompt snapshot off.
SNAPSHOT_FLAG = "--system-prompt-snapshot"
#: Seconds ``--version`` or ``--help`` may take before detection gives up (features unknown).
PROBE_TIMEOUT_S = 30.0
#: Bump when the cached shape or the parsing changes: old entries are then detected again.
CACHE_VERSION = 1

_OPTION_RE = re.compile(r"^ {2}(?:-[A-Za-z], )?(--[A-Za-z][A-Za-z0-9-]*)", re.M)
_CHOICES_RE = re.compile(r"\(choices:\s*((?:\"[^\"]*\"(?:,\s*)?)+)")


@dataclasses.dataclass(frozen=True)
class CliFeatures:
    """What one CLI binary accepts.

    Attributes:
        version: the first line of ``claude --version``, e.g. ``2.1.330 (Claude Code)``; None if unknown.
        options: the long options its ``--help`` defines, e.g. ``{"--model", ...}``; empty if unknown.
        permission_modes: ``--permission-mode``'s choices as ``--help`` lists them; empty if unknown.
    """

    version: str | None = None
    options: frozenset[str] = frozenset()
    permission_modes: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """True if ``--help`` could be read (otherwise nothing optional is passed)."""
        return bool(self.options)

    @property
    def system_prompt_snapshot(self) -> bool:
        """True if the CLI has ``--system-prompt-snapshot`` (2.1.330 and later)."""
        return SNAPSHOT_FLAG in self.options

    def permission_mode(self, asked: str) -> str:
        """The value to pass for ``--permission-mode asked`` on this CLI.

        ``manual`` and ``default`` name the same mode (2.1.330 renamed it), so
        either is translated to the one this CLI lists.  Anything else is
        passed as it is.
        """
        modes = self.permission_modes
        if asked in modes or not modes:
            return asked
        for a, b in (("manual", "default"), ("default", "manual")):
            if asked == a and b in modes:
                return b
        return asked

    def refuse_permission_mode(self, asked: str) -> str | None:
        """One line saying why this CLI would refuse the mode, or None if it takes it (or cannot tell)."""
        modes = self.permission_modes
        if not modes or self.permission_mode(asked) in modes:
            return None
        cli = f"the Claude CLI {self.version}" if self.version else "the Claude CLI"
        return f"permission mode {asked!r} is not one {cli} accepts; use one of: {', '.join(modes)}"

    def to_dict(self) -> dict:
        return {"version": self.version, "options": sorted(self.options), "permission_modes": list(self.permission_modes)}

    @classmethod
    def from_dict(cls, data: dict) -> CliFeatures:
        """Build from a cache entry; raises ValueError/TypeError/KeyError on a malformed one."""
        version = data["version"]
        options = data["options"]
        modes = data["permission_modes"]
        if not (version is None or isinstance(version, str)) or not isinstance(options, list) or not isinstance(modes, list):
            raise ValueError("malformed CLI features")
        return cls(version, frozenset(str(o) for o in options), tuple(str(m) for m in modes))


def parse_help(text: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """The long options a ``claude --help`` text defines, and ``--permission-mode``'s choices.

    Only option definitions count (lines indented like commander's option
    list), not mentions of a flag inside another option's description.
    """
    options = frozenset(_OPTION_RE.findall(text))
    modes: tuple[str, ...] = ()
    start = text.find("--permission-mode ")
    if start >= 0:
        end = _OPTION_RE.search(text, start + 1)
        section = text[start : end.start() if end else len(text)]
        m = _CHOICES_RE.search(section)
        if m:
            modes = tuple(re.findall(r"\"([^\"]*)\"", m.group(1)))
    return options, modes


def _cache_key(claude: str) -> tuple[str, Path] | None:
    """``(key, resolved binary)`` for the cache, or None if the binary cannot be stat'ed."""
    real = Path(os.path.realpath(claude))
    try:
        st = real.stat()
    except OSError:
        return None
    digest = hashlib.sha256(f"{CACHE_VERSION}\0{real}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:20]
    return digest, real


def cached_features(paths: StatePaths, claude: str) -> CliFeatures | None:
    """The cached features of ``claude``, or None if none are cached (never runs the CLI)."""
    key = _cache_key(claude)
    return None if key is None else _read_entry(paths.cli_features(key[0]))


def _read_entry(entry: Path) -> CliFeatures | None:
    """The features cached in ``entry``, or None if it is absent or not an entry (a file under the state root is untrusted)."""
    try:
        return CliFeatures.from_dict(json.loads(entry.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError):  # a bad cache entry is no entry
        return None


def _probe(claude: str, arg: str, env: dict[str, str]) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 - an argument vector, no shell
            [claude, arg], stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S, env=env,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", "replace")


def _first_line(text: str | None) -> str | None:
    lines = (text or "").strip().splitlines()
    return lines[0].strip() if lines else None


def detect_features(paths: StatePaths, claude: str, env: dict[str, str] | None = None) -> CliFeatures:
    """The features of ``claude``: from the cache if it has them, else from its ``--version`` and ``--help``.

    The cache entry is keyed by the executable's resolved path, size and
    modification time (an upgrade writes a new file: a new key), and holds the
    version with what ``--help`` said; a run whose entry is there starts no
    Node process before its CLI (``--version`` alone took 10-200 ms of every
    run).  A version manager's shim that switches versions without changing
    the file is caught afterwards: the supervisor compares the version the
    CLI's init event reports with the entry's (:func:`same_version`) and, if
    they differ, drops the entry (:func:`forget`), so the next run asks again.
    Concurrent callers (a fan-out's supervisors) ask once: the probe runs under
    a file lock beside the cache entry, and the others then read the entry.  A
    probe that fails is not cached: the next run tries again, and meanwhile
    nothing optional is passed to the CLI.  Never raises for a bad CLI; an
    unwritable cache only means the next run probes again.
    """
    key = _cache_key(claude)
    if key is None:
        return CliFeatures()
    entry = paths.cli_features(key[0])
    found = _read_entry(entry)
    if found is not None and found.version:
        return found
    probe_env = env if env is not None else dict(os.environ)
    # here: only a cache miss locks, so a supervisor of a known CLI never loads filelock (logging, secrets, decimal)
    from filelock import FileLock, Timeout

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(entry) + ".lock", timeout=2 * PROBE_TIMEOUT_S + 5)
        lock.acquire()
    except (OSError, Timeout):
        lock = None
    try:
        found = _read_entry(entry)
        if found is not None and found.version:
            return found
        version = _first_line(_probe(claude, "--version", probe_env))
        if version is None:
            return CliFeatures()
        options, modes = parse_help(_probe(claude, "--help", probe_env) or "")
        features = CliFeatures(version, options, modes)
        if features.known:
            try:
                write_atomic(entry, json.dumps(dict(features.to_dict(), binary=str(key[1])), indent=1) + "\n", durable=False)
            except OrchestratorError:  # a full or read-only state root (StorageError): the next run asks again
                pass
        return features
    finally:
        if lock is not None:
            lock.release()


def same_version(cached: str | None, reported: object) -> bool:
    """Whether the init event's ``claude_code_version`` (``2.1.332``; 2.1.197 and 2.1.332 send it) is the
    version a cache entry holds (``--version``'s first line, ``2.1.332 (Claude Code)``).  True when either
    is unknown or not a version's shape: only a version seen to differ says the entry is stale."""
    if not cached or not isinstance(reported, str) or not re.fullmatch(r"[0-9][0-9A-Za-z.+-]{0,63}", reported):
        return True
    return cached.split()[0] == reported


def forget(paths: StatePaths, claude: str) -> None:
    """Drop ``claude``'s cache entry (its CLI reported another version than the entry's): the next run probes again."""
    key = _cache_key(claude)
    if key is not None:
        try:
            paths.cli_features(key[0]).unlink()
        except OSError:
            pass
