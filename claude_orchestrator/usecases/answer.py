"""Answering an agent's permission question (``answer_agent.py``).

A run launched with ``--ask-permission`` asks before a tool outside its allowed
list: its permission server (:mod:`..supervisor.permission_server`) writes
``q-<id>.json`` into the run's channel folder and waits for ``a-<id>.json``.
This module finds the question pending in the agent's *current* run and
writes that answer, once (:func:`..records.channel.create_once`).

Which question: the one ``--id`` names, else the record's ``waiting_for`` if it
is still pending, else the only unanswered one in the channel folder (the
folder is looked at too: the supervisor may not have put a question into the
record yet).  A question is *pending* while its ``q-`` file exists and its
``done-`` file does not.  Standard library only.
"""

from __future__ import annotations

import getpass
import os
import socket
from pathlib import Path
from typing import Any

from ..core.errors import BadInput, Conflict, NotFound
from ..core.paths import StatePaths
from ..core.programs import command
from ..records import channel
from ..records.shape import utc_now
from ..records.status_record import RecordStore, StatusRecord

#: The longest ``--message`` taken, in bytes of UTF-8: the model reads it as a tool's error.
MAX_MESSAGE_BYTES = 64 * 1024


def question_ids(folder: Path, prefix: str) -> set[str]:
    """The ids of the ``<prefix><id>.json`` files in ``folder`` (ids of :data:`..records.channel.QUESTION_ID_RE`'s shape)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return set()
    ids = set()
    for name in names:
        if name.startswith(prefix) and name.endswith(".json"):
            qid = name[len(prefix) : -len(".json")]
            if channel.QUESTION_ID_RE.fullmatch(qid):
                ids.add(qid)
    return ids


def pending_questions(folder: Path) -> list[dict[str, Any]]:
    """The questions of a channel folder that are not settled, oldest first.

    Each is the ``q-<id>.json`` object (its ``id`` is the file's, whatever the
    file says) with ``"answered": bool`` added (an ``a-`` file exists: the
    server has not taken it yet).  A question file that cannot be read is still
    listed, with only its id, so it can be answered by id.
    """
    settled = question_ids(folder, channel.DONE_PREFIX)
    answered = question_ids(folder, channel.ANSWER_PREFIX)
    out = []
    for qid in question_ids(folder, channel.QUESTION_PREFIX) - settled:
        data = channel.read_json(folder / f"{channel.QUESTION_PREFIX}{qid}.json") or {}
        out.append({**data, "id": qid, "answered": qid in answered})
    return sorted(out, key=lambda q: (str(q.get("asked_at") or ""), q["id"]))


def other_run_of(paths: StatePaths, name: str, qid: str, current: str) -> str | None:
    """The run ID of another run of agent ``name`` whose channel folder holds question ``qid``, or None."""
    try:
        folders = list(paths.run_dir(name).glob("*.channel"))
    except OSError:
        return None
    for folder in folders:
        run_id = folder.name.removesuffix(".channel")
        if run_id != current and any(
            os.path.lexists(folder / f"{prefix}{qid}.json") for prefix in (channel.QUESTION_PREFIX, channel.DONE_PREFIX)
        ):
            return run_id
    return None


def choose(paths: StatePaths, rec: StatusRecord, folder: Path, qid: str | None) -> dict[str, Any]:
    """The question to answer in ``rec``'s run (see the module's docstring).

    Raises:
        BadInput: ``qid`` is not a question id's shape; or several questions are pending and none is named.
        NotFound: no question is pending; ``qid`` is no question of the current run (another run's, or unknown).
        Conflict: the question is settled already (answered and taken, or timed out), or answered and not yet taken.
    """
    name = rec.agent
    if qid is not None:
        check_id(qid, name)
        done = channel.read_json(folder / f"{channel.DONE_PREFIX}{qid}.json")
        if done is not None or os.path.lexists(folder / f"{channel.DONE_PREFIX}{qid}.json"):
            raise Conflict(already_settled(name, qid, done))
        if not os.path.lexists(folder / f"{channel.QUESTION_PREFIX}{qid}.json"):
            other = other_run_of(paths, name, qid, rec.run_id)
            if other:
                raise NotFound(
                    f"question {qid} was asked in run {other} of agent {name!r}, not in its current run {rec.run_id}; "
                    "it can no longer be answered"
                )
            raise NotFound(f"agent {name!r} has no question {qid} in its current run {rec.run_id}; {command('check_status')} {name} shows the pending one")
        for question in pending_questions(folder):
            if question["id"] == qid:
                return refuse_answered(name, folder, question)
        raise Conflict(already_settled(name, qid, channel.read_json(folder / f"{channel.DONE_PREFIX}{qid}.json")))
    pending = pending_questions(folder)
    if not pending:
        raise NotFound(nothing_pending(rec) + last_settled(folder))
    waiting = rec.waiting_for.get("id") if isinstance(rec.waiting_for, dict) else None
    for question in pending:
        if question["id"] == waiting:
            return refuse_answered(name, folder, question)
    unanswered = [q for q in pending if not q["answered"]]
    if len(unanswered) == 1:
        return unanswered[0]
    if not unanswered:
        return refuse_answered(name, folder, pending[0])
    listed = ", ".join(f"{q['id']} ({q.get('tool_name') or '?'})" for q in unanswered)
    raise BadInput(f"agent {name!r} has {len(unanswered)} questions pending: {listed}; name one with --id")


def check_id(qid: str, name: str) -> str:
    """``qid`` if it has a question id's shape, else raise.

    Raises:
        BadInput: it is not ``q`` and 12 hex digits (exit 2).
    """
    if not channel.QUESTION_ID_RE.fullmatch(qid):
        raise BadInput(f"{qid!r} is not a question id (q and 12 hex digits, e.g. q0123456789ab); {command('check_status')} {name} shows the pending one")
    return qid


def refuse_answered(name: str, folder: Path, question: dict[str, Any]) -> dict[str, Any]:
    """``question``, unless it has an answer already.

    Raises:
        Conflict: an ``a-`` file exists (the server has not taken it yet).
    """
    if not question["answered"]:
        return question
    answer = channel.read_json(folder / f"{channel.ANSWER_PREFIX}{question['id']}.json") or {}
    how = answer.get("behavior") if answer.get("behavior") in (channel.ALLOW, channel.DENY) else "an unreadable answer"
    at = f" at {answer['at']}" if isinstance(answer.get("at"), str) else ""
    raise Conflict(f"question {question['id']} of agent {name!r} was already answered ({how}{at}); an answer is given once")


def already_settled(name: str, qid: str, done: dict[str, Any] | None) -> str:
    """The one line for a question that is settled already (its ``done-`` file exists)."""
    done = done or {}
    outcome = {channel.ALLOW: "allowed", channel.DENY: "denied", channel.TIMEOUT: "denied: nobody answered in time"}.get(
        done.get("outcome"), "settled"
    )
    at = f" at {done['settled_at']}" if isinstance(done.get("settled_at"), str) else ""
    return f"question {qid} of agent {name!r} was already settled ({outcome}{at}); an answer is given once"


def nothing_pending(rec: StatusRecord) -> str:
    """The one line for an agent with no question pending in its current run."""
    if rec.state.is_terminal:
        return f"agent {rec.agent!r} has no question pending: its run {rec.run_id} has ended ({rec.status})"
    if not rec.spec.ask_permission:
        return (
            f"agent {rec.agent!r} has no question pending: its run was not launched with --ask-permission, so it "
            "never asks (its tools outside --allowed-tools are denied)"
        )
    return f"agent {rec.agent!r} has no question pending; {command('wait_agents')} {rec.agent} wakes when it asks one"


def last_settled(folder: Path) -> str:
    """``" (its last question, q..., Bash, was allowed at HH:MM:SS)"`` for the latest settled question of a
    channel folder, or ``""``: a second answer to a question just settled is told so."""
    done = [channel.read_json(folder / f"{channel.DONE_PREFIX}{qid}.json") for qid in question_ids(folder, channel.DONE_PREFIX)]
    done = [d for d in done if d and isinstance(d.get("settled_at"), str)]
    if not done:
        return ""
    last = max(done, key=lambda d: d["settled_at"])
    how = {"allow": "allowed", "deny": "denied", "timeout": "denied (no answer in time)"}.get(str(last.get("outcome")), "settled")
    return f" (its last question, {str(last.get('id'))[:20]}, {str(last.get('tool_name'))[:40]}, was {how} at {last['settled_at'][11:19]})"


def answerer() -> str:
    """Who answers: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def add_always(folder: Path, tool: str) -> None:
    """Add ``tool`` to the channel's ``always.json`` (callers hold the agent's record lock)."""
    data = channel.read_json(folder / channel.ALWAYS) or {}
    tools = [t for t in data.get("tools") or [] if isinstance(t, str)] if isinstance(data.get("tools"), list) else []
    if tool not in tools:
        channel.write_json(folder / channel.ALWAYS, {**data, "tools": [*tools, tool]})


def answer(
    paths: StatePaths, name: str, behavior: str, *, message: str | None = None, always: bool = False, qid: str | None = None
) -> dict[str, Any]:
    """Answer the question pending in agent ``name``'s current run.

    Args:
        paths: the state root.
        name: the agent.
        behavior: ``"allow"`` or ``"deny"``.
        message: with deny, what the model is told (default: that the user denied it).
        always: with allow, also allow that tool for the rest of the run (``always.json``).
        qid: the question's id (default: see :func:`choose`).

    Returns:
        What was answered: ``{"agent", "run_id", "id", "tool_name", "input", "asked_at", "behavior",
        "message", "always", "at", "by"}``.

    Raises:
        BadInput: a bad name or id, ``always`` with deny, a message with allow, several questions pending
            and no ``qid``, an unreadable record (exit 2).
        Conflict: the question was answered or settled already (exit 3).
        NotFound: no such agent, no question pending, ``qid`` not in the current run (exit 4).
        StorageError: the channel folder cannot be written (exit 74).
    """
    if behavior not in (channel.ALLOW, channel.DENY):
        raise BadInput(f"answer allow or deny, not {behavior!r}")
    if always and behavior != channel.ALLOW:
        raise BadInput("--always goes with allow (allow that tool for the rest of the run); drop it to deny")
    if message is not None and not message.strip():
        raise BadInput("--message is empty; give the model a reason, or leave --message out")
    if message is not None and len(message.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise BadInput(f"--message is longer than {MAX_MESSAGE_BYTES} bytes; say it in a few lines")
    if message is not None and behavior != channel.DENY:
        raise BadInput(
            "--message goes with deny (the model reads it as the tool's error); an allow carries none: "
            "to tell the agent something, use message_agent.py"
        )
    if qid is not None:
        check_id(qid, name)
    store = RecordStore(paths)
    rec = store.read(name)  # validates the name (exit 2), BadRecord (exit 2)
    if rec is None:
        raise NotFound(f"no such agent: {name}; see {command('check_status')}")
    if rec.state.is_terminal:  # its CLI is gone: a question file left there is no longer asked
        raise NotFound(nothing_pending(rec))
    folder = paths.channel(name, rec.run_id)
    with store.locked(name):  # two answerers at once: one wins, the other is told; always.json is read-modify-write
        question = choose(paths, rec, folder, qid)
        qid = question["id"]
        tool = question.get("tool_name") if isinstance(question.get("tool_name"), str) else None
        if always and not tool:
            raise BadInput(f"question {qid}'s file does not name its tool, so --always cannot allow it; answer without --always")
        data = {"id": qid, "behavior": behavior, "message": message, "always": always, "at": utc_now(), "by": answerer()}
        if always and tool:
            add_always(folder, tool)  # before the answer: a later question for the tool finds it
        if not channel.create_once(folder / f"{channel.ANSWER_PREFIX}{qid}.json", data):
            raise Conflict(f"question {qid} of agent {name!r} was already answered; an answer is given once")
    return {
        "agent": name, "run_id": rec.run_id, "id": qid, "tool_name": tool, "input": question.get("input"),
        "asked_at": question.get("asked_at"), **{k: data[k] for k in ("behavior", "message", "always", "at", "by")},
    }
