"""Serving the console: bind, print the URL with its token once the app is ready, open a browser, stop on Ctrl-C.

uvicorn serves the app (:func:`.app.create_app`) on a socket bound here, so
that ``--port 0`` (any free port) is known before the URL is printed, and
the URL is printed only once the records have been read and are watched.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable

import uvicorn

from ..core.errors import BadInput
from ..records.status_record import RecordStore
from .app import create_app
from .auth import Access, new_token

#: Seconds uvicorn gives open connections (an open page's event stream) to finish when stopping.
GRACEFUL_S = 1
#: Seconds between the server's looks for a stop request (Ctrl-C stops it within this).
TICK_S = 0.5


class _Server(uvicorn.Server):
    """uvicorn's server, looking for a stop (Ctrl-C) every :data:`TICK_S` rather than ten times a second.

    ``main_loop`` and ``on_tick`` are uvicorn's own (0.30 to 0.55); its loop's 0.1 s
    ticks were most of an idle console's CPU (0.6% of a core, bench item 10).
    ``on_tick(0)`` also refreshes the Date header, as uvicorn does once a second.
    """

    async def main_loop(self) -> None:
        while not await self.on_tick(0):
            await asyncio.sleep(TICK_S)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free one), IPv6 if ``host`` is one.

    Raises:
        BadInput: the address cannot be bound (in use, not this host's) (exit 2).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise BadInput(f"cannot listen on {host}:{port}: {e.strerror or e}; pick another --host") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        hint = "pick another --port, or --port 0 for any free one" if e.errno == 98 else "pick another --host or --port"
        raise BadInput(f"cannot listen on {host}:{port}: {e.strerror or e}; {hint}") from None
    sock.set_inheritable(False)
    return sock


def url_of(sock: socket.socket, token: str) -> str:
    """``http://HOST:PORT/?token=TOKEN`` for a bound socket (an IPv6 host in brackets)."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def can_open_browser() -> bool:
    """True where a graphical browser can open: macOS or Windows, or a display (X11, Wayland) on others."""
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def serve(store: RecordStore, host: str, port: int, *, open_browser: bool, announce: Callable[[str], None]) -> None:
    """Serve the console until Ctrl-C (SIGINT) or SIGTERM; ``announce(url)`` once it is ready.

    Raises:
        BadInput: the address cannot be bound (exit 2).
    """
    sock = bind(host, port)
    token = new_token()
    access = Access(token, sock.getsockname()[1])
    url = url_of(sock, token)

    def ready() -> None:
        announce(url)
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    app = create_app(store, access, on_ready=ready)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=GRACEFUL_S)
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn stops on Ctrl-C, then raises the signal again: the stop asked for
        pass
    finally:
        sock.close()
