"""Helpers shared by the network tests: a real daemon on OS-chosen loopback ports."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from vcstream.config import Config

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TOKEN = "test-token-Zq8"


def daemon_config(voices_dir: Path, **ws) -> Config:
    cfg = Config()
    cfg.device.compute = "cpu"
    cfg.capture.source = "none"
    cfg.output.playback = False
    cfg.voices.dir = str(voices_dir)
    cfg.log.level = "WARNING"
    cfg.network.websocket.host = "127.0.0.1"
    cfg.network.websocket.port = 0
    for key, value in ws.items():
        setattr(cfg.network.websocket, key, value)
    cfg.network.zmq.pub = "tcp://127.0.0.1:*"
    cfg.network.zmq.router = "tcp://127.0.0.1:*"
    return cfg


@contextlib.contextmanager
def running_daemon(cfg: Config, runtime, web_dir: Path | None = None) -> Iterator:
    """The real daemon (engine + network) on a background thread; ``web_dir`` replaces the
    page folder it serves."""
    from vcstream import daemon

    d = daemon.start_daemon(cfg, runtime, web_dir=web_dir or daemon.WEB_DIR)
    try:
        yield d
    finally:
        d.stop()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def stalled_ws_client(port: int, recv_buffer: int = 4096) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
    s.connect(("127.0.0.1", port))
    s.sendall(
        (
            "GET / HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    deadline = time.monotonic() + 10
    got = b""
    while b"\r\n\r\n" not in got:
        if time.monotonic() > deadline:
            raise TimeoutError("no handshake response")
        got += s.recv(1)  # byte by byte: read nothing past the response headers
    assert got.startswith(b"HTTP/1.1 101"), got[:100]
    return s


def wait_until(predicate, timeout: float, what: str = "condition"):
    """Poll ``predicate`` every 0.1 s; its first truthy value, or ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")
