"""`vcstream top`: a terminal dashboard, a client of a running daemon's WebSocket.

It shows what the daemon publishes (status at 10 Hz, events, the audio stream itself) and
sends control messages for its keys, so like any other listener it cannot slow the audio
path. Three threads:

* the main thread redraws the screen 10 times a second (sending only the cells that
  changed, ``vcstream.termscreen``) and handles keys;
* a client thread runs the WebSocket in its own asyncio loop, reconnecting while the daemon
  is away (the screen then says it is waiting);
* a key thread reads the terminal in cbreak mode and restores its settings on the way out.

Keys: f freeze/unfreeze the voice, r reset it, a approve it (consent mode operator), s speak
a line (typed in the dashboard; Tab switches queue/interrupt, Enter sends, Esc abandons),
x stop everything, q quit.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import itertools
import json
import logging
import math
import os
import queue
import select
import signal
import sys
import termios
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console, Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from vcstream.adapt.summary import describe as describe_adapt
from vcstream.net import protocol as p
from vcstream.safetext import one_line
from vcstream.termscreen import ScreenDiff, full_screen, render_grid

DEFAULT_URL = "ws://127.0.0.1:8765/"
REFRESH_HZ = 10.0
STALE_S = 1.5  # status older than this is shown as stale
LEVEL_WINDOW_S = 0.2  # output level: RMS over the frames received in this window
TTFA_BUCKETS_MS = (100, 200, 300, 500, 750, 1000, 1500, 2000)
EIGHTHS = " ▏▎▍▌▋▊▉█"
SPARKS = "▁▂▃▄▅▆▇█"
MAX_NINES = 4.0

log = logging.getLogger(__name__)


# ---- the dashboard's model: fed by the client thread, read by the renderer --------------
@dataclass
class Request:
    id: str
    state: str = "queued"
    text: str = ""
    mode: str = ""
    ttfa_ms: float | None = None
    audio_ms: float | None = None
    error: str = ""


@dataclass
class DashState:
    """Everything shown on screen. Mutated only under ``lock``."""

    url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    connected: bool = False
    attempts: int = 0
    last_error: str = ""
    connected_at: float = 0.0
    disconnected_at: float = 0.0
    retry_at: float = 0.0
    hello: dict[str, Any] = field(default_factory=dict)
    status: dict[str, Any] = field(default_factory=dict)
    status_at: float = 0.0
    statuses: int = 0
    frames: int = 0
    silent_frames: int = 0
    seq_gaps: int = 0
    last_seq: int | None = None
    dropped_by_daemon: int = 0
    levels: deque = field(default_factory=lambda: deque(maxlen=64))  # (t, sumsq, n, peak)
    speech_at: float = 0.0
    ttfa: dict[str, float] = field(default_factory=dict)  # request id -> ms
    convergence: deque = field(default_factory=lambda: deque(maxlen=240))  # (t, value | None)
    requests: dict[str, Request] = field(default_factory=dict)
    messages: deque = field(default_factory=lambda: deque(maxlen=4))  # (t, text, style)
    own_name: str = ""  # this dashboard's name in the daemon's client list

    # -- connection ---------------------------------------------------------------------
    def on_connected(self, hello: dict[str, Any], own_name: str = "") -> None:
        with self.lock:
            self.own_name = own_name
            self.connected, self.hello = True, hello
            self.connected_at = time.monotonic()
            self.attempts = 0
            self.last_error = ""
            self.last_seq = None
        self.note(f"connected to {self.url}", "green")

    def on_disconnected(self, why: str) -> None:
        with self.lock:
            was = self.connected
            self.connected = False
            self.last_error = why
            if was:
                self.disconnected_at = time.monotonic()
        if was:
            self.note(f"lost the daemon: {why}", "red")

    def on_waiting(self, attempt: int, delay_s: float) -> None:
        with self.lock:
            self.attempts = attempt
            self.retry_at = time.monotonic() + delay_s

    def note(self, text: str, style: str = "") -> None:
        with self.lock:
            self.messages.append((time.time(), one_line(text), style))

    # -- stream -------------------------------------------------------------------------
    def on_audio(self, data: bytes) -> None:
        try:
            header, pcm = p.decode_audio(data)
        except p.ProtocolError as err:
            self.note(f"bad audio frame: {err}", "red")
            return
        now = time.monotonic()
        x = pcm.astype("float64") / 32768.0
        sumsq = float((x * x).sum())
        peak = float(abs(x).max()) if len(x) else 0.0
        with self.lock:
            if self.last_seq is not None and header.seq > self.last_seq + 1:
                self.seq_gaps += header.seq - self.last_seq - 1
            self.last_seq = header.seq
            self.frames += 1
            if header.silence:
                self.silent_frames += 1
            else:
                self.speech_at = now
            self.levels.append((now, sumsq, len(x), peak))

    def on_message(self, m: dict[str, Any]) -> None:
        kind = m.get("type")
        if kind == "metrics":
            self._on_status(m)
        elif kind == "embedding":
            with self.lock:
                self._voice(m)
        elif kind in ("accepted", "started", "first_audio", "done") and m.get("id"):
            self._on_request(m)
        elif kind == "error":
            if m.get("id") and m.get("id") in self.requests:
                self._on_request(m)
            self.note(f"{m.get('to') or 'daemon'}: {m.get('code')}: {m.get('message')}", "red")
        elif kind == "reply":
            self._on_reply(m)
        elif kind == "dropped":
            with self.lock:
                self.dropped_by_daemon += int(m.get("audio_frames", 0))

    def _on_status(self, s: dict[str, Any]) -> None:
        with self.lock:
            self.status = s
            self.status_at = time.monotonic()
            self.statuses += 1
            self._voice(s.get("voice") or {})
            for h in s.get("history") or []:
                rid = h.get("id")
                if not rid:
                    continue
                r = self.requests.get(rid)
                if r is None or r.state not in ("done", "cancelled", "error"):
                    r = self._request(rid)
                    r.state = (
                        "error" if h.get("error") else "cancelled" if h.get("cancelled") else "done"
                    )
                    r.text = r.text or h.get("text") or ""
                    r.audio_ms = h.get("audio_ms")
                    r.ttfa_ms = h.get("first_audio_ms")
                if h.get("first_audio_ms") is not None:
                    self.ttfa[rid] = float(h["first_audio_ms"])
            self._trim()

    def _voice(self, v: dict[str, Any]) -> None:
        if "voiced_seconds" not in v:
            return
        last = self.convergence[-1] if self.convergence else None
        value = v.get("convergence")
        now = time.monotonic()
        # One point a second (or on change): the sparkline is a time series.
        if last is None or last[1] != value or now - last[0] >= 1.0:
            self.convergence.append((now, value))

    def _request(self, rid: str) -> Request:
        r = self.requests.get(rid)
        if r is None:
            r = self.requests[rid] = Request(rid)
        return r

    def _trim(self) -> None:
        while len(self.requests) > 50:
            self.requests.pop(next(iter(self.requests)))
        while len(self.ttfa) > 1000:
            self.ttfa.pop(next(iter(self.ttfa)))

    def _on_request(self, m: dict[str, Any]) -> None:
        with self.lock:
            r = self._request(m["id"])
            kind = m["type"]
            if kind == "accepted":
                r.state, r.mode = "queued", m.get("mode", "")
            elif kind == "started":
                r.state = "synthesising"
            elif kind == "first_audio":
                r.state = "playing"
                r.ttfa_ms = m.get("latency_ms")
                if r.ttfa_ms is not None:
                    self.ttfa[r.id] = float(r.ttfa_ms)
            elif kind == "done":
                r.state = "cancelled" if m.get("cancelled") else "done"
                r.text = m.get("text") or r.text
                r.audio_ms = m.get("audio_ms")
                if m.get("first_audio_ms") is not None:
                    r.ttfa_ms = m["first_audio_ms"]
                    self.ttfa[r.id] = float(m["first_audio_ms"])
            elif kind == "error":
                r.state = "error"
                r.error = f"{m.get('code')}: {m.get('message')}"
            self._trim()

    def _on_reply(self, m: dict[str, Any]) -> None:
        to = m.get("to")
        voice = m.get("voice") or {}
        if to in ("freeze", "unfreeze", "reset", "consent_approve"):
            with self.lock:
                self._voice(voice)
            done = {
                "freeze": "voice frozen",
                "unfreeze": "voice unfrozen",
                "reset": "voice reset",
                "consent_approve": "voice approved",
            }
            self.note(done[to], "green")
        elif to == "speak":
            self.note(f"speaking {m.get('id')} ({m.get('mode')})", "green")
        elif to == "cancel":
            self.note("stopped everything" if m.get("cancelled") else "nothing to stop", "green")

    # -- derived figures (call under lock) -----------------------------------------------
    def output_level(self, now: float) -> tuple[float, float]:
        """(RMS, peak) in dBFS of the audio received in the last LEVEL_WINDOW_S."""
        recent = [lv for lv in self.levels if now - lv[0] <= LEVEL_WINDOW_S]
        n = sum(lv[2] for lv in recent)
        if not n:
            return -120.0, -120.0
        rms = math.sqrt(sum(lv[1] for lv in recent) / n)
        peak = max(lv[3] for lv in recent)
        return _db(rms), _db(peak)


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 1e-6 else -120.0


# ---- the daemon connection -------------------------------------------------------------
class DaemonClient:
    """The WebSocket on a background thread with its own event loop; reconnects forever."""

    def __init__(self, url: str, state: DashState, token: str = "") -> None:
        self.url = url
        self.state = state
        self.token = token
        self.loop = asyncio.new_event_loop()
        self._ws = None
        self._stopping: asyncio.Event | None = None
        self._ids = 0
        self._thread = threading.Thread(target=self._run, name="vcstream-top-client", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

        self._stopping = asyncio.Event()
        attempt = 0
        while not self._stopping.is_set():
            try:
                async with connect(
                    self.url,
                    max_size=2**20,
                    open_timeout=3,
                    close_timeout=1,
                    ping_interval=2,
                    ping_timeout=4,
                    compression=None,
                ) as ws:
                    attempt = 0
                    await self._session(ws)
                self.state.on_disconnected("the daemon closed the connection")
            except InvalidURI as err:
                self.state.on_disconnected(f"bad URL: {err}")
            except ConnectionClosed as err:
                self.state.on_disconnected(
                    f"connection closed ({err.rcvd.code if err.rcvd else 'no close frame'})"
                )
            except (OSError, InvalidHandshake, TimeoutError, ValueError) as err:
                self.state.on_disconnected(_describe(err))
            if self._stopping.is_set():
                break
            attempt += 1
            delay = min(2.0, 0.25 * 2 ** min(attempt - 1, 3))
            self.state.on_waiting(attempt, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _session(self, ws) -> None:
        hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if hello.get("type") != "hello":
            raise ValueError(f"expected a hello message, got {hello.get('type')!r}")
        if hello.get("auth_required"):
            if not self.token:
                self.state.note("the daemon wants a token: use --token or VCSTREAM_TOKEN", "red")
            await ws.send(json.dumps({"type": "auth", "token": self.token}))
        self._ws = ws
        local = ws.local_address
        self.state.on_connected(hello, f"ws:{local[0]}:{local[1]}" if local else "")
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    self.state.on_audio(msg)
                else:
                    self.state.on_message(json.loads(msg))
        finally:
            self._ws = None

    def send(self, msg: dict[str, Any]) -> str | None:
        """Queue a control message from any thread; its id, or None when not connected."""
        ws = self._ws
        if ws is None:
            self.state.note(f"{msg['type']}: not connected to the daemon", "red")
            return None
        self._ids += 1
        ref = f"top{os.getpid() % 100000}-{self._ids}"
        asyncio.run_coroutine_threadsafe(ws.send(json.dumps({"id": ref, **msg})), self.loop)
        return ref

    def stop(self) -> None:
        def halt() -> None:
            if self._stopping is not None:
                self._stopping.set()
            if self._ws is not None:
                self.loop.create_task(self._ws.close())

        with contextlib.suppress(RuntimeError):  # the loop already ended
            self.loop.call_soon_threadsafe(halt)
        self._thread.join(timeout=3)


def _describe(err: BaseException) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, TimeoutError):
        return "timed out"
    return str(err) or type(err).__name__


# ---- keys -----------------------------------------------------------------------------
class KeyReader:
    """Reads keys from a terminal in cbreak mode on a background thread.

    cbreak (not raw): keys arrive one by one without echo, while Ctrl-C still raises
    SIGINT. The terminal's settings are restored in ``finally`` when the thread ends.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.keys: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vcstream-top-keys", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(2)

    def _run(self) -> None:
        saved = termios.tcgetattr(self.fd)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            tty.setcbreak(self.fd, termios.TCSANOW)
            self._ready.set()
            while not self._stop.is_set():
                readable, _, _ = select.select([self.fd], [], [], 0.1)
                if not readable:
                    continue
                data = os.read(self.fd, 64)
                if not data:  # the terminal went away
                    break
                chunk = decoder.decode(data)
                if chunk.startswith("\x1b") and len(chunk) > 1:
                    continue  # arrow and function keys: not ours
                for ch in chunk:
                    self.keys.put(ch)
        finally:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)
            self._ready.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Prompt:
    """The line being typed for `s` (speak)."""

    text: str = ""
    mode: str = "queue"


class Controller:
    """Turns keys into control messages and prompt edits. Returns False to quit."""

    def __init__(self, state: DashState, send: Callable[[dict[str, Any]], str | None]) -> None:
        self.state = state
        self.send = send
        self.prompt: Prompt | None = None

    def key(self, ch: str) -> bool:
        if self.prompt is not None:
            self._prompt_key(ch)
            return True
        if ch in ("q", "Q"):
            return False
        if ch == "f":
            with self.state.lock:
                frozen = bool((self.state.status.get("voice") or {}).get("frozen"))
            self.send({"type": "unfreeze" if frozen else "freeze"})
        elif ch == "r":
            self.send({"type": "reset"})
        elif ch == "a":
            self.send({"type": "consent_approve"})
        elif ch == "x":
            self.send({"type": "cancel", "all": True})
        elif ch == "s":
            self.prompt = Prompt()
        return True

    def _prompt_key(self, ch: str) -> None:
        pr = self.prompt
        if ch == "\x1b":
            self.prompt = None
        elif ch in ("\r", "\n"):
            text = pr.text.strip()
            self.prompt = None
            ref = self.send({"type": "speak", "text": text, "mode": pr.mode}) if text else None
            if ref is not None:
                with self.state.lock:
                    r = self.state._request(ref)
                    r.text, r.mode, r.state = text, pr.mode, "sent"
        elif ch == "\t":
            pr.mode = "interrupt" if pr.mode == "queue" else "queue"
        elif ch in ("\x7f", "\x08"):
            pr.text = pr.text[:-1]
        elif ch == "\x15":  # Ctrl-U
            pr.text = ""
        elif ch.isprintable() and len(pr.text) < 500:
            pr.text += ch


# ---- rendering --------------------------------------------------------------------------
def bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


def _badge(text: str, style: str) -> Text:
    # Styled as a span, not as the Text's base style, so a table cell's padding stays plain.
    return Text.assemble((text, style))


def level_text(db: float, width: int) -> Text:
    frac = (db + 60) / 60
    style = "green" if db < -12 else "yellow" if db < -3 else "bold red"
    t = Text(bar(frac, width), style=style)
    t.append(" " + ("  -inf" if db <= -119 else f"{db:6.1f}") + " dBFS", style="bold")
    return t


def nines(c: float | None) -> float:
    if c is None or not c > 0:
        return 0.0
    return min(MAX_NINES, -math.log10(max(1e-12, 1.0 - c)))


def sparkline(values: list[float | None], width: int) -> Text:
    t = Text()
    for v in values[-width:]:
        if v is None:
            t.append(" ")
        else:
            t.append(SPARKS[min(7, int(nines(v) / MAX_NINES * 7.999))], style="dark_orange")
    return t


def _fmt(v: Any, digits: int = 0, unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{float(v):.{digits}f}{unit}"


def _ms(v: Any) -> str:
    """Milliseconds in at most 5 characters: 0.42, 12.3, 1234."""
    if v is None:
        return "–"
    v = float(v)
    return f"{v:.2f}" if v < 1 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _count(n: Any) -> str:
    n = int(n or 0)
    return str(n) if n < 10000 else f"{n / 1000:.0f}k" if n < 10**6 else f"{n / 1e6:.1f}M"


def _uptime(sec: float | None) -> str:
    if sec is None:
        return "–"
    s = int(sec)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _kv(rows: list[tuple[str, Any]]) -> Table:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(style="grey70", no_wrap=True)
    t.add_column(justify="right", no_wrap=True)
    for k, v in rows:
        t.add_row(k, v if isinstance(v, Text) else Text(str(v), style="bold"))
    return t


def _header(st: DashState, now: float) -> Text:
    s = st.status
    t = Text()
    t.append(" vcstream top ", style="bold black on dark_orange")
    t.append(" ")
    if st.connected and now - st.status_at <= STALE_S:
        t.append(" ● connected ", style="bold black on green")
    elif st.connected:
        t.append(" ● no status ", style="bold white on red")
    else:
        t.append(" ○ waiting for daemon ", style="bold white on red")
    t.append(f" {st.url}", style="bold")
    stalled = (s.get("watchdog") or {}).get("stalled")
    if stalled:  # systemd's watchdog pings are withheld: a restart follows
        t.append(f"  stuck: {', '.join(stalled)} ", style="bold white on red")
    if s:
        synth = s.get("synthesizer") or {}
        clones = "" if synth.get("clones", True) else " (does not clone)"
        t.append(f"  up {_uptime(s.get('uptime_s'))}  {s.get('device', '?')}  ", style="grey70")
        t.append(f"{synth.get('name', '?')}{clones}", style="grey70")
        vocoder = s.get("vocoder") or {}
        if vocoder.get("quality"):
            auto = " (auto)" if vocoder.get("requested") == "auto" else ""
            t.append(f"  vocoder {vocoder['quality']}{auto}", style="grey70")
        t.append(f"  {s.get('sample_rate_hz')} Hz  {s.get('frame_ms')} ms frames", style="grey70")
    return t


def _levels_panel(st: DashState, now: float, width: int) -> Panel:
    s = st.status
    cap = s.get("capture") or {}
    w = max(8, width - 24)
    in_db = float(cap.get("level_dbfs", -120.0))
    out_rms, out_peak = st.output_level(now)
    vad = (
        _badge(" VOICE ", "bold black on green")
        if cap.get("voice_active")
        else Text(" voice ", style="grey50")
    )
    speech = now - st.speech_at < 0.3
    sp = (
        _badge(" SPEECH ", "bold black on dark_orange")
        if speech
        else Text(" speech ", style="grey50")
    )
    rows = Table.grid(padding=(0, 1))
    rows.add_column(style="grey70")
    rows.add_column()
    rows.add_row("in ", level_text(in_db, w))
    rows.add_row("", vad)
    rows.add_row("out", level_text(out_rms, w))
    rows.add_row(
        "",
        Text.assemble(sp, f"  peak {_fmt(out_peak, 1)} dBFS", style="grey70")
        if out_peak > -119
        else sp,
    )
    silence = 100 * st.silent_frames / st.frames if st.frames else 0.0
    info = Text(
        f"frames {st.frames} ({silence:.0f}% silence fill)\n"
        f"lost {st.seq_gaps} (seq gaps), dropped {st.dropped_by_daemon}",
        style="grey70",
    )
    if cap.get("state") == "degraded":  # the device failed and is being reopened
        info.append(f"\ncapture degraded: {cap.get('reason', '')}", style="bold red")
    return Panel(Group(rows, info), title="levels", title_align="left", border_style="grey50")


def _voice_panel(st: DashState, width: int) -> Panel:
    v = st.status.get("voice") or {}
    if v.get("loaded_voice"):
        mode = _badge(f" loaded: {v['loaded_voice']} ", "bold black on dark_orange")
    elif v.get("frozen"):
        mode = _badge(" frozen ", "bold black on cyan")
    elif v.get("has_embedding") and v.get("speaking_in") == "live":
        mode = _badge(" live, learning ", "bold black on green")
    elif v.get("speaking_in") == "default":
        mode = Text(f"default {v.get('default_voice')}", style="grey70")
    else:
        mode = Text("no voice yet", style="grey70")
    if v.get("speaking_in") == "fixed":
        mode = Text.assemble(mode, Text(" (unused)", style="grey50"))
    conv = v.get("convergence")
    spark = sparkline([c for _, c in st.convergence], max(8, width - 6))
    body = Group(
        _kv(
            [
                ("state", mode),
                ("voiced", Text(f"{_fmt(v.get('voiced_seconds'), 1)} s", style="bold")),
                ("partials", Text(str(v.get("n_partials", "–")), style="bold")),
                ("convergence", Text(_fmt(conv, 5), style="bold dark_orange")),
                *_consent_rows(v.get("consent")),
                ("adapt", Text(describe_adapt(st.status.get("adapt")), style="bold")),
            ]
        ),
        spark,
    )
    return Panel(
        body, title="voice (convergence, nines scale)", title_align="left", border_style="grey50"
    )


def _consent_rows(c: dict | None) -> list[tuple[str, Text]]:
    """The live voice's consent, unless none is required (`a` approves in operator mode)."""
    if not c or c.get("mode") == "none":
        return []
    style = "bold green" if c.get("state") == "granted" else "bold yellow"
    return [
        ("consent", Text(f"{c.get('mode')}: {c.get('state')}", style=style)),
        ("", Text(str(c.get("reason", "")), style="grey70")),
    ]


def _queues_panel(st: DashState) -> Panel:
    s = st.status
    q = s.get("queues") or {}
    cap = s.get("capture") or {}
    counters = s.get("counters") or {}
    net = s.get("network") or {}
    ws = net.get("websocket") or {}
    client_drops = sum(c.get("dropped_audio", 0) for c in ws.get("clients") or [])
    xr = cap.get("xruns", 0)
    rows = [
        ("requests queued", f"{q.get('requests', '–')}/{q.get('requests_max', '–')}"),
        ("per client", _per_client(q.get("clients") or [])),
        ("output buffer", _fmt(q.get("output_ms"), 0, " ms")),
        ("capture ring", _fmt(q.get("capture_ms"), 0, " ms")),
        ("now speaking", s.get("current_request") or "–"),
        ("capture xruns", Text(str(xr), style="bold red" if xr else "bold")),
        ("capture dropped", f"{cap.get('dropped_samples', 0)} smp"),
        ("synth underruns", f"{counters.get('underrun_frames', 0)} fr"),
        ("net drops", f"{net.get('handoff_dropped', 0)} hub / {client_drops} cl"),
    ]
    playback = s.get("playback")
    if playback:
        rows.append(("speaker xruns", str(playback.get("underruns", 0))))
    return Panel(_kv(rows), title="queues and xruns", title_align="left", border_style="grey50")


def _per_client(clients: list[dict]) -> str:
    """Queue depth of each client with lines waiting, e.g. ``operator 1 · ws#3 4``."""
    shown = " · ".join(f"{c.get('client', '?')} {c.get('queued', 0)}" for c in clients[:4])
    more = f" +{len(clients) - 4}" if len(clients) > 4 else ""
    return (shown + more) or "–"


def _stages_panel(st: DashState) -> Panel:
    stages = st.status.get("stages") or {}
    t = Table(expand=True, box=None, padding=(0, 1), pad_edge=False, header_style="grey70")
    t.add_column("stage", no_wrap=True, ratio=1)
    for col in ("count", "last", "p50", "p95"):
        t.add_column(col, justify="right", no_wrap=True, min_width=5)
    for name in sorted(stages):
        x = stages[name]
        t.add_row(
            name,
            _count(x.get("count")),
            _ms(x.get("last_ms")),
            _ms(x.get("p50_ms")),
            _ms(x.get("p95_ms")),
        )
    return Panel(t, title="stages (ms)", title_align="left", border_style="grey50")


def ttfa_histogram(values: list[float]) -> list[tuple[str, int]]:
    edges = (0, *TTFA_BUCKETS_MS)
    counts = [0] * (len(edges))
    for v in values:
        i = sum(1 for e in TTFA_BUCKETS_MS if v >= e)
        counts[i] += 1
    labels = [f"{a}-{b}" for a, b in itertools.pairwise(edges)]
    labels.append(f">{edges[-1]}")
    return list(zip(labels, counts, strict=True))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _ttfa_panel(st: DashState, width: int) -> Panel:
    values = list(st.ttfa.values())
    hist = ttfa_histogram(values)
    peak = max((c for _, c in hist), default=0) or 1
    w = max(6, width - 22)
    t = Table.grid(padding=(0, 1))
    t.add_column(justify="right", style="grey70")
    t.add_column()
    t.add_column(justify="right")
    for label, count in hist:
        t.add_row(label, Text(bar(count / peak, w), style="dark_orange"), str(count))
    p50, p95 = _percentile(values, 0.5), _percentile(values, 0.95)
    summary = Text(f"n {len(values)}  p50 {_fmt(p50)}  p95 {_fmt(p95)} ms", style="bold")
    return Panel(
        Group(t, summary),
        title="time to first audio (ms)",
        title_align="left",
        border_style="grey50",
    )


def _clients_panel(st: DashState) -> Panel:
    net = st.status.get("network") or {}
    ws = net.get("websocket") or {}
    t = Table(expand=True, box=None, padding=(0, 1), pad_edge=False, header_style="grey70")
    t.add_column("client", no_wrap=True, overflow="ellipsis", ratio=1)
    t.add_column("up s", justify="right", no_wrap=True)
    t.add_column("q", justify="right", no_wrap=True)
    t.add_column("drop", justify="right", no_wrap=True)
    for c in ws.get("clients") or []:
        name = str(c.get("name", "?")).removeprefix("ws:")
        t.add_row(
            # this dashboard's own connection in bold cyan
            Text(name, style="bold cyan" if c.get("name") == st.own_name else ""),
            _fmt(c.get("connected_s"), 0),
            str(c.get("queued_audio", 0)),
            Text(str(c.get("dropped_audio", 0)), style="red" if c.get("dropped_audio") else ""),
        )
    zmq = net.get("zmq")
    if zmq:
        t.add_row(Text(f"zmq pub {zmq.get('pub', '')}", overflow="ellipsis"), "", "", "")
    listeners = ", ".join(st.status.get("listeners") or [])
    n = len(ws.get("clients") or [])
    return Panel(
        Group(
            t,
            Text(f"hub listeners: {listeners}", style="grey70", overflow="ellipsis", no_wrap=True),
        ),
        title=f"clients ({n} websocket)",
        title_align="left",
        border_style="grey50",
    )


STATE_STYLES = {
    "done": "green",
    "cancelled": "red",
    "error": "bold red",
    "playing": "bold dark_orange",
    "synthesising": "dark_orange",
    "queued": "cyan",
}


def _requests_panel(st: DashState, rows: int) -> Panel:
    t = Table(expand=True, box=None, padding=(0, 1), header_style="grey70")
    t.add_column("id", no_wrap=True, max_width=20, overflow="ellipsis")
    t.add_column("state", no_wrap=True)
    t.add_column("ttfa", justify="right", no_wrap=True)
    t.add_column("length", justify="right", no_wrap=True)
    t.add_column("text", no_wrap=True, overflow="ellipsis", ratio=1)
    for r in list(st.requests.values())[-rows:][::-1]:
        # Text, not str: a str cell is read as rich markup ("[red]", or "[/]" that raises);
        # one_line: control characters and escape sequences never reach the terminal.
        t.add_row(
            Text(one_line(r.id)),
            Text(r.state, style=STATE_STYLES.get(r.state, "")),
            _fmt(r.ttfa_ms, 1, " ms"),
            _fmt(None if r.audio_ms is None else r.audio_ms / 1000, 2, " s"),
            Text(one_line(r.error or r.text)),
        )
    return Panel(t, title="requests (newest first)", title_align="left", border_style="grey50")


def _footer(st: DashState, prompt: Prompt | None) -> Group:
    if prompt is not None:
        line = Text(" speak ", style="bold black on dark_orange")
        line.append(f" [{prompt.mode}] ", style="bold cyan")
        line.append(prompt.text, style="bold")
        line.append("█", style="blink")
        line.append("   Enter send · Tab queue/interrupt · Esc cancel", style="grey50")
    else:
        line = Text()
        for key, what in (
            ("f", "freeze/unfreeze"),
            ("r", "reset voice"),
            ("a", "approve voice"),
            ("s", "speak"),
            ("x", "stop all"),
            ("q", "quit"),
        ):
            line.append(f" {key} ", style="bold black on grey70")
            line.append(f" {what}  ")
    msg = Text()
    if st.messages:
        when, text, style = st.messages[-1]
        msg.append(time.strftime("%H:%M:%S ", time.localtime(when)), style="grey50")
        msg.append(text, style=style)
    return Group(line, msg)


def _waiting_panel(st: DashState, now: float) -> Panel:
    t = Text(justify="center")
    t.append("waiting for daemon…\n\n", style="bold red")
    t.append(f"{st.url}\n", style="bold")
    retry = max(0.0, st.retry_at - now)
    t.append(f"reconnecting (attempt {st.attempts}", style="grey70")
    t.append(f", next in {retry:.1f} s)\n" if retry > 0.05 else ")\n", style="grey70")
    if st.last_error:
        t.append(f"last error: {st.last_error}\n", style="grey70")
    if st.disconnected_at:
        t.append(f"lost {now - st.disconnected_at:.0f} s ago\n", style="grey70")
    return Panel(t, border_style="red", padding=(2, 2))


def render(
    st: DashState, prompt: Prompt | None, size: tuple[int, int], now: float | None = None
) -> RenderableType:
    """The whole screen for a terminal of ``size`` (columns, rows). Call under ``st.lock``."""
    now = time.monotonic() if now is None else now
    cols, lines = size
    root = Layout()
    root.split_column(
        Layout(_header(st, now), name="header", size=1),
        Layout(name="body"),
        Layout(_footer(st, prompt), name="footer", size=2),
    )
    if not st.connected or not st.status:
        root["body"].update(
            _waiting_panel(st, now)
            if not st.connected
            else Panel(Text("connected; waiting for status…", justify="center"))
        )
        return root
    third = max(20, cols // 3)
    narrow = max(20, cols * 3 // 10)
    body = root["body"]
    request_rows = max(3, min(8, lines - 29))
    body.split_column(
        Layout(name="top", size=10),
        Layout(name="mid"),
        Layout(_requests_panel(st, request_rows), name="bottom", size=request_rows + 3),
    )
    body["top"].split_row(
        Layout(_levels_panel(st, now, third), name="levels"),
        Layout(_voice_panel(st, third), name="voice"),
        Layout(_queues_panel(st), name="queues"),
    )
    body["mid"].split_row(
        Layout(_stages_panel(st), name="stages", ratio=4),
        Layout(_ttfa_panel(st, narrow), name="ttfa", ratio=3),
        Layout(_clients_panel(st), name="clients", ratio=3),
    )
    return root


# ---- main -------------------------------------------------------------------------------
def _websocket_url(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"not a WebSocket URL: {url!r} (e.g. {DEFAULT_URL})")
    return urlunsplit((scheme, parts.netloc, parts.path or "/", parts.query, ""))


def _follow_terminal_size(console: Console) -> None:
    """Size the screen from the terminal itself: rich prefers $COLUMNS/$LINES, which a
    shell exports once and which then go stale when the window is resized."""
    with contextlib.suppress(OSError, ValueError):
        size = os.get_terminal_size(sys.stdout.fileno())
        if (size.columns, size.lines) != tuple(console.size):
            console.size = (size.columns, size.lines)


class _Notes(logging.Handler):
    """While the screen is up, log records become dashboard messages instead of stderr text."""

    def __init__(self, state: DashState) -> None:
        super().__init__(logging.WARNING)
        self.state = state

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.state.note(record.getMessage(), "red")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vcstream top", description="Terminal dashboard of a running vcstream daemon."
    )
    ap.add_argument(
        "--connect",
        default=DEFAULT_URL,
        metavar="URL",
        help=f"daemon WebSocket URL (default {DEFAULT_URL})",
    )
    ap.add_argument(
        "--token",
        default=os.environ.get("VCSTREAM_TOKEN", ""),
        help="WebSocket token (or VCSTREAM_TOKEN)",
    )
    ap.add_argument(
        "--refresh-hz", type=float, default=REFRESH_HZ, help="redraws per second (default 10)"
    )
    return ap


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        url = _websocket_url(args.connect)
    except ValueError as err:
        print(f"vcstream top: error: {err}", file=sys.stderr)
        return 2
    if not 0.5 <= args.refresh_hz <= 30:
        print("vcstream top: error: --refresh-hz must be 0.5..30", file=sys.stderr)
        return 2
    state = DashState(url)
    client = DaemonClient(url, state, args.token)
    controller = Controller(state, client.send)
    console = Console(highlight=False)
    root = logging.getLogger()
    saved_handlers, root.handlers = root.handlers, [_Notes(state)]
    keys: KeyReader | None = None
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    code = 0
    try:
        client.start()
        if sys.stdin.isatty():
            keys = KeyReader(sys.stdin.fileno())
            keys.start()
        period = 1.0 / args.refresh_hz
        screen = ScreenDiff(console.color_system)
        drawn_size = None
        with full_screen(sys.stdout):
            next_t = time.monotonic()
            while not stop.is_set():
                _follow_terminal_size(console)
                size = (console.size.width, console.size.height)
                if size != drawn_size:
                    screen.invalidate()
                    drawn_size = size
                with state.lock:
                    view = render(state, controller.prompt, size)
                changes = screen.update(render_grid(console, view, size))
                if changes:
                    sys.stdout.write(changes)
                    sys.stdout.flush()
                next_t += period
                if next_t < time.monotonic() - period:  # fell behind (suspended): resync
                    next_t = time.monotonic()
                # Keys are handled as they come, between redraws.
                while (left := next_t - time.monotonic()) > 0:
                    try:
                        ch = keys.keys.get(timeout=left) if keys else None
                    except queue.Empty:
                        break
                    if ch is None:
                        time.sleep(left)
                        break
                    if not controller.key(ch):
                        stop.set()
                        break
    except KeyboardInterrupt:
        code = 130
    finally:
        if keys is not None:
            keys.stop()
        client.stop()
        root.handlers = saved_handlers
        for s, handler in previous.items():
            signal.signal(s, handler)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
