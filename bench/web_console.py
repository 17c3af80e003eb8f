"""Item 10, the web console in a real browser: record change -> page update, the first render of 500 agents, idle CPU.

``agents/web_console.py --port 0 --no-browser`` runs as a user starts it (its
own process, the URL read from what it prints); the page is opened in Debian's
chromium driven by Playwright's Python API (the system binary: nothing is
downloaded).  The records are clones of a real one: an agent run to its end on
the fake CLI (tests/fake_claude.py), its ``status/NAME.json`` copied with new
names, run IDs and times.  A clone that says ``running`` has its life lock held
by the bench, as its supervisor would hold it (else the server would mark it
``lost``).

1. Record change -> page update: the page open on 20 agents, one record is
   rewritten as the toolkit writes it (a temp file beside it, then
   ``os.replace``), its status turning ``running`` -> ``completed`` (with a
   finished time, an exit code, a result) or back, after a random pause of 50
   to 300 ms.  The clock starts right before ``os.replace`` (``time.time()``)
   and stops in the page: a MutationObserver on the row's ``td.status`` notes
   ``performance.timeOrigin + performance.now()`` when its text changes (one
   machine, one clock; the two are checked against each other first).  A
   wrapper around the page's EventSource notes when the ``board`` event
   arrived, which splits the figure into the server's share (watcher, re-read,
   event, transport) and the page's (merge, render).
2. The overview's first render with 500 agents (490 ended, 10 running): a new
   page (same browser context, the token's cookie already set) goes to ``/``;
   the figure is the page's own time from the navigation's start
   (``performance.now()``, Navigation Timing's origin) until all 500 rows are
   in ``#overview tbody`` (a MutationObserver installed before any script of
   the page runs); also shown: when the first server-sent event, the whole
   board, arrived (the page fetches nothing else) and the next animation frame
   (the rows painted).  One warm-up load
   first, not counted.
3. Idle CPU: the page of item 1 open (3 agents running, so the page ticks
   every second and the server re-reads the active records every 5 s), nothing
   changing: CPU seconds (user + system, the server's process and children)
   per second of wall time over a window, in % of one core; also chromium's
   (all its processes: browser, renderer, GPU, utilities).  CPU times come in
   clock ticks (10 ms): over 20 s one tick is 0.05%.

    python bench/web_console.py [--quick] [--rounds 30] [--loads 5] [--agents 500] [--idle 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import selectors
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from common import AGENTS, Row, fake_env, hold, p95, record, script, table

from claude_orchestrator.core.files import write_atomic
from claude_orchestrator.core.paths import StatePaths
from claude_orchestrator.devtools.chromium import chromium_executable
from claude_orchestrator.records.shape import utc_now

GOAL_UPDATE_P95_MS = 500.0
GOAL_FIRST_RENDER_MS = 1000.0
GOAL_IDLE_CPU = 1.0  # % of one core
SMALL = 20  # agents on the page of items 1 and 3
RUNNING_IDLE = 3  # of them running during item 3
RUNNING_BIG = 10  # of the 500 of item 2
TARGET = "w00"  # the agent whose record item 1 rewrites
URL_LINE = re.compile(r"(http://127\.0\.0\.1:(\d+))/\?token=([^\s&#]+)")
ENDED = ("completed", "completed", "completed", "completed", "completed", "completed", "failed", "killed", "timeout")

#: Before any script of the page: note when each ``board`` event arrives (the page's own listener runs after).
EVENT_HOOK = """
(() => {
  const ES = window.EventSource;
  if (!ES) return;
  window.__evAt = null;
  window.EventSource = class extends ES {
    constructor(url, options) {
      super(url, options);
      this.addEventListener('board', () => {
        if (window.__evAt === null) window.__evAt = performance.timeOrigin + performance.now();
      });
    }
  };
})();
"""

#: Before any script of the page: note when ``#overview tbody`` first holds WANT agent rows, and the next frame.
ROWS_HOOK = """
(() => {
  const want = WANT;
  window.__rowsAt = null; window.__paintAt = null;
  const start = () => {
    const tb = document.querySelector('#overview tbody');
    if (!tb) return;
    const obs = new MutationObserver(() => check());
    const check = () => {
      if (window.__rowsAt === null && tb.querySelectorAll('tr[data-agent]').length >= want) {
        window.__rowsAt = performance.now();
        obs.disconnect();
        requestAnimationFrame(() => { window.__paintAt = performance.now(); });
      }
    };
    obs.observe(tb, { childList: true });
    check();
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
})();
"""

#: On the open page: watch NAME's status cell; its new text and when (epoch ms) land in window.__seen / __shown.
WATCH_CELL = """
(name) => {
  const cell = document.querySelector('#overview tr[data-agent="' + name + '"] td.status');
  if (!cell) return null;
  if (window.__obs) window.__obs.disconnect();
  const before = cell.textContent;
  window.__seen = null; window.__shown = null; window.__evAt = null;
  window.__obs = new MutationObserver(() => {
    if (window.__seen === null && cell.textContent !== before) {
      window.__seen = performance.timeOrigin + performance.now();
      window.__shown = cell.textContent;
    }
  });
  window.__obs.observe(cell, { childList: true, subtree: true, characterData: true });
  return before;
}
"""


# -- records -----------------------------------------------------------------


def _clone(template: dict[str, Any], paths: StatePaths, name: str, i: int, status: str, now: float) -> dict[str, Any]:
    """``template`` (a real ended record) as agent ``name``'s, in ``status``, its times spread over the last hour."""
    rec = json.loads(json.dumps(template))
    created = now - 3600 + (i * 37) % 3300
    started = created + 0.5 + (i % 7) * 0.3
    run_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(created))}-{i:06x}"
    rec.update(agent=name, run_id=run_id, task=f"bench: agent {i} of the web console's benchmark",
               created=utc_now(created), started=utc_now(started), status_changed=utc_now(started),
               last_activity=utc_now(started), entered={"starting": utc_now(created)},
               output_file=str(paths.latest_output(name)), transcript_file=str(paths.transcript(name, run_id)),
               log_file=str(paths.log(name, run_id)), task_file=str(paths.task_file(name, run_id)))
    _set_status(rec, status, started + 20 + (i * 53) % 600)
    return rec


def _set_status(rec: dict[str, Any], status: str, finished: float) -> None:
    """``rec`` turned ``status``: ended at ``finished`` (with an outcome), or running (no outcome)."""
    if status == "running":
        rec.update(status="running", finished=None, duration_s=None, exit_code=None, is_error=False, error=None,
                   result=None)
        return
    from claude_orchestrator.records.shape import parse_time

    started = parse_time(rec.get("started")) or finished
    ok = status == "completed"
    rec.update(status=status, finished=utc_now(finished), status_changed=utc_now(finished),
               duration_s=round(max(0.0, finished - started), 3), exit_code=0 if ok else 1, is_error=not ok,
               error=None if ok else f"bench: {status}", result="FAKE: done" if ok else None)


def _replace(path: Path, rec: dict[str, Any]) -> float:
    """Write ``rec`` as the toolkit does (a temp file beside ``path``, then ``os.replace``); epoch ms just before the replace."""
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(rec, indent=2))
        f.flush()
        os.fsync(f.fileno())
    t0 = time.time() * 1000
    os.replace(tmp, path)
    return t0


def _populate(template: dict[str, Any], paths: StatePaths, prefix: str, count: int, running: int) -> list[int]:
    """``count`` records ``PREFIXnnn`` (the first ``running`` of them running, their life locks held: the fds)."""
    paths.ensure()
    now = time.time()
    fds = []
    width = max(2, len(str(count - 1)))
    for i in range(count):
        name = f"{prefix}{i:0{width}d}"
        status = "running" if i < running else ENDED[i % len(ENDED)]
        if status == "running":
            fds.append(hold(paths, name))
        write_atomic(paths.status(name), json.dumps(_clone(template, paths, name, i, status, now), indent=2), durable=False)
    return fds


# -- the server and the browser ----------------------------------------------


class Console:
    """``agents/web_console.py --port 0 --no-browser`` on a state root; ``url`` as printed, ``base``, ``proc``."""

    def __init__(self, env: dict[str, str], root: Path, timeout: float = 60) -> None:
        self.proc = subprocess.Popen([sys.executable, str(AGENTS / "web_console.py"), "--port", "0", "--no-browser"],
                                     env=dict(env, ORCHESTRATOR_HOME=str(root)), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        seen = ""
        while True:
            if time.monotonic() > deadline or not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                self.stop()
                raise SystemExit(f"web_console.py printed no URL within {timeout:g} s: {seen!r}")
            line = self.proc.stdout.readline()
            if not line:
                err = self.stop()
                raise SystemExit(f"web_console.py exited {self.proc.returncode} before printing its URL: {err.strip()}")
            seen += line
            m = URL_LINE.search(line)
            if m:
                self.url, self.base = m.group(0), m.group(1)
                break
        sel.close()

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the server and its children so far."""
        p = psutil.Process(self.proc.pid)
        return _cpu_s([p, *p.children(recursive=True)])

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; its stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err or ""


def _cpu_s(processes) -> float:
    """CPU seconds (user + system) of ``processes`` so far; one that has gone counts none."""
    total = 0.0
    for q in processes:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _chromium_cpu_s() -> float:
    """CPU seconds of every chromium process this bench started (the browser's whole tree)."""
    def chromium(q) -> bool:
        try:
            return "chrom" in q.name().lower()
        except psutil.NoSuchProcess:
            return False
    return _cpu_s(q for q in psutil.Process().children(recursive=True) if chromium(q))


def _clock_skew_ms(page) -> float:
    """How far the page's clock (timeOrigin + now) is from ``time.time()`` (0 if within the call)."""
    a = time.time() * 1000
    t = page.evaluate("() => performance.timeOrigin + performance.now()")
    b = time.time() * 1000
    return 0.0 if a - 1 <= t <= b + 1 else (t - b if t > b else t - a)


# -- the measures ------------------------------------------------------------


def _updates(page, paths: StatePaths, template: dict[str, Any], rounds: int, rng: random.Random) -> tuple[list, list]:
    """Item 1: ``(write -> cell changed, write -> event arrived)`` in ms, one per round."""
    path = paths.status(TARGET)
    lat, event = [], []
    for i in range(rounds):
        rec = record(paths.root, TARGET)
        new = "completed" if rec["status"] == "running" else "running"
        before = page.evaluate(WATCH_CELL, TARGET)
        if before is None:
            raise SystemExit(f"the page shows no row tr[data-agent={TARGET}] with a td.status (#overview)")
        _set_status(rec, new, time.time())
        time.sleep(rng.uniform(0.05, 0.3))
        t0 = _replace(path, rec)
        try:
            page.wait_for_function("() => window.__seen !== null", timeout=30_000, polling=50)
        except Exception as exc:  # noqa: BLE001 - said plainly: the page never showed the change
            raise SystemExit(f"round {i + 1}: {TARGET} turned {new} but its status cell still shows {before!r} "
                             f"after 30 s ({exc.__class__.__name__})") from exc
        seen, shown, ev = page.evaluate("() => [window.__seen, window.__shown, window.__evAt]")
        if not shown.startswith(new):
            raise SystemExit(f"round {i + 1}: {TARGET} turned {new}, the page shows {shown!r}")
        lat.append(seen - t0)
        if ev is not None:
            event.append(ev - t0)
    return lat, event


def _first_renders(context, base: str, loads: int, agents: int) -> tuple[list, list, list, list]:
    """Item 2: per load (after one warm-up) ``(rows present, the whole board's event arrived, next frame, wall time)`` in ms."""
    rows, board, paint, wall = [], [], [], []
    for i in range(loads + 1):
        page = context.new_page()
        t0 = time.perf_counter()
        page.goto(base + "/")
        page.wait_for_function("() => window.__rowsAt !== null && window.__paintAt !== null", timeout=60_000, polling=20)
        t1 = time.perf_counter()
        at, painted, answered, count = page.evaluate("""() => {
          return [window.__rowsAt, window.__paintAt, window.__evAt === null ? null : window.__evAt - performance.timeOrigin,
                  document.querySelectorAll('#overview tbody tr').length];
        }""")
        page.close()
        if count != agents:
            raise SystemExit(f"load {i + 1}: #overview tbody holds {count} rows, not {agents}")
        if i == 0:
            continue  # warm-up: the server's first page
        rows.append(at)
        paint.append(painted)
        wall.append((t1 - t0) * 1000)
        if answered is not None:
            board.append(answered)
    return rows, board, paint, wall


def measure(quick: bool = False, rounds: int | None = None, loads: int | None = None, agents: int = 500,
            idle: float | None = None) -> list[Row]:
    from playwright.sync_api import sync_playwright

    rounds = rounds or (10 if quick else 30)
    loads = loads or (3 if quick else 5)
    idle = idle or (8.0 if quick else 20.0)
    exe = chromium_executable()
    if exe is None:
        raise SystemExit("no chromium: apt-get install chromium (or set ORCHESTRATOR_CHROMIUM)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    rng = random.Random(10)
    fds: list[int] = []
    consoles: list[Console] = []
    with fake_env() as (env, state), sync_playwright() as pw:
        try:
            # a real record to clone
            script(env, "launch_agent", "x", "bench: a record to clone", "--wait")
            template = record(state, "x")
            small = StatePaths(state.parent / "small")
            big = StatePaths(state.parent / "big")
            fds += _populate(template, small, "w", SMALL, RUNNING_IDLE)
            fds += _populate(template, big, "a", agents, RUNNING_BIG)
            browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])

            # 1. record change -> page update
            con = Console(env, small.root)
            consoles.append(con)
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            ctx.add_init_script(EVENT_HOOK)
            page = ctx.new_page()
            page.goto(con.url)
            page.wait_for_selector(f'#overview tr[data-agent="{TARGET}"] td.status', timeout=60_000)
            page.wait_for_function("() => document.querySelector('#live-status').textContent === 'live'", timeout=60_000)
            skew = _clock_skew_ms(page)
            if abs(skew) > 5:
                print(f"bench: the page's clock is {skew:+.1f} ms off time.time(); item 1's figures carry that", file=sys.stderr)
            lat, event = _updates(page, small, template, rounds, rng)

            # 3. idle CPU, the same page open (the target left running: RUNNING_IDLE agents run)
            if record(small.root, TARGET)["status"] != "running":
                page.evaluate(WATCH_CELL, TARGET)
                rec = record(small.root, TARGET)
                _set_status(rec, "running", time.time())
                _replace(small.status(TARGET), rec)
                page.wait_for_function("() => window.__seen !== null", timeout=30_000)
            time.sleep(2.0)
            s0, b0, t0 = con.cpu_s(), _chromium_cpu_s(), time.monotonic()
            time.sleep(idle)
            s1, b1, t1 = con.cpu_s(), _chromium_cpu_s(), time.monotonic()
            cpu = (s1 - s0) / (t1 - t0) * 100
            bcpu = (b1 - b0) / (t1 - t0) * 100
            live = page.evaluate("() => document.querySelector('#live-status').textContent")
            if live != "live":
                raise SystemExit(f"the page's #live-status says {live!r} after the idle window, not 'live'")
            ctx.close()
            consoles.remove(con)
            con.stop()

            # 2. the first render of `agents` rows
            con = Console(env, big.root)
            consoles.append(con)
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            ctx.add_init_script(EVENT_HOOK)
            ctx.add_init_script(ROWS_HOOK.replace("WANT", str(agents)))
            page = ctx.new_page()
            page.goto(con.url)  # sets the token's cookie (then redirects to /)
            page.close()
            rows, board, paint, wall = _first_renders(ctx, con.base, loads, agents)
            ctx.close()
            browser.close()
        finally:
            for c in consoles:
                c.stop()
            for fd in fds:
                os.close(fd)
    out = [
        Row("10", f"record rewritten -> the page's status cell shows it ({SMALL} agents)", lat, "ms",
            goal=f"p95 <= {GOAL_UPDATE_P95_MS:g} ms", met=p95(lat) <= GOAL_UPDATE_P95_MS, p95=True),
    ]
    if event:
        out.append(Row("10", "  of which: record rewritten -> the SSE event reached the page", event, "ms", p95=True))
    out += [
        Row("10", f"overview's first render: navigation -> all {agents} rows in the table", rows, "ms",
            goal=f"<= {GOAL_FIRST_RENDER_MS:g} ms", met=statistics.median(rows) <= GOAL_FIRST_RENDER_MS),
        Row("10", "  of which: navigation -> the first server-sent event (the whole board) arrived", board, "ms"),
        Row("10", "  navigation -> the next frame after the rows (painted)", paint, "ms"),
        Row("10", f"  server, page open, nothing changing ({RUNNING_IDLE} of {SMALL} running): CPU ({idle:g} s window)",
            [cpu], "% of a core", goal=f"<= {GOAL_IDLE_CPU:g}% of a core", met=cpu <= GOAL_IDLE_CPU),
        Row("10", f"  chromium, all its processes, the same window ({idle:g} s)", [bcpu], "% of a core"),
    ]
    print(f"bench: item 10 first render, wall time goto -> rows (Playwright's side): median "
          f"{statistics.median(wall):.0f} ms, n={len(wall)}", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and loads, a shorter idle window")
    ap.add_argument("--rounds", type=int, help="record rewrites for the update latency (default 30; --quick 10)")
    ap.add_argument("--loads", type=int, help="page loads of the 500 agents, after a warm-up (default 5; --quick 3)")
    ap.add_argument("--agents", type=int, default=500, help="agents for the first render (default 500)")
    ap.add_argument("--idle", type=float, help="seconds of the idle CPU window (default 20; --quick 8)")
    args = ap.parse_args()
    print(table(measure(quick=args.quick, rounds=args.rounds, loads=args.loads, agents=args.agents, idle=args.idle)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
