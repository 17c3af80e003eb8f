"""Sleeping until a status record changes: watchdog on ``status/``, with a polling fallback.

The watcher only wakes its owner; the owner re-reads the records on every
wake and on a periodic re-check (which also catches a supervisor that died
without touching its record, and any missed event).  A record is replaced
with ``os.replace``, which inotify reports as a *moved* event whose
``dest_path`` is the record, so both paths of every event are looked at.

``ORCHESTRATOR_WATCH=poll`` forces the polling observer; it is also used
when inotify cannot be started (no inotify, or out of instances/watches).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler

#: watchdog event types that mean a file changed (not opened, read or closed).
CHANGE_EVENTS = frozenset({"created", "modified", "moved", "deleted"})
#: Seconds between the polling observer's scans when inotify is unavailable.
POLL_INTERVAL_S = 0.25

# watchdog 7.1 logs a harmless race at observer stop ("queue_events() called
# when the thread is inactive") as an error; without a handler Python's last-
# resort handler would print it on our stderr.
logging.getLogger("watchdog").addHandler(logging.NullHandler())


def _native_observer():
    """watchdog's native observer (inotify on Linux)."""
    from watchdog.observers import Observer

    return Observer()


def _polling_observer():
    from watchdog.observers.polling import PollingObserver

    return PollingObserver(timeout=POLL_INTERVAL_S)


class _Wake(FileSystemEventHandler):
    def __init__(self, wanted, event: threading.Event) -> None:
        self.wanted = wanted
        self.event = event
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

    Attributes:
        mode: ``"inotify"`` or ``"polling"``: which observer runs.
    """

    def __init__(self, folder: Path, wanted=is_record_name) -> None:
        self.folder = Path(folder)
        self.changed = threading.Event()
        self.handler = _Wake(wanted, self.changed)
        self.observer = None
        self.mode = ""

    def __enter__(self) -> DirWatcher:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.environ.get("ORCHESTRATOR_WATCH", "").lower() != "poll":
            try:
                self._start(_native_observer(), "inotify")
                return self
            except OSError:  # no inotify here, or out of inotify instances or watches
                self.observer = None
        self._start(_polling_observer(), "polling")
        return self

    def _start(self, observer, mode: str) -> None:
        from watchdog.events import FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent

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
