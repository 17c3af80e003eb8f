"""Every path of the state directory, built in one place.

The state root is ``$ORCHESTRATOR_HOME`` if set, else the toolkit's own root
(the folder that holds ``agents/``).  Tests point the whole toolkit elsewhere
by setting that one variable.

Layout (docs/files.md)::

    status/<agent>.json              the agent's current record
    status/<agent>.json.lock         its lock file (kept, never deleted)
    status/<agent>.supervisor.lock   held by the run's supervisor for its whole life
    status/.slots/slot-<k>.lock      held by each run that occupies a parallel slot
    status/.queue/<seq>-<agent>      one entry per queued run, in FIFO order
    status/.queue.lock               guards taking slots and the queue
    status/.cli/<key>.json           what a Claude CLI binary supports (cli_features)
    status/.errors/                  the traceback of each internal error (exit 70)
    sessions/<agent>_session.txt     the Claude session ID, one line
    outputs/<agent>_latest.txt       the result text of the latest run
    outputs/<agent>/<run_id>.jsonl   the run's stream-json transcript
    outputs/<agent>/<run_id>.log     the CLI's stderr and the supervisor's log
    outputs/<agent>/<run_id>.task    the run's task, byte-exact (the CLI's first message)
    outputs/<agent>/<run_id>.channel/  messages in, permission questions out (records/channel.py)
    outputs/archive/<timestamp>/     what clear_outputs moved aside
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import BadInput
from .modes import dir_mode

#: An agent's name (docs/files.md): a letter or digit, then up to 63 of ``[A-Za-z0-9_.-]``.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: A run ID's shape where it names a file or folder (letters, digits, ``_``, ``-``).
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: Names that would collide with the layout itself (outputs/archive/ holds archives).
RESERVED_NAMES = frozenset({"archive"})
#: The environment variable that moves the state root.
HOME_ENV = "ORCHESTRATOR_HOME"

TOOLKIT_ROOT = Path(__file__).resolve().parents[2]


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid agent name, else raise.

    Checked before any path is built from it, so ``../x``, ``a/b`` or an
    empty name can never reach the file system.

    Raises:
        BadInput: the name does not match ``[A-Za-z0-9][A-Za-z0-9_.-]{0,63}``
            or is reserved.
    """
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise BadInput(
            f"invalid agent name {name!r}: use 1-64 characters of letters, digits, "
            "'_', '.', '-', starting with a letter or digit (e.g. agent1, review-api)"
        )
    if name.lower() in RESERVED_NAMES:
        raise BadInput(f"agent name {name!r} is reserved; choose another (e.g. {name}1)")
    return name


def _run_id(run_id: str) -> str:
    """``run_id`` if it has a run ID's shape (:data:`RUN_ID_RE`), else BadInput (exit 2)."""
    if not RUN_ID_RE.fullmatch(run_id):
        raise BadInput(f"invalid run ID {run_id!r}")
    return run_id


def refuse_symlink(path: Path) -> Path:
    """Return ``path`` unless it is a symlink: an agent's entries are never followed out of the state root.

    Raises:
        BadInput: it is a symlink (exit 2), naming it and the way out.
    """
    if path.is_symlink():
        raise BadInput(
            f"{path} is a symlink; the toolkit never writes through one. Remove it "
            "(clear_outputs.py NAME removes the link, never its target), then try again"
        )
    return path


def default_root() -> Path:
    """The state root: ``$ORCHESTRATOR_HOME``, else the toolkit's root, else the cwd."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    if (TOOLKIT_ROOT / "agents").is_dir():
        return TOOLKIT_ROOT
    return Path.cwd()


class StatePaths:
    """Builds the paths of one state root.  Pure: creates nothing until asked.

    Args:
        root: the state root; default :func:`default_root`.

    Every method taking ``name`` validates it first (:func:`validate_name`).
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else default_root()
        self.status_dir = self.root / "status"
        self.sessions_dir = self.root / "sessions"
        self.outputs_dir = self.root / "outputs"
        self.archive_dir = self.outputs_dir / "archive"
        self.slots_dir = self.status_dir / ".slots"
        self.queue_dir = self.status_dir / ".queue"
        self.queue_lock = self.status_dir / ".queue.lock"
        self.errors_dir = self.status_dir / ".errors"

    def status(self, name: str) -> Path:
        """``status/<name>.json``: the agent's current record."""
        return self.status_dir / f"{validate_name(name)}.json"

    def lock(self, name: str) -> Path:
        """``status/<name>.json.lock``: guards every read-modify-write of the record."""
        return self.status_dir / f"{validate_name(name)}.json.lock"

    def alive_lock(self, name: str) -> Path:
        """``status/<name>.supervisor.lock``: held (flock) by the run's supervisor while it lives.

        The kernel drops it when the process dies, which makes it the liveness test.
        """
        return self.status_dir / f"{validate_name(name)}.supervisor.lock"

    def slot(self, index: int) -> Path:
        """``status/.slots/slot-<index>.lock``: one of the ``--max-parallel`` slots."""
        return self.slots_dir / f"slot-{index}.lock"

    def cli_features(self, key: str) -> Path:
        """``status/.cli/<key>.json``: the cached features of one CLI binary (``key`` is a hex digest)."""
        if not re.fullmatch(r"[0-9a-f]{1,64}", key):
            raise BadInput(f"invalid CLI cache key {key!r}")
        return self.status_dir / ".cli" / f"{key}.json"

    def session(self, name: str) -> Path:
        """``sessions/<name>_session.txt``: the latest Claude session ID."""
        return self.sessions_dir / f"{validate_name(name)}_session.txt"

    def latest_output(self, name: str) -> Path:
        """``outputs/<name>_latest.txt``: the latest run's result text."""
        return self.outputs_dir / f"{validate_name(name)}_latest.txt"

    def run_dir(self, name: str) -> Path:
        """``outputs/<name>/``: one transcript and one log per run."""
        return self.outputs_dir / validate_name(name)

    def transcript(self, name: str, run_id: str) -> Path:
        """``outputs/<name>/<run_id>.jsonl``: the run's stream-json lines."""
        return self.run_dir(name) / f"{run_id}.jsonl"

    def task_file(self, name: str, run_id: str) -> Path:
        """``outputs/<name>/<run_id>.task``: the run's task, byte-exact; the CLI reads it on stdin."""
        return self.run_dir(name) / f"{run_id}.task"

    def channel(self, name: str, run_id: str) -> Path:
        """``outputs/<name>/<run_id>.channel/``: the run's inbox and permission questions (:mod:`..records.channel`).

        ``run_id`` must be a run ID's shape (letters, digits, ``-``): it names a folder.
        """
        return self.run_dir(name) / f"{_run_id(run_id)}.channel"

    def inbox(self, name: str, run_id: str) -> Path:
        """``outputs/<name>/<run_id>.channel/inbox.jsonl``: the messages sent to that run."""
        return self.channel(name, run_id) / "inbox.jsonl"

    def run_record(self, name: str, run_id: str) -> Path:
        """``outputs/<name>/<run_id>.record.json``: an earlier run's last record, kept when a new run replaced it.

        ``run_id`` must be a run ID's shape (letters, digits, ``-``): it names a file.
        """
        return self.run_dir(name) / f"{_run_id(run_id)}.record.json"

    def log(self, name: str, run_id: str) -> Path:
        """``outputs/<name>/<run_id>.log``: the CLI's stderr and the supervisor's log."""
        return self.run_dir(name) / f"{run_id}.log"

    def workspace(self, name: str) -> Path:
        """``workspaces/<name>/``: the agent's own folder with ``--isolation dir``."""
        return self.root / "workspaces" / validate_name(name)

    def agent_files(self, name: str) -> list[Path]:
        """Every file or folder that belongs to agent ``name`` (existing or not)."""
        return [
            self.status(name),
            self.session(name),
            self.latest_output(name),
            self.run_dir(name),
            self.workspace(name),
        ]

    def known_agents(self) -> list[str]:
        """Names of the agents that have a status record, sorted."""
        if not self.status_dir.is_dir():
            return []
        names = []
        for p in self.status_dir.iterdir():
            if p.suffix == ".json" and NAME_RE.fullmatch(p.stem):
                names.append(p.stem)
        return sorted(names)

    def ensure(self) -> None:
        """Create the state folders if missing (mode 0700, or 0770 for a group: :mod:`.modes`)."""
        for d in (self.status_dir, self.sessions_dir, self.outputs_dir, self.slots_dir, self.queue_dir):
            d.mkdir(mode=dir_mode(), parents=True, exist_ok=True)
