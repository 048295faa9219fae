"""SIGHUP to the real `vcstream serve`: a clean shutdown, as the README says.

Requests still open end with an ``error`` (``shutting_down``), the WebSocket client that kept
receiving every frame until then gets a close frame (1001, going away), exit status 0.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time

from netutil import ROOT

from vcstream.net.client import WsClient

LONG = (
    "This request is still being spoken when the hangup arrives. It has several sentences, "
    "so that it cannot finish first. One more sentence keeps it going. And another one."
)


def _reader(proc: subprocess.Popen, lines: list[str]) -> threading.Thread:
    def read() -> None:
        for raw in proc.stdout:
            lines.append(raw.decode(errors="replace"))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def _port(lines: list[str], proc: subprocess.Popen, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            if m := re.search(r"WebSocket listening on ws://127\.0\.0\.1:(\d+)/", line):
                return int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise TimeoutError("the daemon did not start listening:\n" + "".join(lines[-30:]))


async def _hang_up(port: int, proc: subprocess.Popen) -> dict:
    client = await WsClient(f"ws://127.0.0.1:{port}/").connect()
    speaking = asyncio.ensure_future(client.speak(LONG, request_id="open-1", timeout=120))
    await client.stream.wait(lambda m: m.get("type") == "started" and m.get("id") == "open-1", 60)
    frames_before = client.stream.frames
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGHUP)
    result = await speaking
    deadline = time.monotonic() + 20
    while client.stream.closed is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    out = {
        "result": result,
        "closed": client.stream.closed,
        "close_code": client.conn.close_code,
        "frames_during": client.stream.frames - frames_before,
        "seq_gaps": client.stream.seq_gaps,
    }
    await client.close()
    return out


def test_sighup_shuts_the_daemon_down_cleanly(tmp_path):
    config = tmp_path / "vcstream.toml"
    config.write_text(
        '[device]\ncompute = "cpu"\n[capture]\nsource = "none"\n'
        f'[voices]\ndir = "{tmp_path / "voices"}"\n[log]\nlevel = "INFO"\n'
        "[network.websocket]\nport = 0\n"
        '[network.zmq]\npub = "tcp://127.0.0.1:*"\nrouter = "tcp://127.0.0.1:*"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "vcstream", "serve", "--config", str(config)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines: list[str] = []
    reader = _reader(proc, lines)
    try:
        port = _port(lines, proc, timeout=240)
        out = asyncio.run(_hang_up(port, proc))
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    log = "".join(lines)
    assert rc == 0, log[-3000:]
    assert "SIGHUP received: shutting down cleanly" in log and "stopped cleanly" in log
    error = out["result"].error
    assert error is not None and error["code"] == "shutting_down", out["result"].events[-3:]
    assert out["closed"] is not None and out["close_code"] == 1001
    assert out["frames_during"] >= 5 and out["seq_gaps"] == 0
