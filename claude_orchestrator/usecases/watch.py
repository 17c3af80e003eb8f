"""Sleeping until a status record changes: watchdog on ``status/``, with a polling fallback.

The watcher only wakes its owner; the owner re-reads the records on every
wake and on a periodic re-check (which also catches a supervisor that died
without touching its record, and any missed event).  A record is replaced
with ``os.replace``, which inotify reports as a *moved* event whose
``dest_path`` is the record, so both paths of every event are looked at.

The polling observer is used when the folder is on a network filesystem
(:func:`network_fs_of`: NFS, Lustre, GPFS, ...), where inotify sees only this
host's writes and never another host's (a Slurm compute node's supervisor),
and when inotify cannot be started (no inotify, or out of instances/watches).
``ORCHESTRATOR_WATCH`` overrides the choice: ``poll`` forces polling,
``inotify`` (or ``native``) forces the native observer even on a network
filesystem (it still falls back to polling if it cannot start); unset,
``auto`` or anything else lets the filesystem decide.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from watchdog.events import (
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

#: watchdog event types that mean a file changed (not opened, read or closed).
CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted"})
#: Seconds between the polling observer's scans when inotify is unavailable (local filesystem).
POLL_INTERVAL_S = 0.25
#: Seconds between the polling observer's scans on a network filesystem.  Each scan
#: stats every file in the folder, an RPC each once the client's attribute cache
#: expires, by every waiter on every host; and a change made on another host may show
#: only once that cache expires (NFS: 3-60 s by default), so faster scans gain little.
NETWORK_POLL_INTERVAL_S = 1.0

#: Filesystem type names (as in ``/proc/mounts``' third field, which is what
#: ``psutil.disk_partitions`` reports on Linux; ``statfs``' ``f_fstypename`` on
#: macOS/BSD) whose files other hosts can change without this host's inotify
#: seeing it: network filesystems, and cluster filesystems on shared disks.
#: FUSE filesystems appear as ``fuse.<subtype>``.  VM-host shares (``9p``,
#: ``virtiofs``) are not in it: they are not shared between cluster nodes, and
#: this host's own writes on them do reach inotify.  A type not listed can be
#: forced to polling with ``ORCHESTRATOR_WATCH=poll``.
NETWORK_FSTYPES = frozenset({
    "nfs", "nfs4",                      # Linux NFS client (v2/v3, v4.x); also macOS/BSD "nfs"
    "cifs", "smb3", "smbfs",            # SMB: Linux cifs.ko (smb3 is its alias), macOS/BSD smbfs
    "afpfs", "webdav",                  # macOS AFP and WebDAV mounts
    "lustre",                           # Lustre client
    "gpfs",                             # IBM Storage Scale (GPFS)
    "beegfs",                           # BeeGFS client
    "ceph", "fuse.ceph-fuse",           # CephFS: kernel client, ceph-fuse
    "glusterfs", "fuse.glusterfs",      # GlusterFS native client (FUSE)
    "panfs",                            # Panasas PanFS
    "wekafs",                           # WEKA
    "pvfs2",                            # OrangeFS kernel client (its type name is pvfs2)
    "afs",                              # AFS (kAFS and OpenAFS)
    "gfs2", "ocfs2",                    # shared-disk cluster filesystems
    "fuse.sshfs", "fuse.s3fs",          # sshfs, s3fs
})

# watchdog 7.1 logs a harmless race at observer stop ("queue_events() called
# when the thread is inactive") as an error; without a handler Python's last-
# resort handler would print it on our stderr.
logging.getLogger("watchdog").addHandler(logging.NullHandler())


def _native_observer():
    """watchdog's native observer (inotify on Linux)."""
    return Observer()


def _polling_observer(interval_s: float = POLL_INTERVAL_S):
    from watchdog.observers.polling import PollingObserver  # here: a watcher on inotify never loads it

    return PollingObserver(timeout=interval_s)


def is_network_fs(fstype: str) -> bool:
    """True if ``fstype`` (a filesystem type name, e.g. ``"nfs4"``) is in :data:`NETWORK_FSTYPES`.

    Case and surrounding blanks are ignored; ``""`` is False.
    """
    return fstype.strip().lower() in NETWORK_FSTYPES


def network_fs_of(folder: Path) -> str | None:
    """The type of the network filesystem ``folder`` is on (``"nfs4"``, ``"lustre"``, ...), or None.

    The mount is the entry of ``psutil.disk_partitions(all=True)`` (Linux:
    the mount table, ``/etc/mtab`` or ``/proc/self/mounts``) whose mount point
    is the longest whole-component prefix of ``folder``'s resolved path (so
    symbolic links lead to the real mount; of mounts stacked on one point the
    last listed, the visible one, wins); its type is judged by
    :func:`is_network_fs`.  ``folder`` need not exist.

    Never raises: anything that goes wrong (no psutil, an unreadable mount
    table, no mount found) gives None, i.e. "take it as local".
    """
    try:
        import psutil  # here, in the try: no psutil means local; a forced native observer never loads it

        path = os.path.realpath(os.fspath(folder))
        best, best_len = None, -1
        for part in psutil.disk_partitions(all=True):
            mount = part.mountpoint.rstrip("/") or "/"
            inside = mount == "/" or path == mount or path.startswith(mount + "/")
            if inside and len(mount) >= best_len:
                best, best_len = part.fstype, len(mount)
        return best if best is not None and is_network_fs(best) else None
    except Exception:  # noqa: BLE001 - as documented: a detection that fails means "local"
        return None


class _Wake(FileSystemEventHandler):
    def __init__(self, wanted, event: threading.Event, wake_fd: int | None = None) -> None:
        self.wanted = wanted
        self.event = event
        self.wake_fd = wake_fd  # a pipe's write end: a byte is written on each change, for a select() loop
        self.names: set[str] = set()  # basenames changed since the owner last took them
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Only changes: inotify also reports opens and closes, and the waiter's
        # own reads of the records would otherwise wake it again, for ever.
        if event.event_type not in CHANGE_EVENTS:
            return
        hit = False
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            base = os.path.basename(os.fsdecode(raw)) if raw else ""
            if base and self.wanted(base):
                with self.lock:
                    self.names.add(base)
                hit = True
        if hit:
            self.event.set()
            if self.wake_fd is not None:
                try:
                    os.write(self.wake_fd, b"!")
                except OSError:  # full (the owner will look anyway) or closed (it has stopped)
                    pass


def is_record_name(basename: str) -> bool:
    """True for ``<agent>.json`` (not the temp files written beside it, nor lock files)."""
    return basename.endswith(".json") and not basename.startswith(".")


class DirWatcher:
    """Wakes a waiter when a file of interest in one folder changes.

    Use as a context manager; the observer starts on entry, so changes made
    after entry are never missed.

    Args:
        folder: the folder to watch (created if missing; not recursive).
        wanted: ``basename -> bool``: which files matter (default: records).
        wake_fd: the write end of a non-blocking pipe: a byte is written to it on
            each change, so that an owner sleeping in ``select()`` wakes (the supervisor's pump).

    Attributes:
        mode: ``"inotify"`` or ``"polling"``: which observer runs.
        network_fs: the network filesystem type ``folder`` is on
            (:func:`network_fs_of`), or None (local, or not looked at because
            ``ORCHESTRATOR_WATCH`` forces the native observer).
        poll_interval_s: seconds between the polling observer's scans
            (:data:`NETWORK_POLL_INTERVAL_S` on a network filesystem, else
            :data:`POLL_INTERVAL_S`); meaningful when ``mode`` is ``"polling"``.
    """

    def __init__(self, folder: Path, wanted=is_record_name, wake_fd: int | None = None) -> None:
        self.folder = Path(folder)
        self.changed = threading.Event()
        self.handler = _Wake(wanted, self.changed, wake_fd)
        self.observer = None
        self.mode = ""
        self.network_fs: str | None = None
        self.poll_interval_s = POLL_INTERVAL_S

    def __enter__(self) -> DirWatcher:
        self.folder.mkdir(parents=True, exist_ok=True)
        choice = os.environ.get("ORCHESTRATOR_WATCH", "").strip().lower()
        if choice not in ("inotify", "native"):
            self.network_fs = network_fs_of(self.folder)
            if self.network_fs is not None:
                self.poll_interval_s = NETWORK_POLL_INTERVAL_S
        if choice != "poll" and self.network_fs is None:  # forcing the native observer skipped the detection
            try:
                self._start(_native_observer(), "inotify")
                return self
            except OSError:  # no inotify here, or out of inotify instances or watches
                self.observer = None
        self._start(_polling_observer(self.poll_interval_s), "polling")
        return self

    def _start(self, observer, mode: str) -> None:
        # Filtered at the source too, so the observer thread does not even wake for opens and reads.
        kinds = [FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileDeletedEvent]
        observer.schedule(self.handler, str(self.folder), recursive=False, event_filter=kinds)
        observer.daemon = True
        observer.start()
        self.observer, self.mode = observer, mode

    def __exit__(self, *exc) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)

    def wait(self, timeout: float | None) -> bool:
        """Sleep until a change or ``timeout`` seconds; True if a change woke us."""
        woke = self.changed.wait(timeout)
        self.changed.clear()
        return woke

    def take_changed(self) -> set[str]:
        """The basenames of the files of interest changed since the last call (and forget them)."""
        with self.handler.lock:
            names, self.handler.names = self.handler.names, set()
        return names
