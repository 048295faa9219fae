"""WebSocket edge: audio and events out, control in; the same port serves ``web/`` over HTTP.

Each connection gets a ``ListenerQueue`` and a writer task that drains it. Publishing
only appends to queues (never awaits a socket), so a client that stops reading fills its
own queue, loses its own oldest audio, and is disconnected after sustained overflow,
while every other client and the engine carry on. The kernel send buffer of each
connection is kept small, so a stalled client overflows within seconds rather than after
megabytes of audio have piled up in the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import itertools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.protocol import State

from vcstream.config import WebSocketConfig
from vcstream.net import httpmethods
from vcstream.net import protocol as p
from vcstream.net.access import Access
from vcstream.net.control import Controller
from vcstream.net.listener import AUDIO, EVENT, STATUS, ListenerQueue
from vcstream.net.ratelimit import TokenBucket
from vcstream.net.security import bearer_token, is_loopback_host, origin_allowed, token_matches
from vcstream.net.webfiles import read_web_file
from vcstream.scheduler import ClientId

log = logging.getLogger(__name__)

SEND_BUFFER_BYTES = 64 * 1024  # per-connection kernel send buffer (Linux doubles it)
AUTH_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 2.0
RATE_LIMIT_PAUSE_S = (0.05, 1.0)  # a refused client is not read for this long (min, max)


@dataclass(eq=False)
class _Client:
    conn: ServerConnection
    name: str
    queue: ListenerQueue
    bucket: TokenBucket
    identity: ClientId  # from the connection (or its operator token), never from a message
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    subscriptions: dict[str, bool] = field(
        default_factory=lambda: {AUDIO: True, EVENT: True, STATUS: True}
    )
    closing: bool = False
    reported_drops: tuple[int, int] = (0, 0)
    encode_errors: int = 0
    connected_ns: int = field(default_factory=time.monotonic_ns)

    def offer(self, kind: str, payload: Any) -> None:
        self.queue.put(kind, payload)
        self.wake.set()


class WebSocketServer:
    def __init__(
        self,
        cfg: WebSocketConfig,
        *,
        controller: Controller,
        web_dir: Path,
        hello: dict[str, Any],
        max_text_chars: int,
        health: Callable[[], tuple[bool, dict]],
        access: Access | None = None,
    ) -> None:
        self.cfg = cfg
        self.controller = controller
        self.access = access or controller.access
        self.web_dir = Path(web_dir)
        self.hello = hello
        self.max_text_chars = max_text_chars
        self.health = health
        self.max_bytes = min(cfg.max_message_bytes, p.MAX_MESSAGE_BYTES)
        self.loopback = is_loopback_host(cfg.host)
        self.token_required = bool(cfg.token)
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._open = 0  # connections from the upgrade request until their socket closes
        self._watchers: set[asyncio.Task] = set()  # referenced, so not collected mid-wait
        self._ids = itertools.count(1)
        self.disconnected_slow = 0
        self.refused = {"origin": 0, "auth": 0, "too_many_clients": 0}
        self.port: int | None = None

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        # The library logs every connection at INFO, duplicating ours: keep its voice for
        # warnings unless we are debugging.
        lib_log = logging.getLogger(f"{__name__}.websockets")
        lib_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.WARNING)
        self._server = await serve(
            self._handle,
            self.cfg.host,
            self.cfg.port,
            process_request=self._process_request,
            create_connection=self._create_connection,
            max_size=self.max_bytes,
            max_queue=4,
            compression=None,  # PCM hardly compresses; and no decompression bombs
            close_timeout=CLOSE_TIMEOUT_S,
            server_header="vcstream",
            logger=lib_log,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "WebSocket listening on ws://%s:%d/ (HTTP: %s)", self.cfg.host, self.port, self.web_dir
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S + 1):
                await self._server.wait_closed()
        except TimeoutError:
            for c in list(self._clients):
                c.conn.transport.abort()
        self._server = None

    def _create_connection(self, protocol, server, **kwargs) -> ServerConnection:
        # websockets fails a connection that sends an oversized message with close code
        # 1009; slip our error event in first so a client can tell why.
        original_fail = protocol.fail
        limit = self.max_bytes

        def fail(code: int, reason: str = "") -> None:
            if code == CloseCode.MESSAGE_TOO_BIG and protocol.state is State.OPEN:
                msg = p.error_message(p.TOO_LARGE, f"message exceeds the {limit}-byte limit")
                with contextlib.suppress(Exception):
                    protocol.send_text(p.dumps(msg).encode())
            original_fail(code, reason)

        protocol.fail = fail
        httpmethods.install(protocol)
        return ServerConnection(protocol, server, **kwargs)

    # ---- publishing (event loop only) ------------------------------------------------
    def publish(self, kind: str, payload: Any) -> None:
        for client in self._clients:
            if client.closing or not client.subscriptions[kind]:
                continue
            client.offer(kind, payload)
            if client.queue.should_disconnect():
                self._disconnect_slow(client)

    def _disconnect_slow(self, client: _Client) -> None:
        client.closing = True
        self.disconnected_slow += 1
        snap = client.queue.snapshot()
        log.warning(
            "disconnecting %s: its queue overflowed for %.1f s (%d audio frames dropped)",
            client.name,
            snap["overflowing_s"],
            snap["dropped_audio"],
        )
        client.queue.clear()
        reason = f"{p.OVERFLOW}: client too slow, {snap['dropped_audio']} frames dropped"
        asyncio.get_running_loop().create_task(self._close(client.conn, 1008, reason))

    @staticmethod
    async def _close(conn: ServerConnection, code: int, reason: str) -> None:
        try:
            await conn.close(code, reason[:120])
        except Exception:  # already gone
            conn.transport.abort()

    # ---- HTTP --------------------------------------------------------------------------
    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.method not in httpmethods.ALLOWED:  # (httpmethods answers these earlier)
            return httpmethods.method_response(request.method)
        if request.method == "HEAD":
            return httpmethods.head_of(await self._http_get(request))
        if "websocket" in request.headers.get("Upgrade", "").lower():
            # Each connection holds a queue and two tasks: cap them, so a connection flood
            # costs a refusal each rather than memory.
            if self._open >= max(1, self.cfg.max_clients):
                self.refused["too_many_clients"] += 1
                msg = p.error_message(
                    p.TOO_MANY_CLIENTS, f"{self._open} clients connected: try again later"
                )
                return _response(503, "application/json", p.dumps(msg).encode())
            # Released when the TCP connection ends, whether or not the handshake completes
            # and the handler runs.
            self._open += 1
            task = asyncio.get_running_loop().create_task(self._release_when_closed(conn))
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)
            return None
        return await self._http_get(request)

    async def _http_get(self, request: Request) -> Response:
        path = urlsplit(request.path).path
        if path == "/healthz":
            ok, body = self.health()
            return _response(200 if ok else 503, "application/json", p.dumps(body).encode())
        f = await asyncio.to_thread(read_web_file, self.web_dir, request.path)
        return _response(f.status, f.content_type, f.body, reason=f.reason)

    # ---- connections -------------------------------------------------------------------
    async def _release_when_closed(self, conn: ServerConnection) -> None:
        try:
            await conn.wait_closed()
        finally:
            self._open -= 1

    async def _handle(self, conn: ServerConnection) -> None:
        peer = conn.remote_address
        name = f"ws:{peer[0]}:{peer[1]}" if peer else f"ws:{next(self._ids)}"
        _small_send_buffer(conn)
        headers = conn.request.headers
        if not origin_allowed(
            headers.get("Origin"),
            headers.get("Host"),
            self.cfg.allowed_origins,
            server_is_loopback=self.loopback,
        ):
            self.refused["origin"] += 1
            origin = (headers.get("Origin") or "")[:100]
            log.warning("%s refused: origin %r not allowed", name, origin)
            await self._refuse(conn, p.FORBIDDEN_ORIGIN, f"origin {origin!r} is not allowed")
            return
        bearer = bearer_token(headers.get("Authorization"))
        operator = self.access.operator_for_token(bearer)
        authed = (
            not self.token_required or operator is not None or token_matches(bearer, self.cfg.token)
        )
        try:
            await conn.send(p.dumps({**self.hello, "auth_required": not authed}))
        except ConnectionClosed:
            return
        if not authed:
            token = await self._authenticate(conn, name)
            if token is None:
                return
            operator = self.access.operator_for_token(token)
        client = _Client(
            conn,
            name,
            ListenerQueue(
                max(1, self.cfg.client_queue_frames),
                overflow_disconnect_s=self.cfg.overflow_disconnect_seconds,
            ),
            TokenBucket(self.cfg.requests_per_second, max(1.0, 2 * self.cfg.requests_per_second)),
            operator or self.access.ws_client(),
        )
        self._clients.add(client)
        log.info("%s connected as %s", name, client.identity.label)
        writer = asyncio.get_running_loop().create_task(self._writer(client))
        try:
            await self._reader(client)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            snap = client.queue.snapshot()
            log.info(
                "%s disconnected (%d sent, %d audio frames dropped)",
                name,
                snap["sent"],
                snap["dropped_audio"],
            )

    async def _refuse(
        self, conn: ServerConnection, code: str, message: str, to: str | None = None
    ) -> None:
        with contextlib.suppress(ConnectionClosed):
            await conn.send(p.dumps(p.error_message(code, message, to=to)))
            await conn.close(CloseCode.POLICY_VIOLATION, code)

    async def _authenticate(self, conn: ServerConnection, name: str) -> str | None:
        """The first message must be ``{"type": "auth", "token": ...}`` with the right token
        (or an operator token); returns the token, None when refused."""
        try:
            async with asyncio.timeout(AUTH_TIMEOUT_S):
                data = await conn.recv()
        except TimeoutError:
            data = None
        except ConnectionClosed:
            return None
        ok = False
        if data is not None:
            try:
                cmd = p.parse_command(data, max_bytes=self.max_bytes)
                ok = isinstance(cmd, p.Auth) and (
                    token_matches(cmd.token, self.cfg.token)
                    or self.access.operator_for_token(cmd.token) is not None
                )
            except p.ProtocolError:
                ok = False
        if not ok:
            self.refused["auth"] += 1
            log.warning("%s refused: missing or wrong token", name)
            why = "no auth message" if data is None else "missing or wrong token"
            await self._refuse(
                conn,
                p.UNAUTHORIZED,
                f'{why}: send {{"type":"auth","token":...}} first',
                to="auth",
            )
            return None
        operator = self.access.operator_for_token(cmd.token) is not None
        with contextlib.suppress(ConnectionClosed):
            await conn.send(p.dumps(p.reply_message("auth", cmd.ref, ok=True, operator=operator)))
        return cmd.token

    async def _reader(self, client: _Client) -> None:
        async for data in client.conn:
            allowed = client.bucket.take()
            if isinstance(data, bytes):
                if allowed:
                    client.offer(EVENT, p.dumps(p.error_message(
                        p.BAD_MESSAGE,
                        "binary messages are not accepted: send control messages as JSON text",
                    )))  # fmt: skip
                else:
                    await self._rate_limited(client, None)
                continue
            try:
                cmd = p.parse_command(
                    data, max_bytes=self.max_bytes, max_text_chars=self.max_text_chars
                )
            except Exception as err:  # a ProtocolError, or a bug: this message's alone
                if not isinstance(err, p.ProtocolError):
                    log.exception("parsing a message from %s failed", client.name)
                    err = p.ProtocolError(p.INTERNAL, "message could not be parsed")
                if allowed:
                    client.offer(
                        EVENT, p.dumps(p.error_message(err.code, str(err), err.request_id))
                    )
                else:
                    await self._rate_limited(client, err.request_id)
                continue
            if not allowed:
                await self._rate_limited(client, cmd.ref, p.command_name(cmd))
                continue
            if isinstance(cmd, p.Subscribe):
                for kind, value in ((AUDIO, cmd.audio), (EVENT, cmd.events), (STATUS, cmd.status)):
                    if value is not None:
                        client.subscriptions[kind] = value
                client.offer(EVENT, p.dumps(p.reply_message(
                    "subscribe", cmd.ref, **{k: v for k, v in client.subscriptions.items()}
                )))  # fmt: skip
                continue
            if isinstance(cmd, p.Auth):
                # Already in: an operator token makes the connection the operator from now on.
                operator = self.access.operator_for_token(cmd.token)
                if operator is not None:
                    client.identity = operator
                client.offer(EVENT, p.dumps(p.reply_message(
                    "auth", cmd.ref, ok=True, operator=client.identity.operator
                )))  # fmt: skip
                continue
            reply = await self.controller.execute(cmd, client.identity)
            client.offer(EVENT, p.dumps(reply))

    async def _rate_limited(self, client: _Client, ref: str | None, to: str | None = None) -> None:
        wait = client.bucket.retry_after_s()
        client.offer(EVENT, p.dumps(p.error_message(
            p.RATE_LIMITED,
            f"more than {self.cfg.requests_per_second:g} requests per second: slow down",
            ref, to, retry_after_ms=round(1000 * wait),
        )))  # fmt: skip
        # Stop reading this client for a while: its flood then waits in its own TCP
        # buffers instead of costing the event loop that every client shares.
        await asyncio.sleep(min(max(wait, RATE_LIMIT_PAUSE_S[0]), RATE_LIMIT_PAUSE_S[1]))

    async def _writer(self, client: _Client) -> None:
        conn, q = client.conn, client.queue
        try:
            while True:
                item = q.pop()
                if item is None:
                    client.wake.clear()
                    await client.wake.wait()
                    continue
                drops = (q.stats.dropped_audio, q.stats.dropped_events)
                if drops != client.reported_drops:
                    lost_audio = drops[0] - client.reported_drops[0]
                    lost_events = drops[1] - client.reported_drops[1]
                    client.reported_drops = drops
                    await conn.send(p.dumps({
                        "type": "dropped",
                        "audio_frames": lost_audio,
                        "events": lost_events,
                        "total_audio_frames": drops[0],
                        "total_events": drops[1],
                    }))  # fmt: skip
                try:
                    await conn.send(item[1])
                except (UnicodeError, TypeError, ValueError):
                    # p.dumps always makes sendable text; should a bug slip one through,
                    # it costs that message, not the connection.
                    client.encode_errors += 1
                    log.exception("could not send a %s message to %s", item[0], client.name)
        except ConnectionClosed:
            pass
        except Exception:  # a bug: drop this client rather than leave it silently stuck
            log.exception("writer for %s failed", client.name)
            conn.transport.abort()

    # ---- reporting ---------------------------------------------------------------------
    @property
    def client_count(self) -> int:
        return len(self._clients)

    def stats(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "clients": [
                {
                    "name": c.name,
                    "client": c.identity.label,
                    "connected_s": round((time.monotonic_ns() - c.connected_ns) / 1e9, 1),
                    "rate_limited": c.bucket.refused,
                    "encode_errors": c.encode_errors,
                    **c.queue.snapshot(),
                }
                for c in self._clients
            ],
            "disconnected_slow": self.disconnected_slow,
            "refused_origin": self.refused["origin"],
            "refused_too_many_clients": self.refused["too_many_clients"],
            "refused_auth": self.refused["auth"],
        }


def _response(status: int, content_type: str, body: bytes, reason: str | None = None) -> Response:
    import http

    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status, reason or http.HTTPStatus(status).phrase, headers, body)


def _small_send_buffer(conn: ServerConnection) -> None:
    sock = conn.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
