"""Daemons for the figures measured as a network client sees them: the config they run
with (loopback only, no token, no capture) and ``vcstream serve`` in a process of its own."""

from __future__ import annotations

import copy
import time


def loopback_config(cfg):
    """A copy of ``cfg`` for a bench daemon: loopback WebSocket and ZeroMQ on ports the OS
    picks, no token or CURVE, no capture or playback, a request rate no bench reaches."""
    cfg = copy.deepcopy(cfg)
    cfg.capture.source = "none"
    cfg.output.playback = False
    ws, zq = cfg.network.websocket, cfg.network.zmq
    ws.enabled = zq.enabled = True
    ws.host, ws.port, ws.token = "127.0.0.1", 0, ""
    zq.pub, zq.router = "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"
    zq.curve_server_secret = zq.curve_allowed_clients = ""
    ws.requests_per_second = max(ws.requests_per_second, 50.0)
    return cfg


def config_toml(cfg) -> str:
    """A ``Config`` as TOML that ``load_config`` reads back to the same values."""
    import dataclasses
    import json as _json

    lines: list[str] = []

    def emit(obj, prefix: str) -> None:
        scalars, tables = [], []
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            (tables if dataclasses.is_dataclass(value) else scalars).append((f.name, value))
        if scalars:
            lines.append(f"[{prefix}]")
            for name, value in scalars:
                # JSON literals of str/int/float/bool/list[str] are valid TOML.
                lines.append(f"{name} = {_json.dumps(value)}")
        for name, value in tables:
            emit(value, f"{prefix}.{name}" if prefix else name)

    emit(cfg, "")
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaemonProcess:
    """`vcstream serve` in its own process, as deployed: clients and daemon do not share
    an interpreter (or its GIL)."""

    def __init__(self, cfg, workdir) -> None:
        import subprocess
        import sys
        from pathlib import Path

        self.ws_port = _free_port()
        pub_port, router_port = _free_port(), _free_port()
        cfg.network.websocket.port = self.ws_port
        cfg.network.zmq.pub = f"tcp://127.0.0.1:{pub_port}"
        cfg.network.zmq.router = f"tcp://127.0.0.1:{router_port}"
        self.ws_url = f"ws://127.0.0.1:{self.ws_port}/"
        self.zmq_pub_endpoint, self.zmq_router_endpoint = (
            cfg.network.zmq.pub,
            cfg.network.zmq.router,
        )
        path = Path(workdir) / "bench-daemon.toml"
        path.write_text(config_toml(cfg))
        self.log = open(Path(workdir) / "bench-daemon.log", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vcstream", "serve", "--config", str(path), "--no-capture"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        import json as _json
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                tail = self.log.read()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"bench daemon exited with {self.proc.returncode}: {tail}")
            try:
                url = f"http://127.0.0.1:{self.ws_port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as r:
                    if _json.loads(r.read()).get("ok"):
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError("bench daemon did not become healthy in time")

    def stop(self) -> None:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
