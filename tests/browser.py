"""A real browser for the web console's tests: Debian's chromium, driven by Playwright's Python API.

Playwright launches the system's chromium (``executable_path``): it never downloads a browser
(``make install-browser`` installs Debian's ``chromium``; CI runs it).  The binary is
``$ORCHESTRATOR_CHROMIUM`` if set, else Debian's ``/usr/lib/chromium/chromium`` (the real
binary; ``/usr/bin/chromium`` is a shell wrapper that also works), else a ``chromium`` or
``chromium-browser`` on PATH.

Fixtures, for a test module to import (``from browser import browser_fixture, page_fixture  # noqa: F401``;
named ``browser`` and ``page`` for the tests):

- ``browser``: one headless chromium for a module's tests in a row (see :func:`browser_fixture` for why
  not one per test process), started at the first test that needs it, with ``--no-sandbox`` (the tests run as root in CI, and chromium's
  sandbox refuses root).  When chromium or Playwright is missing the test is skipped with the
  reason, or FAILS when ``ORCHESTRATOR_REQUIRE_BROWSER=1`` (set by .ci/run, as
  ``ORCHESTRATOR_REQUIRE_SLURM`` is for the Slurm tests).
- ``page``: a page in a fresh browser context (its own cookies and storage) per test, closed after it.

:class:`WebConsole` runs ``agents/web_console.py --port 0 --no-browser`` as a user would, reads
the URL it prints, and stops it with SIGINT (Ctrl-C), checking that it exits 0.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import urllib.parse
from pathlib import Path

import pytest
from conftest import Toolkit

from claude_orchestrator.devtools.chromium import chromium_executable

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the test extra is not installed: the fixtures skip (or fail) with the reason
    expect = sync_playwright = None
    PlaywrightError = Exception

#: How long a page's expectation waits for what it expects (ms): a deadline, never a delay; the machine is shared
#: and slow, and a browser, a server and the runs' supervisors all compete for its two cores.
TIMEOUT_MS = 30_000

if expect is not None:
    expect.set_options(timeout=TIMEOUT_MS)

#: Where the overview's, the timeline's, an agent page's and the report's screenshots are copied (besides each
#: test's tmp_path) to be looked at: ORCHESTRATOR_BROWSER_SHOTS, if set.
SHOTS = os.environ.get("ORCHESTRATOR_BROWSER_SHOTS")


def missing() -> str | None:
    """Why the browser tests cannot run here (None when they can)."""
    if sync_playwright is None:
        return "Playwright is not installed: run `make test-deps` (the test extra: pip install -e '.[test]')"
    if chromium_executable() is None:
        wanted = os.environ.get("ORCHESTRATOR_CHROMIUM")
        if wanted:
            return f"ORCHESTRATOR_CHROMIUM={wanted} is not an executable file"
        return ("no chromium: run `make install-browser` (Debian's chromium: apt-get install chromium), "
                "or set ORCHESTRATOR_CHROMIUM=/path/to/chromium")
    return None


def skip_or_fail(message: str) -> None:
    """Skip the test with ``message``, or fail it when ``ORCHESTRATOR_REQUIRE_BROWSER=1`` (CI must run it)."""
    if os.environ.get("ORCHESTRATOR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{message} (ORCHESTRATOR_REQUIRE_BROWSER=1: the browser tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module", name="browser")
def browser_fixture():
    """One headless chromium for a test module's tests in a row (for each of them under pytest-xdist, whose workers
    take tests of other modules in between), closed after them.

    Not one per test process: while started, Playwright's sync API keeps its asyncio loop running in the main
    thread (in a greenlet), so another test's ``asyncio.run`` or ``anyio.run`` in that process would fail
    ("cannot be called from a running event loop"); pytest tears a module's fixtures down before the next
    module's test runs.
    """
    reason = missing()
    if reason:
        skip_or_fail(reason)
    # belt and braces: Playwright's pip package never downloads a browser, and this one is the system's
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(executable_path=chromium_executable(), headless=True,
                                              args=["--no-sandbox", "--disable-dev-shm-usage"])
    except PlaywrightError as exc:
        playwright.stop()
        pytest.fail(f"chromium {chromium_executable()} did not start under Playwright: {exc}", pytrace=False)
    yield launched
    launched.close()
    playwright.stop()


@pytest.fixture(name="page")
def page_fixture(browser):
    """A page in a fresh context (no cookies, no storage), 1280x800; the context is closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page, tmp_path: Path, name: str, share: bool = False) -> Path:
    """A full-page screenshot as ``tmp_path/NAME.png``; with ``share``, copied into :data:`SHOTS` too, if set."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if share and SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(SHOTS) / path.name)
    return path


#: The line web_console.py prints: the URL with its token.
URL_LINE = re.compile(r"(http://127\.0\.0\.1:(\d+))/\?token=([^\s&#]+)")


class WebConsole:
    """``agents/web_console.py --port 0 --no-browser`` running on a kit's state root, with the kit's environment.

    Attributes: ``url`` (what it printed: ``http://127.0.0.1:PORT/?token=TOKEN``), ``base``
    (``http://127.0.0.1:PORT``), ``port``, ``token``, ``started`` (conftest's :class:`~conftest.Background`).
    """

    def __init__(self, kit: Toolkit, timeout: float = 60) -> None:
        self.started = kit.start("web_console", "--port", "0", "--no-browser")
        line = self.started.expect(URL_LINE.pattern, timeout=timeout)
        match = URL_LINE.search(line)
        self.url, self.base, self.port, self.token = match.group(0), match.group(1), int(match.group(2)), match.group(3)

    def stop(self, timeout: float = 30) -> None:
        """Ctrl-C (SIGINT): the server must stop cleanly (exit status 0, no traceback)."""
        proc = self.started.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code, out, err = self.started.finish(timeout)
        assert code == 0, f"web_console.py exited {code} on SIGINT; stdout {out}, stderr {err}"

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> http.client.HTTPResponse:
        """One plain HTTP request (no redirect followed, no cookie unless given): the response, its body read
        (``response.body``)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            response.body = response.read()
            return response
        finally:
            connection.close()

    def cookie(self) -> str:
        """The session cookie the token gives (``name=value``), as the browser gets it from ``/?token=T``
        (its name is the server's: ``orch-console-PORT``)."""
        response = self.request("GET", "/?" + urllib.parse.urlencode({"token": self.token}))
        assert response.status in (302, 303, 307), f"/?token=T answered {response.status}, not a redirect"
        cookies = response.headers.get_all("Set-Cookie") or []
        assert len(cookies) == 1, f"/?token=T should set one cookie: {cookies}"
        return cookies[0].split(";", 1)[0]

