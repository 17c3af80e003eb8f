"""The web console's server: a Starlette app (ASGI) served by uvicorn, live through server-sent events.

Routes (every one needs the token, :mod:`.auth`):

- ``GET /`` the page (``static/console.html``); ``/?token=T`` sets the cookie and redirects to ``/``.
- ``GET /static/console.js``, ``/static/console.css``.
- ``GET /api/board``: every agent (:func:`.snapshot.read_board`); ``GET /api/agents/NAME``: one agent's page.
- ``GET /api/events``: server-sent events; ``event: board`` with the agents whose records changed
  (the first event after connecting is the whole board, ``"full": true``: a page needs nothing else).
- ``POST /api/agents/NAME/{message,answer,kill,resume,clear}``: the scripts' actions, through the same
  use cases (``message_agent.py``, ``answer_agent.py``, ``kill_agent.py``, a resume as
  ``message_agent.py`` makes one, ``clear_outputs.py``); JSON in, ``{"ok", "message"}`` or
  ``{"ok": false, "error", "exit_code"}`` out.

The live updates come from one :class:`Hub` per server: a thread that sleeps
in the toolkit's :class:`..usecases.watch.DirWatcher` on ``status/`` (inotify,
or polling on a network filesystem), re-reads only the records that changed,
and hands each page one event per change; every :data:`RECHECK_S` it
re-reads the active records, which marks a run whose supervisor died ``lost``
(as ``check_status.py`` does).  Nothing polls in the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..core.errors import BadInput, BadRecord, Conflict, NotFound, OrchestratorError
from ..core.paths import validate_name
from ..core.states import ExitCode
from ..records.shape import utc_now
from ..records.status_record import RecordStore, StatusRecord
from ..usecases import board
from ..usecases.control import read_records
from ..usecases.watch import DirWatcher
from . import snapshot
from .auth import CSRF_HEADER, Access
from .share import STATIC

#: Seconds between the hub's re-reads of the active records (a dead supervisor's run becomes ``lost``).
RECHECK_S = 5.0
#: Seconds the hub lets a burst of record writes settle into one event.
SETTLE_S = 0.03
#: Seconds between keep-alive comments on an open event stream.
PING_S = 15
#: Bytes of a POST body read at most (a message is at most 16 MiB: records/channel.py).
MAX_BODY = 17 << 20
#: The page's Content-Security-Policy: its own script and style only, nothing inline, nothing from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
HTTP_STATUS = {ExitCode.USAGE: 400, ExitCode.NOT_FOUND: 404, ExitCode.CONFLICT: 409, ExitCode.NOT_RUNNING: 409}


class Hub:
    """Watches ``status/`` in a thread and hands every subscribed page the rows that changed.

    Keeps the records it last read (``records``) so an event carries the
    fan-out's totals without reading every record again.
    """

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self.records: dict[str, StatusRecord] = {}
        self.unreadable: dict[str, str] = {}
        self.subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.watcher: DirWatcher | None = None
        self.thread = threading.Thread(target=self._run, name="orchestrator-web-hub", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        watcher = self.watcher
        if watcher is not None:
            watcher.changed.set()  # wake its wait at once: Ctrl-C stops the server without waiting out RECHECK_S
        self.thread.join(timeout=5)

    def subscribe(self, loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
        """A queue that gets every event's JSON from now on, the first holding every agent (the whole board).

        Called in a worker thread (building 500 rows takes a while); nothing waits on the queue yet,
        and events are published under the same lock, so the first event is first.
        """
        q: asyncio.Queue = asyncio.Queue()
        with self.lock:
            self.subscribers.add((loop, q))
            q.put_nowait(self._event(list(self.records.values()), [], full=True))
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        with self.lock:
            self.subscribers = {(loop, sub) for loop, sub in self.subscribers if sub is not q}

    def _event(self, changed: list[StatusRecord], removed: list[str], *, full: bool = False) -> str:
        """An event's JSON: the rows of ``changed``, ``removed``, the totals; a ``full`` one is the whole board."""
        now = time.time()
        rows = snapshot.rows(self.store, sorted(changed, key=lambda r: r.agent), now)
        data = {
            "now": now, "full": full, "agents": rows, "removed": sorted(removed),
            "unreadable": [{"name": n, "error": e} for n, e in sorted(self.unreadable.items())],
            "totals": board.totals(list(self.records.values()), now),
        }
        if full:
            data.update(version=snapshot.BOARD_VERSION, live=True, generated_at=utc_now(now), root=str(self.store.paths.root))
        return json.dumps(data)

    def _publish(self, changed: list[StatusRecord], removed: list[str]) -> None:
        with self.lock:
            data = self._event(changed, removed)
            for loop, q in list(self.subscribers):
                with contextlib.suppress(RuntimeError):  # its loop has closed: the page has gone
                    loop.call_soon_threadsafe(q.put_nowait, data)

    def _read(self, names: list[str] | None) -> tuple[list[StatusRecord], list[str]]:
        """Re-read ``names`` (None: all): ``(records read, names whose record is gone)``; updates the cache."""
        wanted = self.store.paths.known_agents() if names is None else names
        present = [n for n in wanted if self.store.paths.status(n).exists()]
        gone = set(wanted) - set(present)
        if names is None:  # a full read: every record known before and not listed now is gone too
            gone |= set(self.records) - set(wanted)
        bad: list[BadRecord] = []
        try:
            recs = read_records(self.store, present, unreadable=bad) if present else []
        except NotFound:  # removed between the look and the read: the next event tells
            recs = []
        with self.lock:
            for n in gone:
                self.records.pop(n, None)
                self.unreadable.pop(n, None)
            for b in bad:
                self.records.pop(b.name, None)
                self.unreadable[b.name] = str(b)[:500]
            for r in recs:
                self.records[r.agent] = r
                self.unreadable.pop(r.agent, None)
        return recs, sorted(gone) + [b.name for b in bad]

    def _run(self) -> None:
        with DirWatcher(self.store.paths.status_dir) as watcher:
            self.watcher = watcher
            self._read(None)
            self.ready.set()
            recheck_at = time.monotonic() + RECHECK_S
            while not self.stopping.is_set():
                # The re-check keeps its own clock: records that change all the time (200 busy agents) must
                # not put off the look that finds a dead supervisor's run (the look is what marks it lost).
                woke = watcher.wait(max(0.0, recheck_at - time.monotonic()))
                if self.stopping.is_set():
                    return
                recs, gone = [], []
                if woke:
                    watcher.wait(SETTLE_S)  # a burst of writes (a launch of 50) becomes one event
                    names = sorted({n[: -len(".json")] for n in watcher.take_changed()})
                    recs, gone = self._read([n for n in names if _valid(n)])
                if time.monotonic() >= recheck_at:
                    recheck_at = time.monotonic() + RECHECK_S
                    with self.lock:
                        before = {n: r.status for n, r in self.records.items() if r.state.is_active}
                    again, lost = self._read(sorted(before))
                    recs += [r for r in again if r.status != before.get(r.agent)]
                    gone += lost
                if recs or gone:
                    self._publish(list({r.agent: r for r in recs}.values()), sorted(set(gone)))


def _valid(name: str) -> bool:
    try:
        validate_name(name)
        return True
    except BadInput:
        return False


def _static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def page_html(csrf: str, mode: str = "live") -> str:
    """``static/console.html`` with its CSRF value and mode filled in."""
    return _static("console.html").replace("{{csrf}}", csrf).replace("{{mode}}", mode)


def create_app(store: RecordStore, access: Access, *, on_ready: Callable[[], None] | None = None) -> Starlette:
    """The console's ASGI app for one state root and one token.

    Args:
        store: the state root's records.
        access: the token's checks (:class:`.auth.Access`).
        on_ready: called once the hub has read the records and watches them (the server prints its URL then).
    """
    hub = Hub(store)
    files = {"console.js": ("text/javascript; charset=utf-8", _static("console.js")),
             "console.css": ("text/css; charset=utf-8", _static("console.css"))}

    def authed(handler):
        async def guarded(request: Request) -> Response:
            if not access.allowed(request.cookies, request.query_params.get("token"), request.headers.get("authorization")):
                return PlainTextResponse("401: token required", status_code=401, headers=SECURITY_HEADERS)
            if request.method == "POST" and not access.csrf_ok(
                    request.headers.get(CSRF_HEADER), request.headers.get("origin"), request.headers.get("host")):
                return PlainTextResponse("403: CSRF check failed", status_code=403, headers=SECURITY_HEADERS)
            response = await handler(request)
            for key, value in SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response
        return guarded

    async def index(request: Request) -> Response:
        if "token" in request.query_params:  # from the printed URL: keep the token in a cookie, not in the address bar
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(access.cookie_name, access.cookie_value, httponly=True, samesite="strict", path="/")
            return response
        return Response(page_html(access.csrf), media_type="text/html; charset=utf-8")

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in files:
            return PlainTextResponse("404: not found", status_code=404)
        kind, text = files[name]
        return Response(text, media_type=kind)

    async def not_found(request: Request) -> Response:
        return PlainTextResponse("404: not found", status_code=404)

    async def api_board(request: Request) -> Response:
        data, _ = await run_in_threadpool(snapshot.read_board, store)
        return JSONResponse(data)

    async def api_agent(request: Request) -> Response:
        return await _answer(lambda: snapshot.agent_detail(store, request.path_params["name"]), raw=True)

    async def api_events(request: Request) -> Response:
        q = await run_in_threadpool(hub.subscribe, asyncio.get_running_loop())

        async def stream():
            try:
                while True:
                    yield {"event": "board", "data": await q.get()}
            finally:
                hub.unsubscribe(q)

        return EventSourceResponse(stream(), ping=PING_S, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def api_action(request: Request) -> Response:
        name, action = request.path_params["name"], request.path_params["action"]
        body = await request.body()
        if len(body) > MAX_BODY:
            return JSONResponse({"ok": False, "error": "the request is too large", "exit_code": 2}, status_code=413)
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return JSONResponse({"ok": False, "error": "send a JSON object", "exit_code": 2}, status_code=400)
        do = ACTIONS.get(action)
        if do is None:
            return JSONResponse({"ok": False, "error": f"no action {action!r}", "exit_code": 2}, status_code=404)
        return await _answer(lambda: {"ok": True, "message": do(store, name, data)})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hub.start()
        await run_in_threadpool(hub.ready.wait, 30)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            hub.stop()

    routes = [
        Route("/", authed(index)),
        Route("/static/{name}", authed(static)),
        Route("/api/board", authed(api_board)),
        Route("/api/events", authed(api_events)),
        Route("/api/agents/{name}", authed(api_agent)),
        Route("/api/agents/{name}/{action}", authed(api_action), methods=["POST"]),
        Route("/{path:path}", authed(not_found), methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),  # after the token
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    return app


async def _answer(work: Callable[[], Any], raw: bool = False) -> Response:
    """Run a blocking use case in a thread; its result as JSON, or its error as ``{"ok": false, ...}``."""
    try:
        result = await run_in_threadpool(work)
    except OrchestratorError as e:
        return JSONResponse({"ok": False, "error": str(e), "exit_code": int(e.exit_code)},
                            status_code=HTTP_STATUS.get(e.exit_code, 500))
    return JSONResponse(result)


# -- actions: the scripts' use cases ---------------------------------------------------


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise BadInput(f"give {key!r} as a string")
    return value


def act_message(store: RecordStore, name: str, data: dict[str, Any]) -> str:
    """``message_agent.py NAME TEXT``: to a running run's inbox, or a new run of an ended agent's session."""
    from ..usecases import talk

    sent = talk.send(store.paths, validate_name(name), [_text(data, "text")])
    if sent.how == "resumed":
        return f"{name} had ended; its session continues in run {sent.record.run_id} with the message"
    number = f" {sent.numbers[0]}" if sent.numbers else ""
    return f"{name}: message{number} sent to run {sent.record.run_id}; it is delivered as soon as the run takes it"


def act_answer(store: RecordStore, name: str, data: dict[str, Any]) -> str:
    """``answer_agent.py NAME allow|deny [--message TEXT] [--always]``."""
    from ..usecases import answer

    decision = _text(data, "decision")
    message = data.get("message") if isinstance(data.get("message"), str) and data.get("message").strip() else None
    always = data.get("always") is True
    done = answer.answer(store.paths, validate_name(name), decision, message=message if decision == "deny" else None,
                         always=always and decision == "allow")
    verb = "allowed" if done["behavior"] == "allow" else "denied"
    return f"{name}: {verb} {done.get('tool_name') or 'the tool'}" + (" for the rest of the run" if done.get("always") else "")


def act_kill(store: RecordStore, name: str, data: dict[str, Any]) -> str:
    """``kill_agent.py NAME``."""
    from ..usecases.control import stop

    what, rec = stop(store, validate_name(name))
    if what == "not-running":
        return f"{name} is not running" + (f" (status {rec.status})" if rec else "")
    return f"{name}: stopped; status {rec.status}" if rec else f"{name}: stopped"


def act_resume(store: RecordStore, name: str, data: dict[str, Any]) -> str:
    """A resume of an ended agent's session with a new prompt, with its run's options (as ``message_agent.py`` makes one)."""
    from ..usecases import talk

    rec = store.read(validate_name(name))
    if rec is None:
        raise NotFound(f"no such agent: {name}")
    if rec.state.is_active:
        raise Conflict(f"{name} is {rec.status}: send it a message instead, or kill it first")
    sent = talk.send(store.paths, name, [_text(data, "text")])
    return f"{name}: resumed in run {sent.record.run_id}"


def act_clear(store: RecordStore, name: str, data: dict[str, Any]) -> str:
    """``clear_outputs.py NAME``: its files to ``outputs/archive/``; refused while it runs."""
    from ..usecases.cleanup import clear

    rec = store.read(validate_name(name))
    if rec is not None and rec.state.is_active:
        raise Conflict(f"{name} is {rec.status}: kill it first, then clear it")
    done = clear(store.paths, [name])
    return f"{name}: cleared" + (f" (archived in {done['archive']})" if done.get("archive") else "")


ACTIONS: dict[str, Callable[[RecordStore, str, dict[str, Any]], str]] = {
    "message": act_message, "answer": act_answer, "kill": act_kill, "resume": act_resume, "clear": act_clear,
}
