"""The web console's server and the report, over plain HTTP and files (the browser's view is test_web_browser.py).

The server runs as a user starts it (``web_console.py --port 0 --no-browser``) on
a kit's state root with the fake CLI; requests are plain ``http.client`` ones, so
what a request without the token, the cookie or the CSRF header gets is exactly
what the server sends.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from browser import WebConsole
from conftest import ROOT

HOSTILE = '<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>'


@pytest.fixture
def console(fake_kit):
    web = WebConsole(fake_kit)
    yield web
    web.stop()


def _json(response) -> dict:
    return json.loads(response.body)


def _page(console: WebConsole, cookie: str) -> tuple[str, str]:
    """The page's HTML and its CSRF value."""
    page = console.request("GET", "/", headers={"Cookie": cookie})
    html = page.body.decode()
    return html, re.search(r'name="csrf-token" content="([0-9a-f]+)"', html).group(1)


def test_nothing_is_served_without_the_token(fake_kit, console):
    assert fake_kit.run("launch_agent", "secret-agent", "[[reply: the password is hunter2]]", "--wait").returncode == 0
    for path in ("/", "/api/board", "/api/agents/secret-agent", "/api/events", "/static/console.js", "/nope"):
        for headers in ({}, {"Cookie": f"orch-console-{console.port}=forged"}, {"Authorization": "token wrong"}):
            response = console.request("GET", path, headers=headers)
            assert response.status == 401, (path, headers, response.status)
            assert b"secret-agent" not in response.body and b"hunter2" not in response.body
    wrong = console.request("GET", "/?token=wrong")
    assert wrong.status == 401 and not wrong.headers.get_all("Set-Cookie")


def test_the_token_gives_an_httponly_strict_cookie_and_the_page_a_strict_csp(console):
    response = console.request("GET", f"/?token={console.token}")
    assert response.status == 303 and response.headers["Location"] == "/", "the token leaves the address bar"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert console.token not in cookie, "the cookie holds a value derived from the token, not the token"
    page = console.request("GET", "/", headers={"Cookie": cookie.split(";", 1)[0]})
    assert page.status == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert console.request("GET", "/api/board", headers={"Authorization": f"token {console.token}"}).status == 200


def test_an_action_needs_the_csrf_value_and_this_origin(fake_kit, console):
    assert fake_kit.run("launch_agent", "k", "[[fake: hang]]").returncode == 0
    fake_kit.wait_running("k")
    cookie = console.cookie()
    _, csrf = _page(console, cookie)
    for headers in ({"Cookie": cookie}, {"Cookie": cookie, "X-CSRF-Token": "0" * 64},
                    {"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": "http://evil.example"}):
        refused = console.request("POST", "/api/agents/k/kill", headers=headers, body=b"{}")
        assert refused.status == 403, headers
    assert fake_kit.record("k")["status"] == "running", "a refused action did nothing"
    done = console.request("POST", "/api/agents/k/kill", body=b"{}",
                           headers={"Cookie": cookie, "X-CSRF-Token": csrf, "Origin": console.base})
    assert done.status == 200 and _json(done)["ok"], done.body
    assert fake_kit.record("k")["status"] == "killed"


def test_actions_say_what_went_wrong_as_the_scripts_do(fake_kit, console):
    cookie = console.cookie()
    _, csrf = _page(console, cookie)
    headers = {"Cookie": cookie, "X-CSRF-Token": csrf}
    missing = console.request("POST", "/api/agents/ghost/kill", headers=headers, body=b"{}")
    assert missing.status == 404 and _json(missing)["exit_code"] == 4
    bad = console.request("POST", "/api/agents/-bad/message", headers=headers, body=b'{"text": "x"}')
    assert bad.status == 400 and _json(bad)["exit_code"] == 2
    assert console.request("POST", "/api/agents/a/message", headers=headers, body=b"not json").status == 400
    assert console.request("POST", "/api/agents/a/explode", headers=headers, body=b"{}").status == 404
    assert fake_kit.run("launch_agent", "d", "[[reply: done]]", "--wait").returncode == 0
    empty = console.request("POST", "/api/agents/d/answer", headers=headers, body=b'{"decision": "allow"}')
    assert empty.status == 404 and "question" in _json(empty)["error"]
    assert console.request("GET", "/api/agents/..%2fetc", headers={"Cookie": cookie}).status in (400, 404, 405)


def test_the_board_and_an_agent_page_hold_every_run_and_the_transcript(fake_kit, console):
    assert fake_kit.run("launch_agent", "r", f"first {HOSTILE} [[reply: one {HOSTILE}]]", "--wait").returncode == 0
    assert fake_kit.run("resume_agent", "r", "second [[reply: two]]", "--wait").returncode == 0
    cookie = console.cookie()
    board = _json(console.request("GET", "/api/board", headers={"Cookie": cookie}))
    (row,) = [a for a in board["agents"] if a["name"] == "r"]
    assert [run["status"] for run in row["runs"]] == ["completed", "completed"], "the earlier run is on the timeline"
    assert row["runs"][-1]["run_id"] == row["run_id"] and row["runs"][0]["run_id"] != row["run_id"]
    assert board["totals"]["counts"] == {"completed": 1}
    detail = _json(console.request("GET", "/api/agents/r", headers={"Cookie": cookie}))
    assert detail["result"].startswith("FAKE: second"), "the fake CLI answers with its task"
    assert detail["record"]["run_id"] == row["run_id"]
    assert any(item["kind"] == "message" and "second" in item["text"] for item in detail["transcript"])


def test_a_record_change_reaches_an_open_event_stream(fake_kit, console):
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=60)
    connection.request("GET", "/api/events", headers={"Cookie": console.cookie(), "Accept": "text/event-stream"})
    response = connection.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")

    def next_board() -> dict:
        while True:
            line = response.fp.readline()
            assert line, "the stream ended"
            if line.startswith(b"data:"):
                return json.loads(line[5:])

    first = next_board()
    assert first["full"] is True and first["agents"] == []
    assert fake_kit.run("launch_agent", "late", "[[reply: hi]]").returncode == 0
    seen = set()
    while "completed" not in seen:  # every change of the record arrives, up to its end
        event = next_board()
        seen |= {a["status"] for a in event["agents"] if a["name"] == "late"}
        assert not event["full"]
    assert event["totals"]["counts"] == {"completed": 1}
    connection.close()


def test_a_taken_port_is_refused_with_advice(fake_kit, console):
    taken = fake_kit.run("web_console", "--port", str(console.port), "--no-browser", timeout=60)
    assert taken.returncode == 2 and "--port 0" in taken.stderr and "Traceback" not in taken.stderr


def test_the_report_is_one_inert_file_whose_script_the_csp_pins(fake_kit, tmp_path):
    assert fake_kit.run("launch_agent", "x", f"task {HOSTILE} [[reply: result {HOSTILE} \u2028 </script>]]", "--wait").returncode == 0
    out = fake_kit.run("report_agents", "--html", str(tmp_path / "r.html"))
    assert out.returncode == 0 and "1 agent" in out.stdout, out.stderr
    html = (tmp_path / "r.html").read_text()
    data_block = html.split('<script type="application/json" id="board-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data_block and ">" not in data_block, "the data cannot close its element or open a tag"
    data = json.loads(data_block)
    assert data["live"] is False and HOSTILE in data["details"]["x"]["result"]
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html, "nothing fetched"
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert len(scripts) == 1 and len(styles) == 1
    for text in scripts + styles:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    as_json = json.loads(fake_kit.run("report_agents", "--json").stdout)
    assert [a["name"] for a in as_json["agents"]] == ["x"] and as_json["details"]["x"]["result"] == data["details"]["x"]["result"]


def test_the_report_refuses_what_it_cannot_do(fake_kit, tmp_path):
    assert fake_kit.run("report_agents").returncode == 2
    missing = fake_kit.run("report_agents", "--json", "ghost")
    assert missing.returncode == 4 and "ghost" in missing.stderr
    (tmp_path / "dir").mkdir()
    blocked = fake_kit.run("report_agents", "--html", str(tmp_path / "dir"))
    assert blocked.returncode == 74 and "Traceback" not in blocked.stderr
    typo = fake_kit.run("report_agents", "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert typo.returncode == 2 and "make it first" in typo.stderr and not (tmp_path / "no").exists()


def test_neither_a_launch_nor_the_report_imports_the_web_libraries(fake_kit):
    probe = ("import sys; from claude_orchestrator.commands import launch_agent, report_agents; "
             "from claude_orchestrator.web import share, snapshot; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn', 'sse_starlette')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_worktree_runs_page_has_its_branch_and_diff_stat(fake_kit, console, tmp_path):
    repo = (tmp_path / "repo").resolve()
    repo.mkdir()
    (repo / "app.py").write_text("print('v1')\n")
    for argv in (["init", "-q", "-b", "main"], ["add", "app.py"],
                 ["-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "base"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, capture_output=True, timeout=60)
    assert fake_kit.run("launch_agent", "wt", "--cwd", str(repo), "--isolation", "worktree", "--wait", "x").returncode == 0
    worktree = fake_kit.record("wt")["worktree"]
    (Path(worktree["path"]) / "app.py").write_text("print('v2')\nprint('more')\n")  # the agent's edit
    (Path(worktree["path"]) / "new.py").write_text("x = 1\n")
    detail = _json(console.request("GET", "/api/agents/wt", headers={"Cookie": console.cookie()}))
    assert detail["agent"]["worktree"] == {"path": worktree["path"], "branch": worktree["branch"]}
    assert "app.py" in detail["diffstat"] and "1 untracked file" in detail["diffstat"], detail["diffstat"]


def test_a_dead_supervisors_run_shows_lost_while_other_records_keep_changing(fake_kit, console):
    """The hub's 5 s re-check of the active records has a clock of its own: writes to other records (a busy
    fan-out writes all the time) must not put it off, or a crashed run would look alive for ever."""
    assert fake_kit.run("launch_agent", "victim", "[[fake: hang]]").returncode == 0
    rec = fake_kit.wait_running("victim")
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=60)
    connection.request("GET", "/api/events", headers={"Cookie": console.cookie()})
    response = connection.getresponse()
    stop = threading.Event()

    def noise():  # another agent's record, rewritten twice a second
        n = 0
        while not stop.is_set():
            n += 1
            fake_kit.root.joinpath("status", "noise.json").write_text(json.dumps({"agent": "noise", "run_id": "r", "task": "t", "status": "completed", "num_turns": n}))
            stop.wait(0.5)

    writer = threading.Thread(target=noise, daemon=True)
    writer.start()
    try:
        os.kill(rec["supervisor_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 60  # a deadline, not a delay: the re-check comes every 5 s
        while True:
            assert time.monotonic() < deadline, "victim never showed lost while noise.json kept changing"
            line = response.fp.readline()
            assert line, "the stream ended before the run showed lost"
            if line.startswith(b"data:") and any(a["name"] == "victim" and a["status"] == "lost"
                                                 for a in json.loads(line[5:])["agents"]):
                break
    finally:
        stop.set()
        writer.join(timeout=10)
        connection.close()
        try:
            os.kill(rec["pid"], signal.SIGKILL)  # the CLI its supervisor left behind
        except ProcessLookupError:
            pass


def test_git_runs_only_in_a_worktree_inside_the_agents_own_workspace(tmp_path):
    """A record is untrusted: a worktree path it names outside workspaces/NAME/ gets no git run (a repository's
    config can name commands git runs, e.g. core.fsmonitor)."""
    from claude_orchestrator.core.paths import StatePaths
    from claude_orchestrator.web.snapshot import diffstat

    paths = StatePaths(tmp_path / "root")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    marker = tmp_path / "ran"
    subprocess.run(["git", "init", "-q", str(outside)], check=True, timeout=60)
    subprocess.run(["git", "-C", str(outside), "config", "core.fsmonitor", f"touch {marker}; false"], check=True, timeout=60)
    paths.workspace("a").mkdir(parents=True)
    assert diffstat(paths, "a", {"path": str(outside), "branch": "b", "base_commit": "0" * 40}) is None
    assert diffstat(paths, "a", {"path": str(paths.workspace("a") / ".." / ".." / ".." / "elsewhere"), "branch": "b",
                                 "base_commit": "0" * 40}) is None
    assert not marker.exists()
