"""ZeroMQ edge: a PUB socket (topics ``audio``, ``status``, ``event``) and a ROUTER socket for
the same JSON control commands as the WebSocket.

PUB messages are multipart ``[topic, header, payload]``. Audio headers carry the daemon's
frame sequence number; ``event`` and ``status`` headers carry a per-topic sequence
number, so a subscriber sees any loss as a gap.

Isolation: the PUB socket never blocks. libzmq keeps a bounded pipe per subscriber
(``send_hwm`` messages) and, when one is full, drops that subscriber's new messages
alone (PUB cannot drop the oldest instead; the subscriber sees the gap). ROUTER replies
are sent without blocking; a peer that does not read its replies loses them (counted).

Off loopback, CURVE is mandatory: the server secret key and a folder of allowed client
public keys (``zmq.auth`` certificate files); a client whose key is not there cannot
complete the handshake and receives nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio
import zmq.auth
from zmq.auth.asyncio import AsyncioAuthenticator

from vcstream.config import ZmqConfig
from vcstream.errors import InputError
from vcstream.net import protocol as p
from vcstream.net.access import Access
from vcstream.net.control import Controller
from vcstream.net.listener import AUDIO, EVENT, STATUS
from vcstream.net.ratelimit import BucketTable
from vcstream.net.security import zmq_endpoint_is_local
from vcstream.scheduler import ClientId

log = logging.getLogger(__name__)

TOPICS = {AUDIO: p.TOPIC_AUDIO, EVENT: p.TOPIC_EVENT, STATUS: p.TOPIC_STATUS}
MAX_CONCURRENT_COMMANDS = 16


class ZmqEdge:
    def __init__(
        self,
        cfg: ZmqConfig,
        *,
        controller: Controller,
        max_bytes: int,
        max_text_chars: int,
        requests_per_second: float,
        access: Access | None = None,
    ) -> None:
        self.cfg = cfg
        self.controller = controller
        self.access = access or controller.access
        self.max_bytes = max_bytes
        self.max_text_chars = max_text_chars
        self.buckets = BucketTable(requests_per_second, max(1.0, 2 * requests_per_second))
        self.requests_per_second = requests_per_second
        self._topic_seq = {EVENT: 0, STATUS: 0}
        self._ctx: zmq.asyncio.Context | None = None
        self._auth: AsyncioAuthenticator | None = None
        self._pub: zmq.Socket | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task] = []
        self._router_send: zmq.Socket | None = None
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_COMMANDS)
        self._inflight: set[asyncio.Task] = set()
        self.curve = False
        self.pub_endpoint: str | None = None
        self.router_endpoint: str | None = None
        self.counters = {
            "published": 0,
            "publish_errors": 0,
            "commands": 0,
            "rate_limited": 0,
            "replies_dropped": 0,
            "encode_errors": 0,
        }

    # ---- lifecycle -------------------------------------------------------------------
    def _curve_keys(self) -> tuple[bytes, bytes] | None:
        cfg = self.cfg
        exposed = [e for e in (cfg.pub, cfg.router) if not zmq_endpoint_is_local(e)]
        if not cfg.curve_server_secret:
            if exposed:
                raise InputError(
                    f"ZeroMQ endpoint {exposed[0]} is not loopback: set network.zmq."
                    "curve_server_secret and curve_allowed_clients (CURVE keys) to expose it"
                )
            return None
        secret_path = Path(cfg.curve_server_secret)
        try:
            public, secret = zmq.auth.load_certificate(secret_path)
        except (OSError, ValueError) as err:
            raise InputError(
                f"network.zmq.curve_server_secret: cannot read {secret_path}: {err}"
            ) from None
        if secret is None:
            raise InputError(f"network.zmq.curve_server_secret: {secret_path} holds no secret key")
        allowed = Path(cfg.curve_allowed_clients) if cfg.curve_allowed_clients else None
        if allowed is None or not allowed.is_dir():
            raise InputError(
                "network.zmq.curve_allowed_clients must be a folder of allowed client public "
                f"key files (got {cfg.curve_allowed_clients!r})"
            )
        return public, secret

    async def start(self) -> None:
        keys = self._curve_keys()
        self._ctx = zmq.asyncio.Context()
        # Sync sockets of the same libzmq context (so the same ZAP handler) for sends that
        # must never wait: used only on the event loop thread.
        sync_ctx = zmq.Context.shadow(self._ctx.underlying)
        try:
            if keys is not None:
                self._auth = AsyncioAuthenticator(self._ctx)
                self._auth.start()
                self._auth.configure_curve(domain="*", location=str(self.cfg.curve_allowed_clients))
                self.curve = True
            self._pub = self._configure(sync_ctx.socket(zmq.PUB), keys)
            self._pub.sndhwm = max(1, self.cfg.send_hwm)
            self._pub.bind(self.cfg.pub)
            self.pub_endpoint = self._pub.last_endpoint.decode()
            self._router = self._configure(self._ctx.socket(zmq.ROUTER), keys)
            self._router.sndhwm = max(1, self.cfg.send_hwm)
            self._router.rcvhwm = 100
            self._router.maxmsgsize = self.max_bytes  # libzmq drops the peer past this
            self._router.router_mandatory = True  # unroutable reply: an error, not silence
            self._router.bind(self.cfg.router)
            self.router_endpoint = self._router.last_endpoint.decode()
            self._router_send = zmq.Socket.shadow(self._router.underlying)
        except zmq.ZMQError as err:
            self._close_sockets()
            raise InputError(f"ZeroMQ: cannot bind ({err})") from None
        self._tasks = [asyncio.get_running_loop().create_task(self._serve_control())]
        log.info(
            "ZeroMQ PUB on %s, ROUTER on %s%s",
            self.pub_endpoint,
            self.router_endpoint,
            " (CURVE)" if self.curve else "",
        )

    @staticmethod
    def _configure(s: zmq.Socket, keys: tuple[bytes, bytes] | None) -> Any:
        s.linger = 0
        if keys is not None:
            s.curve_publickey, s.curve_secretkey = keys
            s.curve_server = True
        return s

    async def stop(self) -> None:
        for t in [*self._tasks, *self._inflight]:
            t.cancel()
        for t in [*self._tasks, *self._inflight]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        self._close_sockets()

    def _close_sockets(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._router_send = None  # a shadow: closing the original closes it
        for s in (self._pub, self._router):
            if s is not None:
                s.close(linger=0)
        self._pub = self._router = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    # ---- publishing (event loop only) ------------------------------------------------
    def publish(self, kind: str, payload: Any) -> None:
        """Send one message now. ``payload``: (header, pcm) for audio, JSON text otherwise.

        PUB never blocks: each subscriber has its own libzmq pipe of ``send_hwm``
        messages, and when one is full libzmq drops that subscriber's new messages alone,
        which it sees as a sequence gap.
        """
        if self._pub is None:
            return
        if kind == AUDIO:
            header, body = payload
        else:
            try:
                body = payload.encode("utf-8")
            except UnicodeEncodeError:  # p.dumps never makes one; a bug must cost one message
                self.counters["encode_errors"] += 1
                return
            self._topic_seq[kind] += 1
            header = p.pack_message_header(self._topic_seq[kind], time.monotonic_ns())
        try:
            self._pub.send_multipart([TOPICS[kind], header, body], flags=zmq.NOBLOCK, copy=False)
            self.counters["published"] += 1
        except zmq.ZMQError:
            self.counters["publish_errors"] += 1

    # ---- control -------------------------------------------------------------------------
    async def _serve_control(self) -> None:
        assert self._router is not None
        while True:
            frames = await self._router.recv_multipart(copy=False)
            await asyncio.sleep(0)  # a flood must not keep the loop from everyone else
            if len(frames) < 2:
                continue
            key: Any = frames[0].bytes
            if self.curve:
                with contextlib.suppress(zmq.ZMQError):
                    key = frames[0].get("User-Id") or key
            envelope = [f.bytes for f in frames[:-1]]
            payload = frames[-1].bytes
            if not self.buckets.get(key).take():
                self.counters["rate_limited"] += 1
                self._reply(envelope, p.error_message(
                    p.RATE_LIMITED,
                    f"more than {self.requests_per_second:g} requests per second: slow down",
                ))  # fmt: skip
                continue
            await self._slots.acquire()
            # The peer's identity is its CURVE key or routing id: set by the connection,
            # not by anything in the message.
            client = self.access.zmq_client(key)
            task = asyncio.get_running_loop().create_task(self._command(envelope, payload, client))
            self._inflight.add(task)
            task.add_done_callback(self._command_done)

    def _command_done(self, task: asyncio.Task) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _command(self, envelope: list[bytes], payload: bytes, client: ClientId) -> None:
        """One request, one reply: whatever happens, the peer gets an answer."""
        self.counters["commands"] += 1
        try:
            await self._answer(envelope, payload, client)
        except Exception as err:  # a bug: logged, answered without detail
            log.exception("ZeroMQ command failed")
            self._reply(envelope, p.error_message(p.INTERNAL, f"failed: {type(err).__name__}"))

    async def _answer(self, envelope: list[bytes], payload: bytes, client: ClientId) -> None:
        try:
            cmd = p.parse_command(
                payload, max_bytes=self.max_bytes, max_text_chars=self.max_text_chars
            )
        except p.ProtocolError as err:
            self._reply(envelope, p.error_message(err.code, str(err), err.request_id))
            return
        if isinstance(cmd, (p.Auth, p.Subscribe)):
            self._reply(envelope, p.error_message(
                p.UNKNOWN_TYPE,
                f"{p.command_name(cmd)} is WebSocket-only (ZeroMQ uses CURVE keys and SUB topics)",
                cmd.ref,
            ))  # fmt: skip
            return
        self._reply(envelope, await self.controller.execute(cmd, client))

    def _reply(self, envelope: list[bytes], msg: dict[str, Any]) -> None:
        if self._router_send is None:
            return
        try:
            self._router_send.send_multipart([*envelope, p.dumps(msg).encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError:  # peer gone or not reading: its loss alone
            self.counters["replies_dropped"] += 1

    def stats(self) -> dict[str, Any]:
        return {
            "pub": self.pub_endpoint,
            "router": self.router_endpoint,
            "curve": self.curve,
            "event_seq": self._topic_seq[EVENT],
            "status_seq": self._topic_seq[STATUS],
            **self.counters,
        }
