"""The permission server: a stdio MCP server that asks a person (or the master) before a tool runs.

A run launched with ``--ask-permission`` gives its CLI ``--mcp-config
CHANNEL/mcp.json --permission-prompt-tool mcp__orchestrator__ask_permission``
(:func:`mcp_config`).  Before a tool outside ``--allowedTools`` the CLI calls
this server's one tool, ``ask_permission``, with ``{"tool_name", "input",
"tool_use_id"}`` and waits for its answer.  The server turns the call into
files in the run's channel folder (:mod:`..records.channel`):

1. the tool is in ``always.json`` -> allowed at once: ``done-<id>.json`` with
   outcome ``allow`` and ``"always": true``, no question;
2. else ``q-<id>.json`` is written (atomically): ``{"id", "tool_name", "input",
   "tool_use_id", "asked_at", "timeout_at", "run_id"}``; the supervisor shows it
   in the record (``waiting_for``), ``answer_agent.py`` answers it with
   ``a-<id>.json``;
3. the server waits for that answer (watchdog on the folder, :class:`..usecases.watch.DirWatcher`,
   and a look every :data:`RECHECK_S` s for a network filesystem whose other hosts'
   writes inotify never sees), at most ``--timeout`` s;
4. it replies to the CLI with one text block holding JSON:
   ``{"behavior": "allow", "updatedInput": <the input as asked>}`` or
   ``{"behavior": "deny", "message": "..."}``; no answer in time is a deny whose
   message says so; an answer file that cannot be read (not JSON, not an
   answer's shape) is a deny whose message says that, never a crash or a hang;
5. it writes ``done-<id>.json`` (the question and ``{"outcome": "allow" | "deny" |
   "timeout", "message", "settled_at"}``) and removes ``q-<id>.json``.

Once the CLI has listed the server's tools, the server writes :data:`READY`
(``mcp-ready.json``) into the folder: a CLI that does not wait for its MCP
servers before its first request (2.1.197) fails the run with "MCP tool ...
not found" if the model asks before then, so the task is held back until it
appears (the supervisor's part).

A question left open when the CLI goes (its stdin closes, the call is
cancelled, or the server gets SIGTERM/SIGHUP) is settled as a deny with
``"cancelled": true``, so no ``q-`` file outlives its server.

Run it as ``python -m claude_orchestrator.supervisor.permission_server --channel
DIR --timeout S [--run-id R]``.  It writes nothing to stdout but the MCP
protocol (the SDK points file descriptor 1 at stderr while it serves); its log
lines go to stderr.  This module imports the ``mcp`` SDK (and watchdog) only
when it serves: :func:`mcp_config` and :func:`available` are cheap to import.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..core.modes import adopt_private_umask, dir_mode
from ..records import channel
from ..records.shape import utc_now

#: This module, as ``python -m`` runs it.
MODULE = "claude_orchestrator.supervisor.permission_server"
#: Seconds between two looks at the channel folder while a question waits (besides
#: filesystem events): a network filesystem's other hosts' writes reach no inotify.
RECHECK_S = 1.0
#: Seconds an answer file may stay unreadable (a hand-written one still being
#: written) before it is taken as garbled and the question denied.
GARBLED_GRACE_S = 0.5
#: Written into the channel folder once the CLI has listed the server's tools: from then on the CLI
#: knows ``ask_permission``.  A CLI that does not wait for its MCP servers before its first request
#: (2.1.197 does not; 2.1.332 does) fails the run with "MCP tool ... not found" if the model asks
#: for a tool before then, so the supervisor holds the task back until this file appears.
READY = channel.MCP_READY
#: Seconds after the listing before :data:`READY` is written: the listing's reply reaches the CLI first.
READY_AFTER_S = 0.05
#: The folder that holds the ``claude_orchestrator`` package (put on the server's ``PYTHONPATH``).
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
#: The ``pip install`` that brings the SDK (the toolkit's ``ask`` extra).
INSTALL_HINT = f"{sys.executable} -m pip install 'mcp>=2.3'  (or: make install, which installs the toolkit's [ask] extra)"


# --- for the supervisor: cheap, standard library only ---------------------------


def available() -> str | None:
    """None if the ``mcp`` SDK can be imported by this interpreter, else the one-line error to show.

    Works under ``python -S`` too (the supervisor's way): the interpreter's
    site-packages folders are then searched by hand, as its server (run
    without ``-S``) will see them.
    """
    from importlib.util import find_spec

    try:
        if find_spec("mcp") is not None:
            return None
    except (ImportError, ValueError):
        pass
    if sys.flags.no_site:
        import site
        from importlib.machinery import PathFinder

        # -S skips site.py, which is also what makes a virtual environment's sys.prefix: find its
        # pyvenv.cfg as site.py does (beside the executable or one folder up)
        here = os.path.dirname(sys.executable)
        venvs = [d for d in (here, os.path.dirname(here)) if os.path.isfile(os.path.join(d, "pyvenv.cfg"))]
        folders = site.getsitepackages([*venvs[:1], sys.prefix])
        folders.append(site.getusersitepackages())
        if PathFinder.find_spec("mcp", folders) is not None:
            return None
    return f"--ask-permission needs the mcp package, which {sys.executable} does not have: {INSTALL_HINT}"


def mcp_config(channel_dir: Path, timeout_s: float, python: str, run_id: str | None = None) -> dict[str, Any]:
    """The ``--mcp-config`` JSON that starts this server for one run.

    Args:
        channel_dir: the run's channel folder (``StatePaths.channel(name, run_id)``).
        timeout_s: seconds a question waits for an answer (``--question-timeout``).
        python: the interpreter to run the server (it needs ``mcp``; e.g. ``sys.executable``).
        run_id: the run's ID, written into each question (default: from the folder's name).

    Returns:
        ``{"mcpServers": {"orchestrator": {"type": "stdio", "command": python, "args": [...],
        "env": {"PYTHONPATH": <the folder holding the package>, "PYTHONUNBUFFERED": "1"}}}}``.
        The CLI adds ``env`` to its own environment; ``PYTHONPATH`` lets the server find the
        package even when ``python`` has it only through the supervisor's path.
    """
    args = ["-m", MODULE, "--channel", str(Path(channel_dir)), "--timeout", repr(float(timeout_s))]
    if run_id:
        args += ["--run-id", run_id]
    env = {"PYTHONPATH": str(PACKAGE_PARENT), "PYTHONUNBUFFERED": "1"}
    return {"mcpServers": {channel.MCP_SERVER: {"type": "stdio", "command": python, "args": args, "env": env}}}


# --- the decision, without MCP ------------------------------------------------


def log(text: str) -> None:
    """One line on stderr (the CLI keeps or drops it; stdout is the protocol's)."""
    try:
        sys.stderr.write(f"permission_server: {text}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def always_tools(folder: Path) -> list[str]:
    """The tool names in ``always.json`` (``{"tools": [...]}``); [] if missing or unreadable."""
    data = channel.read_json(folder / channel.ALWAYS) or {}
    tools = data.get("tools")
    return [t for t in tools if isinstance(t, str)] if isinstance(tools, list) else []


def read_answer(path: Path) -> tuple[str, dict[str, Any] | None]:
    """An answer file as ``("missing" | "garbled" | "ok", answer)``.

    An answer is ``{"behavior": "allow" | "deny", "message": str | None, ...}``;
    anything else (not JSON, not an object, another behavior, a message that is
    not text, a symlink) is ``garbled``.
    """
    if not os.path.lexists(path):
        return "missing", None
    data = channel.read_json(path)
    if data is None or data.get("behavior") not in (channel.ALLOW, channel.DENY):
        return "garbled", None
    message = data.get("message")
    if message is not None and not isinstance(message, str):
        return "garbled", None
    return "ok", data


class Asker:
    """Asks the questions of one run through its channel folder.

    Args:
        folder: the run's channel folder (created if missing, mode 0700).
        timeout_s: seconds a question waits for an answer.
        run_id: written into each question.
    """

    def __init__(self, folder: Path, timeout_s: float, run_id: str) -> None:
        self.folder = Path(folder)
        self.timeout_s = float(timeout_s)
        self.run_id = run_id
        self.open: dict[str, dict[str, Any]] = {}  # id -> question, while unsettled (settled on a signal)
        self.ready_timer: threading.Timer | None = None

    def listed(self) -> None:
        """The CLI listed the tools: write :data:`READY` (``{"pid", "at", "run_id"}``) shortly after, once."""
        if self.ready_timer is not None:
            return

        def write() -> None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True, mode=dir_mode())
                channel.write_json(self.folder / READY, {"pid": os.getpid(), "at": utc_now(), "run_id": self.run_id})
            except Exception as exc:  # noqa: BLE001 - StorageError or worse: logged, the server goes on
                log(f"cannot write {READY}: {exc}")

        self.ready_timer = threading.Timer(READY_AFTER_S, write)
        self.ready_timer.daemon = True
        self.ready_timer.start()

    def quick(self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Start on a call: ``(the question, its done record if it is settled already by always.json, else None)``.

        An unsettled question's ``q-<id>.json`` is written here.

        Raises:
            StorageError: the channel folder cannot be written.
        """
        asked = time.time()
        qid = channel.new_question_id()
        question = {
            "id": qid, "tool_name": tool_name, "input": tool_input, "tool_use_id": tool_use_id,
            "asked_at": utc_now(asked), "timeout_at": utc_now(asked + self.timeout_s), "run_id": self.run_id,
        }
        self.folder.mkdir(parents=True, exist_ok=True, mode=dir_mode())
        if tool_name in always_tools(self.folder):
            return question, self.settle(question, channel.ALLOW, None, always=True)
        self.open[qid] = question
        channel.write_json(self.folder / f"{channel.QUESTION_PREFIX}{qid}.json", question)
        log(f"question {qid}: may {tool_name} run? (waiting up to {self.timeout_s:g} s)")
        return question, None

    def look(self, question: dict[str, Any], garbled_since: float | None) -> tuple[dict[str, Any] | None, float | None]:
        """One look at the question's answer: ``(its done record if settled now, else None; when the answer
        was first seen garbled, or None)``."""
        qid, tool = question["id"], question["tool_name"]
        status, answer = read_answer(self.folder / f"{channel.ANSWER_PREFIX}{qid}.json")
        if status == "ok" and answer is not None:
            if answer["behavior"] == channel.ALLOW:
                return self.settle(question, channel.ALLOW, None, by=answer.get("by")), None
            message = answer.get("message") or f"the user denied {tool} (answer_agent.py deny)"
            return self.settle(question, channel.DENY, message, by=answer.get("by")), None
        if status == "garbled":
            now = time.monotonic()
            if garbled_since is None:
                return None, now
            if now - garbled_since >= GARBLED_GRACE_S:
                log(f"question {qid}: its answer file {channel.ANSWER_PREFIX}{qid}.json is unreadable; denied")
                message = f"the answer to this permission question (id {qid}) was unreadable, so {tool} was denied; ask again if it is needed"
                return self.settle(question, channel.DENY, message, garbled=True), None
            return None, garbled_since
        if tool in always_tools(self.folder):  # --always given to another question of the same tool meanwhile
            return self.settle(question, channel.ALLOW, None, always=True), None
        return None, None

    def expired(self, question: dict[str, Any]) -> dict[str, Any]:
        """Settle ``question`` as timed out; its done record."""
        message = (
            f"no answer came within {self.timeout_s:g} s (--question-timeout), so {question['tool_name']} was denied; "
            "do without it, or say in your result that it was needed"
        )
        log(f"question {question['id']}: no answer within {self.timeout_s:g} s; denied")
        return self.settle(question, channel.TIMEOUT, message)

    def cancel(self, question: dict[str, Any], why: str) -> dict[str, Any]:
        """Settle an open ``question`` as denied because nobody waits for it any more; its done record."""
        log(f"question {question['id']}: {why}; settled as denied")
        return self.settle(question, channel.DENY, why, cancelled=True)

    def settle(self, question: dict[str, Any], outcome: str, message: str | None, **more: Any) -> dict[str, Any]:
        """Write ``done-<id>.json`` (the question, the outcome, ``settled_at`` and ``more``), then remove ``q-<id>.json``.

        Never raises: a done file that cannot be written is logged (the reply to the CLI matters more).
        """
        qid = question["id"]
        done = {**question, "outcome": outcome, "message": message, "settled_at": utc_now()}
        done.update({k: v for k, v in more.items() if v is not None})
        try:
            channel.write_json(self.folder / f"{channel.DONE_PREFIX}{qid}.json", done)
        except Exception as exc:  # noqa: BLE001 - StorageError or worse: the CLI still gets its answer
            log(f"question {qid}: cannot write its done file: {exc}")
        try:
            os.unlink(self.folder / f"{channel.QUESTION_PREFIX}{qid}.json")
        except FileNotFoundError:
            pass
        except OSError as exc:
            log(f"question {qid}: cannot remove its question file: {exc}")
        self.open.pop(qid, None)
        if outcome == channel.ALLOW:
            log(f"question {qid}: {question['tool_name']} allowed" + (" (always)" if more.get("always") else ""))
        return done

    def settle_all_open(self, why: str) -> None:
        """Settle every open question as cancelled (the server is going away)."""
        for question in list(self.open.values()):
            self.cancel(question, why)


def reply(done: dict[str, Any]) -> dict[str, Any]:
    """The permission answer the CLI takes, for a done record: allow with the input as asked, or deny with a message."""
    if done["outcome"] == channel.ALLOW:
        return {"behavior": "allow", "updatedInput": done["input"]}
    return {"behavior": "deny", "message": done.get("message") or "denied"}


def check_arguments(arguments: dict[str, Any] | None) -> tuple[str, dict[str, Any], str] | str:
    """``(tool_name, input, tool_use_id)`` from the tool call's arguments, or the deny message if they are not such."""
    args = arguments or {}
    tool_name, tool_input, tool_use_id = args.get("tool_name"), args.get("input", {}), args.get("tool_use_id", "")
    if not isinstance(tool_name, str) or not tool_name:
        return "the permission question named no tool (tool_name); denied"
    if not isinstance(tool_input, dict):
        return f"the permission question for {tool_name} had an input that is not an object; denied"
    return tool_name, tool_input, tool_use_id if isinstance(tool_use_id, str) else str(tool_use_id)


# --- the MCP server -----------------------------------------------------------

#: The tool's input, as the CLI sends it.
INPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "tool_name": {"type": "string", "description": "the tool the model wants to run"},
        "input": {"type": "object", "description": "its input"},
        "tool_use_id": {"type": "string", "description": "the tool call's id"},
    },
    "required": ["tool_name", "input"],
}


async def wait_answer(asker: Asker, question: dict[str, Any]) -> dict[str, Any]:
    """Wait for ``question``'s answer (or its timeout) and settle it; its done record.

    The folder's watcher is started before the first look, so an answer written
    at any moment is seen; besides its events, the folder is looked at every
    :data:`RECHECK_S` s.  A cancelled wait (the CLI went away) settles the
    question as cancelled and re-raises.
    """
    import anyio

    from ..usecases.watch import DirWatcher

    deadline = time.monotonic() + asker.timeout_s
    qid = question["id"]
    names = {f"{channel.ANSWER_PREFIX}{qid}.json", channel.ALWAYS}
    garbled_since: float | None = None
    try:
        with DirWatcher(asker.folder, wanted=lambda base: base in names) as watcher:
            while True:
                done, garbled_since = asker.look(question, garbled_since)
                if done is not None:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    return asker.expired(question)
                pause = min(left, GARBLED_GRACE_S if garbled_since is not None else RECHECK_S)
                # a thread sleeps on the watcher's event; at most `pause` s, so a cancelled wait ends soon
                await anyio.to_thread.run_sync(watcher.wait, pause, abandon_on_cancel=True)
    except BaseException:
        if qid in asker.open:
            asker.cancel(question, "the CLI stopped waiting for this permission question (its run ended or the call was cancelled)")
        raise


def build_server(asker: Asker):
    """The low-level MCP server with the one tool (``ask_permission``)."""
    import mcp.types as types
    from mcp.server.lowlevel import Server

    async def list_tools(ctx, params) -> types.ListToolsResult:
        asker.listed()
        tool = types.Tool(
            name=channel.MCP_TOOL,
            description="Ask the orchestrator's user whether a tool may run (the CLI's --permission-prompt-tool).",
            input_schema=INPUT_SCHEMA,
        )
        return types.ListToolsResult(tools=[tool])

    async def call_tool(ctx, params) -> types.CallToolResult:
        def text(data: dict[str, Any]) -> types.CallToolResult:
            return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(data))])

        if params.name != channel.MCP_TOOL:
            return types.CallToolResult(content=[types.TextContent(type="text", text=f"no tool {params.name!r}")], is_error=True)
        checked = check_arguments(params.arguments)
        if isinstance(checked, str):
            log(checked)
            return text({"behavior": "deny", "message": checked})
        try:
            question, done = asker.quick(*checked)
        except Exception as exc:  # noqa: BLE001 - a channel that cannot be written: deny, never crash
            log(f"cannot ask about {checked[0]}: {exc}")
            return text({"behavior": "deny", "message": f"the permission question could not be asked ({exc}); denied"})
        if done is None:
            done = await wait_answer(asker, question)
        return text(reply(done))

    return Server("orchestrator", version="1", on_list_tools=list_tools, on_call_tool=call_tool)


async def serve(asker: Asker) -> None:
    """Serve MCP on stdin/stdout until the CLI closes stdin."""
    from mcp.server.stdio import stdio_server

    server = build_server(asker)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """``--channel DIR --timeout S [--run-id R]``; exits 2 on bad usage."""
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="The toolkit's permission server (stdio MCP), for the CLI's --permission-prompt-tool.")
    p.add_argument("--channel", required=True, type=Path, help="the run's channel folder")
    p.add_argument("--timeout", required=True, type=float, help="seconds a question waits for an answer")
    p.add_argument("--run-id", help="the run's ID (default: from the channel folder's name)")
    args = p.parse_args(argv)
    if not args.timeout > 0:
        p.error("--timeout must be more than 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Serve one run's permission questions until the CLI goes; 0, or 2 (bad usage, no mcp)."""
    args = parse_args(argv)
    adopt_private_umask(launched=True)  # the CLI starts it with the caller's umask; its files are the state root's
    missing = available()
    if missing:
        log(missing)
        return 2
    run_id = args.run_id or args.channel.name.removesuffix(".channel")
    asker = Asker(args.channel, args.timeout, run_id)

    import signal

    def going(signum, frame) -> None:
        asker.settle_all_open(f"the permission server was stopped (signal {signum}) before an answer came")
        os._exit(0)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, going)

    import anyio

    try:
        anyio.run(serve, asker)
    except KeyboardInterrupt:
        asker.settle_all_open("the permission server was interrupted before an answer came")
    return 0


if __name__ == "__main__":
    sys.exit(main())
