"""The web console and the HTML report in a real browser (issue 21): Debian's chromium driven by Playwright.

The console runs as a user starts it (``agents/web_console.py --port 0 --no-browser``), opened at
the URL it prints, and is stopped with Ctrl-C (SIGINT; it must exit 0).  The agents run the fake
CLI (tests/fake_claude.py), except in the message test, where the real CLI (against the fake API)
takes the page's message.  One console and one state root serve the module's other tests in each
test process (a pytest-xdist worker), started once; each test launches the agents it asserts on under names of its own.  Tests wait for what the
page shows (Playwright's ``expect``: a deadline, never a delay) or for what a record says
(``wait_agents.py``), never on a sleep.  Every page is checked for script errors and
Content-Security-Policy violations.  Each test saves a screenshot in its tmp_path (the
overview's, the timeline's, an agent page's and the report's also go to
:data:`browser.SHOTS` when ORCHESTRATOR_BROWSER_SHOTS names a folder).

The DOM hooks used are the contract's (the issue's "Stable DOM hooks"): ``#overview``
``tr[data-agent]`` with ``td.status``/``td.elapsed``, ``#totals``, ``#filter``, ``#timeline``
``g.run[data-agent]`` with ``rect.seg.<phase>``, ``path.dep``, ``line#now-line``, the agent page's
``#agent-status``, ``#transcript``, ``#result``, ``#message-text``, ``#send-message``, ``#kill``,
``#action-status``, and ``#live-status``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser import (  # noqa: F401 (browser_fixture, page_fixture: the fixtures browser and page)
    WebConsole,
    browser_fixture,
    expect,
    missing,
    page_fixture,
    screenshot,
    skip_or_fail,
)
from conftest import TERMINAL, Toolkit, stop_leftovers, wait_until

from claude_orchestrator.devtools.fake_api import user_prompt

#: An agent's output that would run script if it were put into the page as HTML.
MARKUP = "<img src=x onerror=window.__pwned=1><script>window.__pwned=2</script>"

#: Runs before any of the page's own scripts: notes Content-Security-Policy violations (a blocked inline script or
#: handler means markup got into the DOM, even though the CSP kept it from running).
WATCH = ("window.__violations = [];"
         "document.addEventListener('securitypolicyviolation',"
         " e => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || '')));")


#: ``#action-status``'s class once the server said the action was done (``err`` if refused, ``busy`` before the reply).
ACTION_OK = re.compile(r"(^|\s)ok(\s|$)")


@dataclass
class Shared:
    """The module's state root (a kit with the fake CLI) and the console serving it."""

    kit: Toolkit
    console: WebConsole
    work: Path


def fake_cli_env(base: Path, root: Path) -> dict[str, str]:
    """conftest's fake_kit environment, built for a module (its fixtures are per test)."""
    claude = base / "bin" / "claude"
    claude.parent.mkdir()
    claude.write_text(f"#!{sys.executable}\n" + (Path(__file__).parent / "fake_claude.py").read_text())
    claude.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))}
    return dict(env, ORCHESTRATOR_HOME=str(root), CLAUDE_BIN=str(claude))


@pytest.fixture(scope="session")
def shared(tmp_path_factory):
    """Three agents that ended before the console opened (``early-a``; ``early-b``, after it; ``early-inert``, whose
    task and result hold :data:`MARKUP`), then the console; stopped with Ctrl-C at the end of the test process.

    Session-scoped, not module-scoped: under pytest-xdist a worker runs other modules' tests between this
    module's, and a module's fixtures are torn down before each of those.
    """
    reason = missing()  # nothing to start for tests that cannot run
    if reason:
        skip_or_fail(reason)
    base = tmp_path_factory.mktemp("web")
    root = base / "home"
    root.mkdir()
    work = base / "work"
    work.mkdir()
    kit = Toolkit(root, fake_cli_env(base, root))
    for args in (["early-a", "first of the early ones"],
                 ["early-b", "second, after the first", "--after", "early-a"],
                 ["early-inert", f"markup {MARKUP}"]):
        out = kit.run("launch_agent", *args, "--cwd", str(work))
        assert out.returncode == 0, out.stderr
    done = kit.run("wait_agents", "early-a", "early-b", "early-inert", "--timeout", "120", timeout=150)
    assert done.returncode == 0, done.stdout + done.stderr
    console = WebConsole(kit)
    yield Shared(kit, console, work)
    try:
        console.stop()
    finally:
        kit.run("kill_agent", "--all")
        kit.stop_started()
        leaked = stop_leftovers(root)
        assert not leaked, f"processes left running: {leaked}"


def launch(kit: Toolkit, name: str, task: str, *args: str, cwd: Path) -> None:
    out = kit.run("launch_agent", name, task, "--cwd", str(cwd), *args)
    assert out.returncode == 0, out.stderr


def record_names(kit: Toolkit) -> list[str]:
    return sorted(p.stem for p in (kit.root / "status").glob("*.json"))


def board(console: WebConsole) -> dict:
    """GET /api/board with the token's cookie, as the page asks it."""
    response = console.request("GET", "/api/board", headers={"Cookie": console.cookie()})
    assert response.status == 200, (response.status, response.body[:300])
    return json.loads(response.body)


def open_console(page, console: WebConsole, route: str = "") -> list[str]:
    """Open the URL the console printed (the token becomes a cookie), wait for the live connection, then go to
    ``#ROUTE`` if given.  Returns the list the page's script errors are appended to."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.add_init_script(WATCH)
    page.goto(console.url)
    expect(page.locator("#live-status")).to_have_text("live")
    if route:
        page.goto(f"{console.base}/#{route}")
    return errors


def assert_clean(page, errors: list[str]) -> None:
    """No script error, no CSP violation, and nothing an agent wrote ran."""
    assert errors == [], f"script errors on the page: {errors}"
    assert page.evaluate("window.__violations") == [], "Content-Security-Policy violations"
    assert page.evaluate("typeof window.__pwned") == "undefined", "an agent's markup ran"


def row(page, name: str):
    return page.locator(f'#overview tr[data-agent="{name}"]')


def test_the_overview_lists_the_agents_launched_before_it_opened(shared, page, tmp_path):
    names = record_names(shared.kit)
    shown = {a["name"]: a["shown"] for a in board(shared.console)["agents"]}
    errors = open_console(page, shared.console)
    rows = page.locator("#overview tr[data-agent]")
    expect(rows).to_have_count(len(names))
    assert [rows.nth(i).get_attribute("data-agent") for i in range(len(names))] == names, "sorted by name"
    for name in ("early-a", "early-b", "early-inert"):
        expect(row(page, name).locator("td.status")).to_have_text("completed")
        expect(row(page, name).locator("td.cost")).not_to_be_empty()
    for name in names:
        if shown[name] in TERMINAL:  # an ended agent reads as the server's board says
            expect(row(page, name).locator("td.status")).to_have_text(shown[name])
    expect(page.locator("#totals")).to_contain_text("completed")
    assert "orch_token" not in page.evaluate("document.cookie"), "the session cookie is HttpOnly"
    screenshot(page, tmp_path, "overview", share=True)
    page.locator("#filter").fill("early-b")
    expect(row(page, "early-b")).to_be_visible()
    expect(row(page, "early-a")).to_be_hidden()
    page.locator("#filter").fill("")
    expect(row(page, "early-a")).to_be_visible()
    assert_clean(page, errors)


def test_an_agent_launched_after_the_page_opened_shows_up_without_reload(shared, page, tmp_path):
    gate = tmp_path / "gate"
    errors = open_console(page, shared.console)
    expect(row(page, "early-a")).to_be_visible()
    page.evaluate("window.__same_document = true")
    launch(shared.kit, "late-1", f"arrives late [[fake: until:{gate}]]", cwd=shared.work)
    status = row(page, "late-1").locator("td.status")
    expect(status).to_have_text("running")
    elapsed = row(page, "late-1").locator("td.elapsed")
    expect(elapsed).not_to_be_empty()
    first = elapsed.inner_text()
    expect(elapsed).not_to_have_text(first)  # the time moves while it runs, with no record change
    gate.write_text("open")
    expect(status).to_have_text("completed")
    assert page.evaluate("window.__same_document") is True, "the page was not reloaded"
    screenshot(page, tmp_path, "late-agent")
    assert_clean(page, errors)


def test_the_timeline_draws_a_bar_per_agent_with_dependencies_and_a_now_line(shared, page, tmp_path):
    gate = tmp_path / "gate"
    launch(shared.kit, "tl-held", f"held [[fake: until:{gate}]]", cwd=shared.work)
    launch(shared.kit, "tl-next", "after the held one", "--after", "tl-held", cwd=shared.work)
    errors = open_console(page, shared.console)
    held = page.locator('#timeline g.run[data-agent="tl-held"]')
    expect(held.locator("rect.seg.running")).to_have_count(1)
    expect(page.locator('#timeline g.run[data-agent="tl-next"] rect.seg.waiting')).to_have_count(1)
    expect(page.locator('#timeline path.dep[data-from="tl-held"][data-to="tl-next"]')).to_have_count(1)
    expect(page.locator("#timeline line#now-line")).to_have_count(1)
    for name in record_names(shared.kit):  # every agent has its bar, drawn with a width
        expect(page.locator(f'#timeline g.run[data-agent="{name}"] rect.seg').first).to_be_attached()
    page.wait_for_function("""() => [...document.querySelectorAll('#timeline g.run rect.seg')]
                                      .every(r => r.getBBox().width > 0 && r.getBBox().height > 0)""")
    gate.write_text("open")
    expect(held).to_have_class(re.compile(r"(^|\s)status-completed(\s|$)"))
    nxt = page.locator('#timeline g.run[data-agent="tl-next"]')
    expect(nxt).to_have_class(re.compile(r"(^|\s)status-completed(\s|$)"))
    expect(nxt.locator("rect.seg.running")).to_have_count(1)
    done = shared.kit.run("wait_agents", "--timeout", "120", timeout=150)  # every active agent of the root
    assert done.returncode == 0, done.stdout + done.stderr
    expect(page.locator("#timeline line#now-line")).to_have_count(0)
    screenshot(page, tmp_path, "timeline", share=True)
    assert_clean(page, errors)


def test_kill_then_clear_from_the_page(shared, page, tmp_path):
    launch(shared.kit, "kill-me", "runs until stopped [[fake: hang]]", cwd=shared.work)
    errors = open_console(page, shared.console, "/agent/kill-me")
    expect(page.locator("#agent-name")).to_have_text("kill-me")
    expect(page.locator("#agent-status")).to_contain_text("running")
    page.on("dialog", lambda dialog: dialog.accept())  # should the page ask "are you sure?"
    page.locator("#kill").click()
    expect(page.locator("#action-status")).to_have_class(ACTION_OK)
    expect(page.locator("#agent-status")).to_contain_text("killed")
    done = shared.kit.run("wait_agents", "kill-me", "--timeout", "60", timeout=90)
    assert done.returncode == 1 and "killed" in done.stdout, done.stdout + done.stderr
    assert shared.kit.record("kill-me")["status"] == "killed"
    screenshot(page, tmp_path, "killed")
    # then Clear: the page shows the agent gone, offers nothing to act on, and keeps nothing of what it was
    page.locator("#clear").click()
    expect(page.locator("#agent-status")).to_contain_text("no such agent")
    expect(page.locator("#actions")).to_be_hidden()
    expect(page.locator("#transcript .ev")).to_have_count(0)
    assert shared.kit.record("kill-me") is None
    assert_clean(page, errors)


def test_markup_in_an_agents_output_stays_inert_text(shared, page, tmp_path):
    errors = open_console(page, shared.console)
    expect(row(page, "early-inert")).to_be_visible()
    page.goto(f"{shared.console.base}/#/agent/early-inert")
    expect(page.locator("#agent-name")).to_have_text("early-inert")
    expect(page.locator("#result")).to_contain_text(MARKUP)
    expect(page.locator("#transcript")).to_contain_text(MARKUP)
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("script:not([src])").count() == 0, "the live page has no inline script"
    screenshot(page, tmp_path, "agent-page", share=True)
    assert_clean(page, errors)


def test_without_the_token_requests_are_refused_and_reveal_nothing(shared, page, tmp_path):
    console = shared.console
    launch(shared.kit, "csrf-target", "would be killed [[fake: hang]]", cwd=shared.work)
    refused = {
        "GET /": console.request("GET", "/"),
        "GET /api/board": console.request("GET", "/api/board"),
        "GET /api/agents/early-a": console.request("GET", "/api/agents/early-a"),
        "GET /api/events": console.request("GET", "/api/events"),
        "GET /static/console.js": console.request("GET", "/static/console.js"),
        "GET /?token=wrong": console.request("GET", "/?token=wrong"),
        "GET /api/board with a forged cookie": console.request("GET", "/api/board",
                                                               headers={"Cookie": f"{console.cookie().split('=')[0]}=forged"}),
        "POST kill without a cookie": console.request("POST", "/api/agents/csrf-target/kill", body=b"{}",
                                                      headers={"Content-Type": "application/json"}),
    }
    for what, response in refused.items():
        assert response.status in (401, 403), f"{what}: {response.status}"
        assert not re.search(rb"early-|csrf-target|<meta|\{", response.body), f"{what} revealed {response.body[:200]!r}"
        assert not response.headers.get_all("Set-Cookie"), f"{what} set a cookie"
    unknown = console.request("GET", "/api/agents/no-such-agent")
    known = refused["GET /api/agents/early-a"]
    assert (unknown.status, unknown.body) == (known.status, known.body), "a refusal tells no agent's existence"
    set_cookie = ";".join(console.request("GET", f"/?token={console.token}").headers.get_all("Set-Cookie"))
    assert "HttpOnly" in set_cookie and re.search(r"SameSite=Strict", set_cookie, re.I), set_cookie
    cookie = console.cookie()
    html = console.request("GET", "/", headers={"Cookie": cookie})
    assert html.status == 200
    csrf = re.search(rb'<meta name="csrf-token" content="([^"]+)"', html.body).group(1).decode()
    for what, headers in {"no CSRF header": {}, "a wrong CSRF header": {"X-CSRF-Token": "wrong"},
                          "the CSRF header from another origin": {"X-CSRF-Token": csrf, "Origin": "http://elsewhere.invalid"}}.items():
        response = console.request("POST", "/api/agents/csrf-target/kill", body=b"{}",
                                   headers={"Cookie": cookie, "Content-Type": "application/json", **headers})
        assert response.status == 403, f"POST kill with the cookie and {what}: {response.status}"
    assert shared.kit.record("csrf-target")["status"] not in TERMINAL, "a refused action did nothing"
    assert shared.kit.run("kill_agent", "csrf-target").returncode == 0
    # and a browser without the token sees the refusal, nothing else
    response = page.goto(console.base + "/")
    assert response.status == 401
    expect(page.locator("body")).to_have_text(re.compile(r"^\s*401: token required\s*$"))
    screenshot(page, tmp_path, "refused")


def test_the_report_opens_offline_and_shows_the_same_agents(shared, browser, tmp_path):
    done = shared.kit.run("wait_agents", "--timeout", "120", timeout=150)  # nothing active: the two views agree
    assert done.returncode in (0, 1), done.stdout + done.stderr
    live = {a["name"]: a for a in board(shared.console)["agents"]}
    report = tmp_path / "report.html"
    out = shared.kit.run("report_agents", "--html", str(report))
    assert out.returncode == 0, out.stderr
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    fetched: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            fetched.append(route.request.url)
            route.abort()

    context.route("**/*", only_files)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.add_init_script(WATCH)
        page.goto(report.as_uri())
        expect(page.locator("#live-status")).to_contain_text("report")
        rows = page.locator("#overview tr[data-agent]")
        expect(rows).to_have_count(len(live))
        assert sorted(rows.nth(i).get_attribute("data-agent") for i in range(len(live))) == sorted(live)
        for name, agent in live.items():
            expect(row(page, name).locator("td.status")).to_have_text(agent["shown"])
            expect(page.locator(f'#timeline g.run[data-agent="{name}"]').first).to_be_attached()
        screenshot(page, tmp_path, "report", share=True)
        page.goto(report.as_uri() + "#/agent/early-inert")
        expect(page.locator("#result")).to_contain_text(MARKUP)
        assert page.locator("img[src='x']").count() == 0
        for action in ("#kill", "#send-message", "#resume", "#clear"):
            expect(page.locator(action)).to_be_hidden()  # a report acts on nothing
        assert_clean(page, errors)
        assert fetched == [], f"the report fetched from the network: {fetched}"
    finally:
        context.close()


def test_a_message_sent_from_the_page_reaches_the_agent(real_kit, page, tmp_path):
    """The real CLI (against the fake API), kept open after its turn: the page's message is its next turn."""
    work = tmp_path / "work"
    work.mkdir()
    out = real_kit.run("launch_agent", "talker", "wait for a note [[reply: ready]]", "--cwd", str(work),
                       "--keep-open", "300")
    assert out.returncode == 0, out.stderr
    real_kit.run("wait_agents", "talker", "--timeout", "120", timeout=150)  # returns once its turn ended (idle)
    assert real_kit.record("talker").get("keep_open_until"), real_kit.record("talker")
    console = WebConsole(real_kit)
    try:
        errors = open_console(page, console, "/agent/talker")
        expect(page.locator("#agent-status")).to_contain_text("running")
        page.locator("#message-text").fill("a note from the page PAGE-7 [[reply: got PAGE-7]]")
        page.locator("#send-message").click()
        expect(page.locator("#action-status")).to_have_class(ACTION_OK)
        rec = wait_until(lambda: (r := real_kit.record("talker")) and (r.get("messages") or {}).get("answered") == 1 and r,
                         timeout=120, what="the page's message answered")
        assert rec["status"] == "running" and rec["messages"]["delivered"] == 1
        prompts = [user_prompt(body) for body in real_kit.api.messages_requests()]
        assert any(p.startswith("a note from the page PAGE-7") for p in prompts), prompts
        expect(page.locator("#transcript")).to_contain_text("got PAGE-7")  # the live transcript shows the answer
        screenshot(page, tmp_path, "message")
        assert_clean(page, errors)
    finally:
        try:
            console.stop()
        finally:
            real_kit.run("kill_agent", "talker")
