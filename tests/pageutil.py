"""Helpers shared by the monitor-page tests, whichever browser drives the page.

A driver here is ``chromium_cdp.Chromium`` or ``firefox_bidi.Firefox``: both offer
``evaluate`` and ``wait_for`` with the same meaning.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from netutil import FIXTURES, daemon_config

from vcstream.config import Config
from vcstream.testing import RecordingPublisher

STATS = "window.vcstreamStats"  # the page's live counters (web/app.js)


def page_config(voices_dir: Path, port: int = 0) -> Config:
    """A daemon whose capture is a performer who keeps talking (the looped speech fixture)."""
    cfg = daemon_config(voices_dir)
    cfg.capture.source = "file"
    cfg.capture.file = str(FIXTURES / "speech_joe.wav")
    cfg.capture.loop = True
    cfg.network.websocket.port = port
    return cfg


def js_to_fixed0(value: float) -> int:
    """What JavaScript's ``Number(value).toFixed(0)`` shows: halves round up.

    Python's format rounds halves to even (328.5 -> "328"); the page shows "329".
    """
    return math.floor(value + 0.5)


def page_stats(browser) -> dict:
    return json.loads(browser.evaluate(f"JSON.stringify({STATS})"))


def embedding_after(rec: RecordingPublisher, t_ns: int, **want):
    """The first ``embedding`` event published at or after ``t_ns`` whose data has ``want``."""
    for e in list(rec.events):
        if (
            e.type == "embedding"
            and e.timestamp_ns >= t_ns
            and all(e.data.get(k) == v for k, v in want.items())
        ):
            return e
    return None


def wait_history_entry(browser, text: str, state: str, timeout: float = 60.0) -> dict:
    """The page's history entry for ``text`` once it reaches ``state``."""
    want = f"e.text === {json.dumps(text)} && e.state === {json.dumps(state)}"
    find = f"{STATS}.history.find(e => {want})"
    got = browser.wait_for(
        f"(() => {{ const e = {find}; return e ? JSON.stringify(e) : null; }})()", timeout
    )
    return json.loads(got)


def history_row(browser, request_id: str) -> dict:
    """What the history table shows for one request: state, text, id line and TTFA cell."""
    row = f"document.querySelector('#history tr[data-id={json.dumps(request_id)}]')"
    return json.loads(
        browser.evaluate(
            f"(() => {{ const row = {row}; if (!row) return 'null';"
            " return JSON.stringify({state: row.dataset.state,"
            " text: row.querySelector('td.text').firstChild.textContent,"
            " rid: row.querySelector('.rid').textContent,"
            " ttfa: row.querySelector('td.ttfa').textContent}); })()"
        )
    )


def played_samples_js(request_id: str) -> str:
    """A JavaScript expression: the request's samples the page's player has played."""
    return f"(({STATS}.audio.playedByRequest || {{}})[{json.dumps(request_id)}] || 0)"
