"""`vcstream top` in a real terminal (tmux) against the real daemon.

The dashboard runs in a detached tmux session of fixed size on a private tmux server; the
test reads the screen with capture-pane, compares the figures shown with the daemon's own
status, presses the keys and checks the daemon saw them, stops and restarts the daemon
underneath it, and checks the terminal is left clean (main screen, cursor shown, canonical
mode and echo back) after q and after Ctrl-C. The screen, as text and rendered to
HTML/PNG, goes to artifacts/.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from netutil import FIXTURES, ROOT, daemon_config, wait_until

ARTIFACTS = ROOT / "artifacts"
COLS, ROWS = 120, 40
LINE = "Hello from the dashboard."


class Tmux:
    """A private tmux server (its own socket), so the test never touches a user's tmux."""

    def __init__(self) -> None:
        self.socket = f"vcstream-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def start(self, name: str, command: str) -> None:
        # After the dashboard exits: its exit code and the terminal's mode flags, then wait.
        shell = (
            f"cd {shlex.quote(str(ROOT))} && {command}; echo EXIT=$?; "
            "stty -a | tr ' ;' '\\n\\n' | grep -xE -- '-?(icanon|echo)'; sleep 300"
        )
        self("new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), shell)

    def screen(self, name: str, ansi: bool = False) -> str:
        return self("capture-pane", "-p", *(["-e"] if ansi else []), "-t", name)

    def keys(self, name: str, *keys: str, literal: bool = False) -> None:
        self("send-keys", "-t", name, *(["-l"] if literal else []), *keys)

    def flags(self, name: str) -> str:
        return self("display-message", "-p", "-t", name, "#{alternate_on} #{cursor_flag}").strip()

    def wait(self, name: str, pattern: str, timeout: float = 20.0) -> re.Match:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen(name)
            m = re.search(pattern, text)
            if m:
                return m
            time.sleep(0.1)
        raise TimeoutError(f"no {pattern!r} on screen after {timeout} s:\n{text}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def tmux():
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: apt-get install tmux")
    t = Tmux()
    try:
        yield t
    finally:
        t.kill()


def _config(voices_dir: Path, port: int = 0):
    cfg = daemon_config(voices_dir)
    cfg.capture.source = "file"
    cfg.capture.file = str(FIXTURES / "speech_joe.wav")
    cfg.capture.loop = False  # the voice figures settle once the file has been heard
    cfg.network.websocket.port = port
    return cfg


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime

    return build_runtime(_config(voices_dir))


def _top(url: str) -> str:
    return f"{shlex.quote(sys.executable)} -m vcstream.top --connect {url}"


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):
    return wait_until(predicate, timeout, what)


def _assert_clean_exit(tmux: Tmux, name: str, code: int) -> None:
    m = tmux.wait(name, r"EXIT=(\d+)\n(-?icanon)\n(-?echo)\n", 10)
    assert m.groups() == (str(code), "icanon", "echo")
    assert tmux.flags(name) == "0 1"  # main screen again, cursor visible
    assert "vcstream top" not in tmux.screen(name)  # nothing of the dashboard left over


def save_screenshot(ansi: str, stem: str, out_dir: Path = ARTIFACTS) -> list[Path]:
    """The captured screen as text, as HTML (rich's export) and, with Chromium, as PNG."""
    import io

    from rich.console import Console
    from rich.terminal_theme import TerminalTheme
    from rich.text import Text

    # A dark terminal (xterm's palette): default colours map to these, as in the terminal.
    dark = TerminalTheme(
        (12, 12, 12),
        (215, 215, 215),
        [(0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205),
         (0, 205, 205), (229, 229, 229)],
        [(127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255),
         (255, 0, 255), (0, 255, 255), (255, 255, 255)],
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    txt = out_dir / f"{stem}.txt"
    txt.write_text(Text.from_ansi(ansi).plain)
    console = Console(
        record=True, width=COLS, file=io.StringIO(), force_terminal=True, color_system="truecolor"
    )
    for line in ansi.rstrip("\n").split("\n"):
        console.print(Text.from_ansi(line), no_wrap=True, crop=True)
    html = out_dir / f"{stem}.html"
    html.write_text(
        console.export_html(
            theme=dark,
            inline_styles=True,
            code_format=(
                "<!doctype html><html><head><meta charset='utf-8'><style>"
                "body{{margin:0;background:{background};color:{foreground}}}"
                "pre{{margin:0;padding:12px;display:inline-block;line-height:1.2;"
                "font:15px 'DejaVu Sans Mono','Liberation Mono',monospace}}"
                "</style></head><body><pre id='screen'><code>{code}</code></pre></body></html>"
            ),
        )
    )
    out = [txt, html]
    from chromium_cdp import Chromium, chromium_binary

    if chromium_binary() is not None:
        with Chromium(width=1300, height=900) as b:
            b.navigate(html.as_uri())
            out.append(b.screenshot_element("#screen", out_dir / f"{stem}.png"))
    return out


@pytest.mark.slow
def test_dashboard_against_real_daemon(runtime, voices_dir, tmux):
    from vcstream.daemon import start_daemon

    d = start_daemon(_config(voices_dir), runtime)
    port = d.ws_port
    try:
        tmux.start("top", _top(d.ws_url))
        tmux.wait("top", r"● connected")

        # ---- the figures shown are the daemon's ----------------------------------------
        # Once the capture file has been heard the voice figures stop moving.
        assert d.engine.source.finished.wait(30)
        block = int(d.engine.source.sample_rate_hz * 0.02)  # the embedder reads whole blocks
        _wait(lambda: d.engine.source.ring.available() < block, 10, "the embedder to catch up")
        time.sleep(0.3)  # the last block in flight
        v = d.engine.voice_state()
        assert v["n_partials"] >= 2
        tmux.wait("top", rf"voiced\s+{v['voiced_seconds']:.1f} s")
        tmux.wait("top", rf"partials\s+{v['n_partials']}\b")
        tmux.wait("top", rf"convergence\s+{v['convergence']:.5f}")
        tmux.wait("top", r"live, learning")
        status = d.engine.status()
        level = status["capture"]["level_dbfs"]  # the file's last block: no longer changes
        tmux.wait("top", rf"in\s+\S*\s+{level:.1f} dBFS")
        q = status["queues"]
        tmux.wait("top", rf"requests queued\s+0/{q['requests_max']}")
        tmux.wait("top", rf"capture xruns\s+{status['capture']['xruns']}\b")
        clients = d.service.ws.stats()["clients"]
        assert len(clients) == 1  # the dashboard itself
        tmux.wait("top", r"clients \(1 websocket\)")
        tmux.wait("top", re.escape(clients[0]["name"].removeprefix("ws:")))
        tmux.wait("top", r"frames \d+ \(\d+% silence fill\)")

        # ---- keys ----------------------------------------------------------------------
        tmux.keys("top", "f")
        _wait(lambda: d.engine.voice_state()["frozen"], 10, "freeze at the daemon")
        tmux.wait("top", r"state\s+frozen")
        tmux.keys("top", "f")
        _wait(lambda: not d.engine.voice_state()["frozen"], 10, "unfreeze at the daemon")
        tmux.wait("top", r"live, learning")

        tmux.keys("top", "s")
        tmux.wait("top", r"speak\s+\[queue\]")
        tmux.keys("top", LINE, literal=True)
        tmux.wait("top", re.escape(LINE) + "█")
        tmux.keys("top", "Enter")
        entry = _wait(
            lambda: next((h for h in d.engine.status()["history"] if h["text"] == LINE), None),
            60,
            "the spoken line at the daemon",
        )
        assert entry["first_audio_ms"] is not None and not entry.get("cancelled")
        rid, ttfa = entry["id"], entry["first_audio_ms"]
        assert rid.startswith("top")
        length = entry["audio_ms"] / 1000
        row = rf"{re.escape(rid)}\s+done\s+{ttfa:.1f} ms\s+{length:.2f} s\s+{re.escape(LINE)}"
        tmux.wait("top", row)
        tmux.wait("top", rf"n 1\s+p50 {ttfa:.0f}\s+p95 {ttfa:.0f} ms")  # the histogram's figures
        stage = d.engine.status()["stages"]["first_audio"]
        assert stage["count"] == 1
        tmux.wait("top", r"first_audio\s+1\s")
        time.sleep(0.3)
        save_screenshot(tmux.screen("top", ansi=True), "top")

        tmux.keys("top", "r")
        _wait(lambda: d.engine.voice_state()["n_partials"] == 0, 10, "the reset at the daemon")
        # nothing heard since the reset: lines are spoken in the synthesiser's default voice
        default = d.engine.voice_state()["default_voice"]
        tmux.wait("top", rf"state\s+default {re.escape(default)}")
        tmux.wait("top", r"partials\s+0\b")

        # ---- the daemon goes away and comes back ----------------------------------------
        d.stop()
        tmux.wait("top", r"waiting for daemon", 15)
        tmux.wait("top", r"reconnecting \(attempt \d+")
        d = start_daemon(_config(voices_dir, port=port), runtime)
        tmux.wait("top", r"● connected", 20)
        tmux.wait("top", r"clients \(1 websocket\)")

        tmux.keys("top", "q")
        _assert_clean_exit(tmux, "top", 0)
    finally:
        d.stop()


def test_dashboard_waits_for_daemon_and_quits_on_ctrl_c(tmux):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tmux.start("wait", _top(f"ws://127.0.0.1:{port}/"))
    tmux.wait("wait", r"waiting for daemon")
    tmux.wait("wait", rf"ws://127\.0\.0\.1:{port}/")
    tmux.wait("wait", r"last error: connection refused")
    tmux.keys("wait", "C-c")
    _assert_clean_exit(tmux, "wait", 130)


def test_dashboard_refuses_a_bad_url(tmux):
    tmux.start("bad", _top("ftp://example.org/"))
    m = tmux.wait("bad", r"EXIT=(\d+)")
    assert m.group(1) == "2"
    assert "not a WebSocket URL" in tmux.screen("bad")


# ---- units: the dashboard's model, keys and screen, without a terminal or daemon --------
def _status(**over):
    status = {
        "uptime_s": 75.0,
        "device": "cpu",
        "synthesizer": {"name": "piper", "clones": False},
        "sample_rate_hz": 22050,
        "frame_ms": 40,
        "capture": {"source": "file", "xruns": 3, "dropped_samples": 0, "level_dbfs": -23.4,
                    "voice_active": True},
        "voice": {"loaded_voice": None, "has_embedding": True, "voiced_seconds": 12.34,
                  "n_partials": 14, "convergence": 0.99871, "frozen": False},
        "queues": {"requests": 2, "requests_max": 16, "output_ms": 480.0, "capture_ms": 20.0,
                   "clients": [{"client": "operator", "queued": 1, "operator": True},
                               {"client": "ws#3", "queued": 1, "operator": False}]},
        "current_request": "r2",
        "history": [{"id": "r1", "text": "Earlier line.", "audio_ms": 1500.0,
                     "first_audio_ms": 240.5}],
        "listeners": ["network"],
        "stages": {"vocoder": {"count": 12, "total_ms": 120.0, "last_ms": 9.5, "p50_ms": 10.0,
                               "p95_ms": 14.2, "units": 0}},
        "counters": {"underrun_frames": 7},
        "network": {"websocket": {"clients": [{"name": "ws:127.0.0.1:5000", "connected_s": 4.0,
                                               "queued_audio": 1, "dropped_audio": 0}]},
                    "handoff_dropped": 0, "zmq": None},
    }  # fmt: skip
    status.update(over)
    return {"type": "metrics", "timestamp_ns": 1, **status}


def _screen(st, prompt=None) -> str:
    import io

    from rich.console import Console

    from vcstream.top import render

    console = Console(width=COLS, height=ROWS, file=io.StringIO(), record=True)
    with st.lock:
        console.print(render(st, prompt, (COLS, ROWS)))
    return console.export_text()


def test_state_and_screen_follow_the_stream():
    import numpy as np

    from vcstream.hub import AudioFrame
    from vcstream.net import protocol as p
    from vcstream.top import DashState

    st = DashState("ws://127.0.0.1:8765/")
    assert "waiting for daemon" in _screen(st)
    st.on_connected({"type": "hello", "sample_rate_hz": 22050})
    st.on_message(_status())
    for m in (
        {"type": "accepted", "id": "r2", "mode": "queue", "queue_position": 1},
        {"type": "first_audio", "id": "r2", "latency_ms": 812.25},
    ):
        st.on_message(m)
    t = np.arange(882) / 22050
    pcm = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for seq in (10, 11, 14):  # two frames lost
        st.on_audio(p.encode_audio(AudioFrame(seq, "r2", 22050, 0, pcm)))
    assert st.seq_gaps == 2
    rms, peak = st.output_level(time.monotonic())
    assert abs(rms - 20 * np.log10(0.5 / np.sqrt(2))) < 0.05  # a sine's RMS, through PCM16
    assert abs(peak - 20 * np.log10(0.5)) < 0.05
    assert st.ttfa == {"r1": 240.5, "r2": 812.25}

    screen = _screen(st)
    for shown in (
        "● connected", "-23.4 dBFS", "VOICE", "SPEECH", "12.3 s", "14", "0.99871",
        "2/16", "operator 1 · ws#3 1", "480 ms", "capture xruns", "7 fr", "r1", "240.5 ms",
        "1.50 s", "Earlier line.",
        "r2", "playing", "812.2 ms", "127.0.0.1:5000", "clients (1 websocket)",
        "lost 2 (seq gaps)", "n 2  p50 812  p95 812 ms", "piper (does not clone)",
    ):  # fmt: skip
        assert shown in screen, shown
    assert re.search(r"200-300\s+\S+\s+1", screen) and re.search(r"750-1000\s+\S+\s+1", screen)

    st.on_disconnected("connection refused")
    st.on_waiting(3, 1.0)
    screen = _screen(st)
    assert "waiting for daemon" in screen and "attempt 3" in screen
    assert "last error: connection refused" in screen


def test_screen_shows_a_degraded_capture_and_stuck_loops():
    from vcstream.top import DashState

    st = DashState("ws://127.0.0.1:8765/")
    st.on_connected({"type": "hello", "sample_rate_hz": 22050})
    st.on_message(_status())
    assert "degraded" not in _screen(st) and "stuck:" not in _screen(st)
    capture = {"source": "sounddevice", "xruns": 0, "state": "degraded",
               "reason": "no audio from the input device for 2.1 s"}  # fmt: skip
    st.on_message(_status(capture=capture, watchdog={"state": "stalled", "stalled": ["synth"]}))
    screen = _screen(st)
    assert "capture degraded: no audio from the" in screen  # wrapped at the panel edge
    assert "stuck: synth" in screen


def test_keys_become_control_messages():
    from vcstream.top import Controller, DashState

    st = DashState("ws://x/")
    sent = []
    ctl = Controller(st, lambda msg: sent.append(msg) or f"top-{len(sent)}")
    st.on_message(_status())
    assert ctl.key("f") and sent[-1] == {"type": "freeze"}
    st.on_message(_status(voice={**_status()["voice"], "frozen": True}))
    ctl.key("f")
    assert sent[-1] == {"type": "unfreeze"}
    ctl.key("r")
    assert sent[-1] == {"type": "reset"}
    ctl.key("x")
    assert sent[-1] == {"type": "cancel", "all": True}
    n = len(sent)
    ctl.key("s")
    for ch in "Hi therex":
        ctl.key(ch)  # letters are text while the prompt is open, not commands
    ctl.key("\x7f")  # backspace
    ctl.key("\t")  # queue -> interrupt
    assert len(sent) == n and "[interrupt] Hi there" in _screen(st, ctl.prompt)
    ctl.key("\r")
    assert sent[-1] == {"type": "speak", "text": "Hi there", "mode": "interrupt"}
    assert st.requests[f"top-{len(sent)}"].text == "Hi there"
    ctl.key("s")
    ctl.key("a")
    ctl.key("\x1b")  # Esc abandons the line
    assert ctl.prompt is None and sent[-1]["text"] == "Hi there"
    assert ctl.key("q") is False


def test_websocket_url():
    from vcstream.top import _websocket_url

    assert _websocket_url("ws://127.0.0.1:8765/") == "ws://127.0.0.1:8765/"
    assert _websocket_url("http://host:8765") == "ws://host:8765/"
    assert _websocket_url("https://host/vc") == "wss://host/vc"
    assert _websocket_url("127.0.0.1:9000") == "ws://127.0.0.1:9000/"
    with pytest.raises(ValueError, match="not a WebSocket URL"):
        _websocket_url("ftp://host/")


def test_header_names_the_vocoder_that_runs():
    from vcstream.top import DashState

    st = DashState("ws://127.0.0.1:8765/")
    st.on_connected({"type": "hello", "sample_rate_hz": 22050})
    st.on_message(_status(vocoder={"quality": "lite", "requested": "auto"}))
    assert "vocoder lite (auto)" in _screen(st)
    st.on_message(_status(vocoder={"quality": "full", "requested": "full"}))
    screen = _screen(st)
    assert "vocoder full" in screen and "(auto)" not in screen
