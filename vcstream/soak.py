"""Soak: run the daemon under a steady, mixed load and print how it holds up over time.

    vcstream soak --minutes 60                        # its own daemon, looped capture file
    vcstream soak --minutes 600 --connect ws://127.0.0.1:8765/   # a deployed daemon

The load, all over WebSocket:

* a well-behaved client asks for a line every ``interval_s`` (2 s) and collects its audio;
  every one of its requests must end in ``done`` (a failure is an ``error`` event, a refusal
  or a timeout);
* a slow listener completes the handshake and never reads again (its queue overflows and
  the daemon drops it, then it connects again);
* a flooder sends speak requests as fast as its rate limit allows (its refusals are
  expected and counted).

Every ``sample_s`` a row of the series: the daemon's resident memory, threads and open file
descriptors (from ``status.process``), the well-behaved client's requests ok/failed, the
frames it received late (more than ``LATE_FRAME_MS`` after the previous one) or lost (gaps in
``seq``), the flooder's requests and refusals, and the slow listeners the daemon dropped
(``status.network.websocket.disconnected_slow``; the slow listener connects again after each),
and the synthesis real-time factor so far (above about 0.8 this machine cannot keep up with
the load, and the well-behaved client's lines back up until its own queue refuses them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from vcstream.net.client import WsClient

MEL_HOP = 256  # samples per mel frame (the synthesis domain's STFT hop)
TCP_ESTABLISHED = 1  # linux/tcp_states.h
LATE_FRAME_MS = 120.0  # three 40 ms frames: a stall a listener would hear
# Short lines: the load stays under real time (audio plays at its own pace). With fair turns
# each of the client's lines waits for at most one of the flooder's, so a line every 2 s fits
# while one line plus one flood line lasts under 2 s.
LINES = ("Good evening.", "Still here.", "Line by line.", "The show goes on.")
FLOOD_TEXT = "Flood."


@dataclass
class SoakSample:
    t_s: float
    rss_mb: float
    threads: int
    fds: int
    ok: int
    failed: int
    late_frames: int
    lost_frames: int
    flood_sent: int
    flood_refused: int
    slow_dropped: int  # the daemon's count of slow listeners it dropped
    rtf: float | None  # synthesis + vocoder time per second of audio, since the start


@dataclass
class SoakReport:
    samples: list[SoakSample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # the well-behaved client's, in words

    def to_json(self) -> dict:
        return {"samples": [asdict(s) for s in self.samples], "failures": self.failures}


HEADER = (
    f"{'t_s':>7} {'rss_mb':>8} {'threads':>7} {'fds':>5} {'ok':>5} {'failed':>6} "
    f"{'late':>5} {'lost':>5} {'flood':>6} {'refused':>7} {'slow':>5} {'rtf':>5}"
)


def format_sample(s: SoakSample) -> str:
    return (
        f"{s.t_s:7.0f} {s.rss_mb:8.1f} {s.threads:7d} {s.fds:5d} {s.ok:5d} {s.failed:6d} "
        f"{s.late_frames:5d} {s.lost_frames:5d} {s.flood_sent:6d} {s.flood_refused:7d} "
        f"{s.slow_dropped:5d} {'–' if s.rtf is None else f'{s.rtf:.2f}':>5}"
    )


def real_time_factor(status: dict) -> float | None:
    """Seconds of synthesis and vocoding per second of audio made, from a status snapshot."""
    stages = status.get("stages") or {}
    synth, vocoder = stages.get("synth") or {}, stages.get("vocoder") or {}
    frames = float(synth.get("units") or 0)
    rate = float(status.get("sample_rate_hz") or 22050)
    if frames <= 0:
        return None
    busy_s = (float(synth.get("total_ms", 0)) + float(vocoder.get("total_ms", 0))) / 1000
    return round(busy_s / (frames * MEL_HOP / rate), 3)


class _SlowListener:
    """Handshakes and never reads; reconnects when the daemon drops it (a socket edge)."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.sock: socket.socket | None = None
        self.connects = 0

    def ensure(self, dropped: bool = False) -> None:
        """Connected again if the daemon dropped it (``dropped``: its count of slow
        listeners dropped went up) or the connection is no longer established."""
        if self.sock is not None and not dropped and not self._closed_by_peer():
            return
        self.close()
        s = socket.create_connection((self.host, self.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = s.recv(1)  # byte by byte: nothing past the response headers is read
            if not chunk:
                raise ConnectionError("slow listener: connection closed during the handshake")
            got += chunk
        if not got.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"slow listener: handshake refused: {got[:80]!r}")
        self.sock = s
        self.connects += 1

    def _closed_by_peer(self) -> bool:
        # Unread frames stay queued in front of the daemon's FIN, so reading cannot tell;
        # the kernel's TCP state can: anything but ESTABLISHED means the daemon dropped it.
        try:
            state = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
        except OSError:
            return True
        return state != TCP_ESTABLISHED

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


async def run_soak(
    url: str,
    seconds: float,
    *,
    interval_s: float = 2.0,
    sample_s: float = 10.0,
    token: str | None = None,
    on_sample: Callable[[SoakSample], None] | None = None,
    request_timeout_s: float = 60.0,
) -> SoakReport:
    """Drive the load against the daemon at ``url`` for ``seconds``; the series it saw."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    report = SoakReport()
    ok = failed = late = flood_sent = flood_refused = slow_dropped = 0
    last_arrival: list[float | None] = [None]

    good = await WsClient(url, token=token).connect()
    flooder = await WsClient(url, token=token).connect()
    probe = await WsClient(url, token=token).connect()  # status only: its own rate budget
    slow = _SlowListener(parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/")
    frame_ms = float(good.hello.get("frame_ms", 40))

    def on_audio(header, pcm, now: float) -> None:
        nonlocal late
        prev, last_arrival[0] = last_arrival[0], now
        if prev is not None and (now - prev) * 1000 > max(LATE_FRAME_MS, 3 * frame_ms):
            late += 1

    good.stream.on_audio = on_audio

    def on_flood_message(msg: dict, now: float) -> None:
        nonlocal flood_refused
        if msg.get("type") == "error" and msg.get("to") == "speak":
            flood_refused += 1

    flooder.stream.on_message = on_flood_message
    rate = float(flooder.hello.get("requests_per_second", 5.0)) or 5.0

    async def flood() -> None:
        nonlocal flood_sent
        for n in itertools.count():
            msg = {"type": "speak", "id": f"flood-{n}", "text": FLOOD_TEXT}
            await flooder._send(msg)
            flood_sent += 1
            await asyncio.sleep(1.0 / rate)

    async def one_line(n: int) -> None:
        nonlocal ok, failed
        rid = f"soak-{n}"
        try:
            result = await good.speak(
                LINES[n % len(LINES)], request_id=rid, timeout=request_timeout_s
            )
        except Exception as err:  # timeout or lost connection: a failure of the daemon
            failed += 1
            report.failures.append(f"{rid}: {type(err).__name__}: {err}")
            return
        if result.error is not None or result.done is None or not result.audio_seconds:
            failed += 1
            report.failures.append(f"{rid}: {result.error or 'no audio'}")
        else:
            ok += 1

    async def sample(t0: float) -> None:
        status = await probe.status()
        proc = status.get("process") or {}
        nonlocal slow_dropped
        net = (status.get("network") or {}).get("websocket") or {}
        dropped = int(net.get("disconnected_slow", 0))
        await asyncio.to_thread(slow.ensure, dropped > slow_dropped)
        slow_dropped = dropped
        s = SoakSample(
            t_s=round(time.monotonic() - t0, 1),
            rss_mb=float(proc.get("rss_mb", 0.0)),
            threads=int(proc.get("threads", 0)),
            fds=int(proc.get("fds", 0)),
            ok=ok,
            failed=failed,
            late_frames=late,
            lost_frames=good.stream.seq_gaps,
            flood_sent=flood_sent,
            flood_refused=flood_refused,
            slow_dropped=dropped,
            rtf=real_time_factor(status),
        )
        report.samples.append(s)
        if on_sample is not None:
            on_sample(s)

    await asyncio.to_thread(slow.ensure)
    flood_task = asyncio.create_task(flood())
    lines: set[asyncio.Task] = set()
    t0 = time.monotonic()
    next_line, next_sample = t0, t0
    try:
        for n in itertools.count():
            now = time.monotonic()
            if now - t0 >= seconds:
                break
            if now >= next_sample:
                await sample(t0)
                next_sample += sample_s
            task = asyncio.create_task(one_line(n))
            lines.add(task)
            task.add_done_callback(lines.discard)
            next_line += interval_s
            await asyncio.sleep(max(0.0, next_line - time.monotonic()))
        if lines:
            await asyncio.wait(lines, timeout=request_timeout_s)
        await sample(t0)
    finally:
        flood_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flood_task
        slow.close()
        for c in (good, flooder, probe):
            await c.close()
    return report


# ---- command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vcstream soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    p.add_argument("--connect", help="a running daemon's WebSocket URL (default: start one here)")
    p.add_argument("--token", help="the daemon's WebSocket token")
    p.add_argument("--config", help="config of the daemon started here (default: built-in)")
    p.add_argument("--capture-file", help="WAV looped as the microphone of the daemon started here")
    p.add_argument("--device", help="auto, cpu or cuda, for the daemon started here")
    p.add_argument("--interval-s", type=float, default=2.0, help="seconds between lines")
    p.add_argument("--sample-s", type=float, default=10.0, help="seconds between rows")
    p.add_argument("--json", action="store_true", help="print the series as JSON at the end")
    return p


def _local_daemon(args: argparse.Namespace):
    from vcstream.config import load_config
    from vcstream.daemon import start_daemon

    cfg = load_config(args.config)
    cfg.network.websocket.host, cfg.network.websocket.port = "127.0.0.1", 0
    cfg.network.zmq.pub, cfg.network.zmq.router = "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"
    cfg.output.playback = False
    if args.device:
        cfg.device.compute = args.device
    if args.capture_file:
        cfg.capture.source, cfg.capture.file, cfg.capture.loop = "file", args.capture_file, True
    return start_daemon(cfg)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.minutes <= 0 or args.interval_s <= 0 or args.sample_s <= 0:
        print("vcstream soak: --minutes, --interval-s and --sample-s must be > 0", file=sys.stderr)
        return 2
    daemon = None if args.connect else _local_daemon(args)
    url = args.connect or daemon.ws_url
    print(f"soak of {url} for {args.minutes:g} min: a line every {args.interval_s:g} s, "
          "a slow listener, a flooder", flush=True)  # fmt: skip
    print(HEADER, flush=True)
    try:
        report = asyncio.run(
            run_soak(
                url,
                args.minutes * 60,
                interval_s=args.interval_s,
                sample_s=args.sample_s,
                token=args.token,
                on_sample=lambda s: print(format_sample(s), flush=True),
            )
        )
    finally:
        if daemon is not None:
            daemon.stop()
    for failure in report.failures:
        print(f"failed: {failure}")
    if args.json:
        print(json.dumps(report.to_json()))
    return 1 if report.failures else 0
