"""The shareable report: one self-contained HTML file with the overview, the timeline and every result.

The page is the console's own (``static/console.html``, ``console.css``,
``console.js``) with the style and the script inline and the data in a
``<script type="application/json">`` block, so it opens from a file, offline,
and fetches nothing.  A Content-Security-Policy in the page allows only that
style and that script (by their SHA-256), so nothing an agent wrote, which the
data holds, can run: the data block is escaped so that it cannot close its
element (``<``, ``>``, ``&`` as ``\\u003c``...), and the script shows it as text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

from ..records.status_record import RecordStore
from . import snapshot

#: The console's page, stylesheet and script.
STATIC = Path(__file__).with_name("static")

#: Bytes of each agent's transcript kept in a report (its end); the whole one stays in outputs/.
REPORT_TRANSCRIPT_BYTES = 256 << 10
#: The page's stylesheet and script as console.html links them (replaced by inline copies).
_CSS_LINK = re.compile(r'<link rel="stylesheet" href="/static/console\.css">\n?')
_JS_TAG = re.compile(r'<script src="/static/console\.js"[^>]*></script>\n?')


def report_data(store: RecordStore, names: list[str] | None = None) -> dict[str, Any]:
    """The board (``"live": false``) with ``details``: per agent ``{"result", "transcript", "transcript_truncated", "record"}``.

    Raises:
        NotFound: a named agent has no record (exit 4).
    """
    data, recs = snapshot.read_board(store, names, live=False)
    details = {}
    for rec in recs:
        details[rec.agent] = _detail(store, rec)
    data["details"] = details
    return data


def _detail(store: RecordStore, rec) -> dict[str, Any]:
    return {**snapshot.run_output(store.paths, rec, REPORT_TRANSCRIPT_BYTES), "record": rec.to_dict(), "diffstat": None}


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def script_json(value: Any) -> str:
    """``value`` as JSON that can sit inside a ``<script>`` element: ``<``, ``>``, ``&`` and the
    line separators U+2028/2029 escaped, so no text in it ends the element or starts markup."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def build_html(data: dict[str, Any]) -> str:
    """The report page for ``data`` (:func:`report_data`): one HTML document, nothing fetched."""
    html = (STATIC / "console.html").read_text(encoding="utf-8")
    css = (STATIC / "console.css").read_text(encoding="utf-8")
    js = (STATIC / "console.js").read_text(encoding="utf-8")
    if "</script" in js.lower() or "</style" in css.lower():
        raise ValueError("console.js or console.css holds a closing tag: it cannot be inlined")
    csp = (f"default-src 'none'; script-src {_sha256(js)}; style-src {_sha256(css)}; img-src data:; "
           "base-uri 'none'; form-action 'none'")
    html = html.replace("{{csrf}}", "").replace("{{mode}}", "report")
    html = html.replace('<meta charset="utf-8">', f'<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="{csp}">', 1)
    html = _CSS_LINK.sub(lambda _: f"<style>{css}</style>\n", html, count=1)
    html = _JS_TAG.sub("", html, count=1)
    tail = (f'<script type="application/json" id="board-data">{script_json(data)}</script>\n'
            f"<script>{js}</script>\n")
    return html.replace("</body>", tail + "</body>", 1)
