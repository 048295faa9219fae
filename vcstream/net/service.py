"""The daemon's network face: WebSocket and ZeroMQ edges fed from the engine's hub.

The hub calls ``_offer`` on the engine's pacer thread. It only appends to a bounded
hand-off deque (drop-oldest) and, when none is pending, schedules one drain on the
event loop; so the pacer never waits on the network. The drain encodes each frame or
event once and gives it to every edge, which queues it per listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from vcstream.config import Config
from vcstream.errors import InputError
from vcstream.hub import AudioFrame, Event
from vcstream.net import protocol as p
from vcstream.net.access import Access
from vcstream.net.control import Controller
from vcstream.net.listener import AUDIO, EVENT, STATUS
from vcstream.net.security import is_loopback_host

log = logging.getLogger(__name__)

HANDOFF_ITEMS = 1000  # hub -> loop; only fills if the event loop itself stalls
HEALTHY_FRAME_AGE_S = 1.0


class NetworkService:
    def __init__(self, cfg: Config, engine, web_dir: Path) -> None:
        self.cfg = cfg
        self.engine = engine
        self.web_dir = Path(web_dir)
        self.ws = None
        self.zmq = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handoff: deque[AudioFrame | Event] = deque(maxlen=HANDOFF_ITEMS)
        self._scheduled = False
        self._lock = threading.Lock()  # guards _scheduled and the drop count across threads
        self._handoff_dropped = 0
        self._hub_token: int | None = None
        self._last_frame_mono = 0.0
        self._started_mono = time.monotonic()
        self.frames_published = 0

    # ---- addresses (valid after start) -------------------------------------------------
    @property
    def ws_port(self) -> int | None:
        return self.ws.port if self.ws else None

    @property
    def zmq_pub_endpoint(self) -> str | None:
        return self.zmq.pub_endpoint if self.zmq else None

    @property
    def zmq_router_endpoint(self) -> str | None:
        return self.zmq.router_endpoint if self.zmq else None

    # ---- lifecycle ---------------------------------------------------------------------
    def _check_config(self) -> None:
        ws = self.cfg.network.websocket
        if not 1024 <= ws.max_message_bytes <= p.MAX_MESSAGE_BYTES:
            raise InputError(
                f"network.websocket.max_message_bytes must be 1024..{p.MAX_MESSAGE_BYTES}, "
                f"got {ws.max_message_bytes}"
            )
        if ws.requests_per_second <= 0:
            raise InputError("network.websocket.requests_per_second must be positive")
        if ws.enabled and not is_loopback_host(ws.host) and not ws.token:
            raise InputError(
                f"WebSocket host {ws.host!r} is not loopback: set network.websocket.token "
                "so that only clients holding it can connect"
            )

    async def start(self) -> None:
        from vcstream.net.ws import WebSocketServer
        from vcstream.net.zmq_edge import ZmqEdge

        self._check_config()
        self._loop = asyncio.get_running_loop()
        net = self.cfg.network
        controller = Controller(self.engine, self.stats, Access(self.cfg.control))
        max_text = self.cfg.synth.max_text_chars
        max_bytes = net.websocket.max_message_bytes
        try:
            if net.websocket.enabled:
                self.ws = WebSocketServer(
                    net.websocket,
                    controller=controller,
                    web_dir=self.web_dir,
                    hello=p.hello_message(
                        sample_rate_hz=self.engine.sample_rate_hz,
                        frame_ms=self.cfg.output.frame_ms,
                        max_message_bytes=max_bytes,
                        max_text_chars=max_text,
                        auth_required=bool(net.websocket.token),
                        requests_per_second=net.websocket.requests_per_second,
                    ),
                    max_text_chars=max_text,
                    health=self.health,
                )
                await self.ws.start()
            if net.zmq.enabled:
                self.zmq = ZmqEdge(
                    net.zmq,
                    controller=controller,
                    max_bytes=max_bytes,
                    max_text_chars=max_text,
                    requests_per_second=net.websocket.requests_per_second,
                )
                await self.zmq.start()
        except BaseException:
            await self.stop()
            raise
        self._hub_token = self.engine.hub.subscribe("network", self._offer)

    async def stop(self) -> None:
        if self._hub_token is not None:
            self.engine.hub.unsubscribe(self._hub_token)
            self._hub_token = None
        if self.ws is not None:
            await self.ws.stop()
        if self.zmq is not None:
            await self.zmq.stop()

    # ---- hub -> loop -------------------------------------------------------------------
    def _offer(self, item: AudioFrame | Event) -> None:
        """Called on the engine's thread: never blocks, never raises."""
        with self._lock:
            if len(self._handoff) == HANDOFF_ITEMS:
                self._handoff_dropped += 1
            self._handoff.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        with contextlib.suppress(RuntimeError):  # the loop has closed during shutdown
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        while True:
            try:
                item = self._handoff.popleft()
            except IndexError:
                return
            try:
                self._dispatch(item)
            except Exception:  # one bad item must not stop the stream
                log.exception("could not publish %r", type(item).__name__)

    def _dispatch(self, item: AudioFrame | Event) -> None:
        if isinstance(item, AudioFrame):
            self._last_frame_mono = time.monotonic()
            self.frames_published += 1
            header, pcm = p.encode_audio_parts(item)
            if self.ws is not None:
                self.ws.publish(AUDIO, header + pcm)
            if self.zmq is not None:
                self.zmq.publish(AUDIO, (header, pcm))
            return
        data = item.to_dict()
        kind = EVENT
        if item.type == "metrics":
            kind = STATUS
            data["network"] = self.stats()
        text = p.dumps(data)
        if self.ws is not None:
            self.ws.publish(kind, text)
        if self.zmq is not None:
            self.zmq.publish(kind, text)

    # ---- reporting ---------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self._last_frame_mono if self._last_frame_mono else None
        ok = age is not None and age <= HEALTHY_FRAME_AGE_S
        return ok, {
            "ok": ok,
            "protocol": p.PROTOCOL_VERSION,
            "uptime_s": round(time.monotonic() - self._started_mono, 3),
            "last_frame_age_ms": None if age is None else round(1000 * age, 1),
            "sample_rate_hz": self.engine.sample_rate_hz,
            "websocket_clients": self.ws.client_count if self.ws else 0,
            "zmq": self.zmq is not None,
        }

    def stats(self) -> dict[str, Any]:
        return {
            "frames_published": self.frames_published,
            "handoff_dropped": self._handoff_dropped,
            "encode_repairs": p.encode_repairs,
            "websocket": self.ws.stats() if self.ws else None,
            "zmq": self.zmq.stats() if self.zmq else None,
        }
