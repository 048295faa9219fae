"""Client of a running daemon over WebSocket or ZeroMQ, and the `vcstream client` command.

    vcstream client speak "Hello there." [--ws URL | --zmq URL] -o out.wav
    vcstream client status | cancel [ID] | voice freeze|unfreeze|reset|list|save NAME|load NAME

``WsClient`` and ``ZmqClient`` share one interface (async): ``connect``, ``request``,
``speak`` (returns a ``SpeakResult`` with the audio and the time to first audio as this
client saw it), ``close``. Scripts, tests and ``vcstream bench`` use them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vcstream.errors import InputError, VcstreamError
from vcstream.net import protocol as p

DEFAULT_WS_URL = "ws://127.0.0.1:8765/"
DEFAULT_TIMEOUT_S = 120.0


class ServerError(VcstreamError):
    """The daemon answered with an error event; ``code`` is the daemon's."""

    def __init__(self, msg: dict[str, Any]) -> None:
        self.code = str(msg.get("code", "error"))
        self.reply = msg
        super().__init__(f"{self.code}: {msg.get('message', '')}")


class ConnectionLostError(VcstreamError):
    code = "connection_lost"


@dataclass
class SpeakResult:
    request_id: str
    transport: str
    sample_rate_hz: int = 0
    chunks: list[np.ndarray] = field(default_factory=list)  # int16, silence fill excluded
    sent_s: float = 0.0  # perf_counter when the request left
    first_audio_s: float | None = None
    server_first_audio_ms: float | None = None  # the daemon's own figure (first_audio event)
    frames: int = 0
    silent_frames: int = 0
    end_of_utterance: bool = False
    events: list[dict] = field(default_factory=list)
    done: dict | None = None
    error: dict | None = None

    @property
    def pcm(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)

    @property
    def audio_seconds(self) -> float:
        n = sum(len(c) for c in self.chunks)
        return n / self.sample_rate_hz if self.sample_rate_hz else 0.0

    @property
    def time_to_first_audio_ms(self) -> float | None:
        if self.first_audio_s is None:
            return None
        return 1000.0 * (self.first_audio_s - self.sent_s)

    def write_wav(self, path: str | Path) -> None:
        """16-bit mono WAV of exactly the samples received (no re-quantisation)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate_hz or 22050)
            w.writeframes(self.pcm.astype("<i2").tobytes())
        tmp.replace(path)

    def summary(self) -> dict[str, Any]:
        ttfa = self.time_to_first_audio_ms
        return {
            "id": self.request_id,
            "transport": self.transport,
            "time_to_first_audio_ms": None if ttfa is None else round(ttfa, 2),
            "server_first_audio_ms": self.server_first_audio_ms,
            "audio_seconds": round(self.audio_seconds, 3),
            "audio_samples": sum(len(c) for c in self.chunks),
            "daemon_audio_ms": None if self.done is None else self.done.get("audio_ms"),
            "frames": self.frames,
            "silent_frames": self.silent_frames,
            "sample_rate_hz": self.sample_rate_hz,
            "error": self.error,
        }


class _Stream:
    """Everything a client receives, dispatched to waiting requests and speak collectors."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.collectors: dict[str, tuple[SpeakResult, asyncio.Future]] = {}
        self.waiters: list[tuple[Callable[[dict], bool], asyncio.Future]] = []
        self.last_seq: int | None = None
        self.seq_gaps = 0
        self.frames = 0
        self.dropped_reports: list[dict] = []
        self.on_audio: Callable[[p.AudioHeader, np.ndarray, float], None] | None = None
        self.on_message: Callable[[dict, float], None] | None = None
        self.closed: BaseException | None = None

    def audio(self, header: p.AudioHeader, pcm: np.ndarray, now: float) -> None:
        self.frames += 1
        if self.last_seq is not None and header.seq != self.last_seq + 1:
            self.seq_gaps += 1
        self.last_seq = header.seq
        if self.on_audio is not None:
            self.on_audio(header, pcm, now)
        entry = self.collectors.get(header.request_id)
        if entry is None:
            return
        result, _ = entry
        result.frames += 1
        result.sample_rate_hz = header.sample_rate_hz
        if header.silence:
            result.silent_frames += 1
        elif len(pcm):
            if result.first_audio_s is None:
                result.first_audio_s = now
            result.chunks.append(pcm)
        if header.end_of_utterance:
            result.end_of_utterance = True

    def message(self, msg: dict, now: float) -> None:
        if self.on_message is not None:
            self.on_message(msg, now)
        if msg.get("type") == "dropped":
            self.dropped_reports.append(msg)
        for pred, fut in list(self.waiters):
            if not fut.done() and pred(msg):
                fut.set_result(msg)
        entry = self.collectors.get(msg.get("id")) if isinstance(msg.get("id"), str) else None
        if entry is None:
            return
        result, fut = entry
        result.events.append(msg)
        kind = msg.get("type")
        if kind == "first_audio":
            result.server_first_audio_ms = msg.get("latency_ms")
        elif kind == "done":
            result.done = msg
            if not fut.done():
                fut.set_result(result)
        elif kind == "error":
            result.error = msg
            if not fut.done():
                fut.set_result(result)

    def lost(self, err: BaseException) -> None:
        self.closed = err
        for _, fut in self.waiters:
            if not fut.done():
                fut.set_exception(ConnectionLostError(f"connection lost: {err}"))
        for _, fut in self.collectors.values():
            if not fut.done():
                fut.set_exception(ConnectionLostError(f"connection lost: {err}"))

    async def wait(self, pred: Callable[[dict], bool], timeout: float) -> dict:
        if self.closed is not None:
            raise ConnectionLostError(f"connection lost: {self.closed}")
        fut = asyncio.get_running_loop().create_future()
        entry = (pred, fut)
        self.waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self.waiters.remove(entry)


_refs = itertools.count(1)


def _new_ref(prefix: str = "c") -> str:
    return f"{prefix}{int(time.time() * 1000) % 10**9}-{next(_refs)}"


def _speak_message(
    request_id: str, text: str | None, phonemes: str | None, voice: str | None, mode: str
) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "speak", "id": request_id, "mode": mode}
    if text is not None:
        msg["text"] = text
    if phonemes is not None:
        msg["phonemes"] = phonemes
    if voice:
        msg["voice"] = voice
    return msg


class _BaseClient:
    transport = ""

    def __init__(self) -> None:
        self.stream = _Stream(self.transport)

    async def _send(self, msg: dict[str, Any]) -> None:
        raise NotImplementedError

    async def request(self, msg: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """Send a control message and return its reply; ``ServerError`` if it is an error."""
        msg = dict(msg)
        if msg.get("type") != "cancel":
            msg.setdefault("id", _new_ref())
        ref, to = msg.get("id"), msg.get("type")
        reply = await self._exchange(msg, ref, to, timeout)
        if reply.get("type") == "error":
            raise ServerError(reply)
        return reply

    async def _exchange(self, msg: dict, ref: str | None, to: str | None, timeout: float) -> dict:
        def matches(m: dict) -> bool:
            if m.get("type") not in ("reply", "error"):
                return False
            if ref is not None:
                return m.get("id") == ref
            return m.get("to") == to and "id" not in m

        waiter = asyncio.ensure_future(self.stream.wait(matches, timeout))
        await asyncio.sleep(0)  # register before the reply can arrive
        await self._send(msg)
        return await waiter

    async def speak(
        self,
        text: str | None = None,
        *,
        phonemes: str | None = None,
        voice: str | None = None,
        mode: str = "queue",
        request_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> SpeakResult:
        """Speak and collect the request's audio until its ``done`` (or error) event."""
        rid = request_id or _new_ref("r")
        result = SpeakResult(rid, self.transport)
        fut = asyncio.get_running_loop().create_future()
        self.stream.collectors[rid] = (result, fut)
        try:
            msg = _speak_message(rid, text, phonemes, voice, mode)
            result.sent_s = time.perf_counter()
            await self._send_speak(msg)
            async with asyncio.timeout(timeout):
                await fut
        finally:
            self.stream.collectors.pop(rid, None)
        return result

    async def _send_speak(self, msg: dict) -> None:
        await self._send(msg)

    async def status(self) -> dict[str, Any]:
        return (await self.request({"type": "status"}))["status"]


class WsClient(_BaseClient):
    transport = "websocket"

    def __init__(
        self,
        url: str = DEFAULT_WS_URL,
        *,
        token: str | None = None,
        origin: str | None = None,
        auth_in_header: bool = True,
    ) -> None:
        super().__init__()
        self.url = url
        self.token = token
        self.origin = origin
        self.auth_in_header = auth_in_header
        self.hello: dict[str, Any] = {}
        self.conn = None
        self._task: asyncio.Task | None = None

    async def connect(self, timeout: float = 10.0) -> WsClient:
        from websockets.asyncio.client import connect

        headers = {}
        if self.token and self.auth_in_header:
            headers["Authorization"] = f"Bearer {self.token}"
        self.conn = await connect(
            self.url,
            additional_headers=headers,
            origin=self.origin,
            max_size=2**20,
            compression=None,
            open_timeout=timeout,
        )
        async with asyncio.timeout(timeout):
            first = json.loads(await self.conn.recv())
        if first.get("type") == "error":
            raise ServerError(first)
        self.hello = first
        self._task = asyncio.get_running_loop().create_task(self._receive())
        if first.get("auth_required"):
            if not self.token:
                await self.close()
                raise InputError("the daemon requires a token: pass --token")
            reply = await self._exchange(
                {"type": "auth", "token": self.token}, None, "auth", timeout
            )
            if reply.get("type") == "error":
                raise ServerError(reply)
        return self

    async def _receive(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for data in self.conn:
                now = time.perf_counter()
                if isinstance(data, bytes):
                    header, pcm = p.decode_audio(data)
                    self.stream.audio(header, pcm, now)
                else:
                    self.stream.message(json.loads(data), now)
            self.stream.lost(ConnectionError(self._close_reason()))
        except ConnectionClosed as err:
            self.stream.lost(err)
        except Exception as err:
            self.stream.lost(err)
            raise

    def _close_reason(self) -> str:
        c = self.conn
        if c is not None and c.close_code is not None:
            return f"closed with code {c.close_code} {c.close_reason!r}"
        return "closed"

    async def _send(self, msg: dict[str, Any]) -> None:
        if self.stream.closed is not None:
            raise ConnectionLostError(f"connection lost: {self.stream.closed}")
        await self.conn.send(json.dumps(msg))

    async def send_raw(self, data: str | bytes) -> None:
        """For tests and probes: send anything, as is."""
        await self.conn.send(data)

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task

    async def __aenter__(self) -> WsClient:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()


class ZmqClient(_BaseClient):
    """DEALER to the daemon's ROUTER for control, SUB to its PUB for audio and events."""

    transport = "zmq"

    def __init__(
        self,
        router: str,
        pub: str | None = None,
        *,
        server_public_key: bytes | None = None,
        client_keys: tuple[bytes, bytes] | None = None,
        topics: tuple[bytes, ...] = (p.TOPIC_AUDIO, p.TOPIC_EVENT),
    ) -> None:
        super().__init__()
        self.router, self.pub = router, pub
        self.server_public_key, self.client_keys = server_public_key, client_keys
        self.topics = topics
        self._ctx = None
        self._dealer = None
        self._sub = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.topic_seq: dict[bytes, int] = {}
        self.topic_gaps: dict[bytes, int] = {}

    def _secure(self, sock) -> None:
        if self.server_public_key is not None:
            if self.client_keys is None:
                raise InputError(
                    "CURVE needs the client's own key pair as well as the server's key"
                )
            sock.curve_serverkey = self.server_public_key
            sock.curve_publickey, sock.curve_secretkey = self.client_keys

    async def connect(self, timeout: float = 10.0) -> ZmqClient:
        import zmq
        import zmq.asyncio

        self._ctx = zmq.asyncio.Context()
        self._dealer = self._ctx.socket(zmq.DEALER)
        self._dealer.linger = 0
        self._secure(self._dealer)
        self._dealer.connect(self.router)
        if self.pub is None:
            self.pub = await self._discover_pub(timeout)
        self._sub = self._ctx.socket(zmq.SUB)
        self._sub.linger = 0
        self._sub.rcvhwm = 10000
        self._secure(self._sub)
        for topic in self.topics:
            self._sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._sub.connect(self.pub)
        self._task = asyncio.get_running_loop().create_task(self._receive())
        # PUB drops what it sends before a subscription arrives: wait until the stream
        # flows (the daemon publishes a frame every frame_ms, silence when idle).
        if p.TOPIC_AUDIO in self.topics:
            deadline = time.monotonic() + timeout
            while self.stream.frames == 0:
                if self.stream.closed is not None or time.monotonic() > deadline:
                    raise ConnectionLostError(f"no audio from {self.pub} within {timeout:g} s")
                await asyncio.sleep(0.005)
        return self

    async def _discover_pub(self, timeout: float) -> str:
        """Ask the daemon for its PUB endpoint; keep the host the user gave for the ROUTER."""
        status = await self._dealer_request({"type": "status", "id": _new_ref()}, timeout)
        if status.get("type") == "error":
            raise ServerError(status)
        pub = (((status.get("status") or {}).get("network") or {}).get("zmq") or {}).get("pub")
        if not pub:
            raise ConnectionLostError("the daemon did not report its ZeroMQ PUB endpoint")
        port = pub.rsplit(":", 1)[1]
        host = self.router.rsplit(":", 1)[0]
        return f"{host}:{port}"

    async def _dealer_request(self, msg: dict, timeout: float) -> dict:
        async with self._lock:
            await self._dealer.send(json.dumps(msg).encode())
            try:
                async with asyncio.timeout(timeout):
                    frames = await self._dealer.recv_multipart()
            except TimeoutError:
                raise ConnectionLostError(
                    f"no reply from {self.router} within {timeout:g} s (daemon down, message "
                    "over the size limit, or CURVE key not accepted)"
                ) from None
            return json.loads(frames[-1])

    async def _exchange(self, msg: dict, ref: str | None, to: str | None, timeout: float) -> dict:
        return await self._dealer_request(msg, timeout)

    async def _send_speak(self, msg: dict) -> None:
        reply = await self._dealer_request(msg, 30.0)
        rid = msg["id"]
        if reply.get("type") == "error":
            entry = self.stream.collectors.get(rid)
            if entry is not None:
                entry[0].error = reply
                if not entry[1].done():
                    entry[1].set_result(entry[0])

    async def _send(self, msg: dict[str, Any]) -> None:
        await self._dealer_request(msg, 30.0)

    async def _receive(self) -> None:
        try:
            while True:
                topic, header, payload = await self._sub.recv_multipart()
                now = time.perf_counter()
                if topic == p.TOPIC_AUDIO:
                    h = p.unpack_audio_header(header)
                    self.stream.audio(h, np.frombuffer(payload, "<i2").copy(), now)
                    continue
                seq, _ = p.unpack_message_header(header)
                last = self.topic_seq.get(topic)
                if last is not None and seq != last + 1:
                    self.topic_gaps[topic] = self.topic_gaps.get(topic, 0) + 1
                self.topic_seq[topic] = seq
                msg = json.loads(payload)
                msg.setdefault("topic", topic.decode())
                self.stream.message(msg, now)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.stream.lost(err)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for s in (self._dealer, self._sub):
            if s is not None:
                s.close(linger=0)
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    async def __aenter__(self) -> ZmqClient:
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()


# ---- command line ----------------------------------------------------------------------
def _load_key(path: str, *, secret: bool) -> Any:
    import zmq.auth

    try:
        public, sec = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read key file {path}: {err}") from None
    if secret:
        if sec is None:
            raise InputError(f"{path} holds no secret key (give the client's .key_secret file)")
        return public, sec
    return public


def make_client(args: argparse.Namespace) -> WsClient | ZmqClient:
    if args.zmq:
        server_key = (
            _load_key(args.curve_server_key, secret=False) if args.curve_server_key else None
        )
        client_keys = (
            _load_key(args.curve_client_key, secret=True) if args.curve_client_key else None
        )
        return ZmqClient(
            args.zmq, args.zmq_pub, server_public_key=server_key, client_keys=client_keys
        )
    return WsClient(args.ws or DEFAULT_WS_URL, token=args.token, origin=args.origin)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vcstream client", description="talk to a running vcstream daemon"
    )
    conn = argparse.ArgumentParser(add_help=False)
    where = conn.add_mutually_exclusive_group()
    where.add_argument("--ws", metavar="URL", help=f"WebSocket URL (default {DEFAULT_WS_URL})")
    where.add_argument(
        "--zmq", metavar="URL", help="ZeroMQ ROUTER endpoint, e.g. tcp://127.0.0.1:5555"
    )
    conn.add_argument(
        "--zmq-pub", metavar="URL", help="ZeroMQ PUB endpoint (default: ask the daemon)"
    )
    conn.add_argument("--token", help="WebSocket token, when the daemon requires one")
    conn.add_argument("--origin", help="Origin header to send (WebSocket)")
    conn.add_argument(
        "--curve-server-key", metavar="FILE", help="daemon's public key file (ZeroMQ CURVE)"
    )
    conn.add_argument(
        "--curve-client-key", metavar="FILE", help="this client's secret key file (ZeroMQ CURVE)"
    )
    conn.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait")
    conn.add_argument("--json", action="store_true", help="print the result as JSON")
    sub = parser.add_subparsers(dest="action", required=True)

    s = sub.add_parser("speak", parents=[conn], help="speak text, stream the audio to a WAV file")
    s.add_argument("text", nargs="?", help="text to speak")
    s.add_argument("--phonemes", help="espeak-ng IPA phonemes instead of text")
    s.add_argument("--voice", help="saved voice profile to speak with")
    s.add_argument(
        "--mode", choices=p.MODES, default="queue", help="queue, or interrupt what plays"
    )
    s.add_argument("--id", help="request id (default: generated)")
    s.add_argument("-o", "--output", help="WAV file to write")

    sub.add_parser("status", parents=[conn], help="print the daemon's status")
    c = sub.add_parser("cancel", parents=[conn], help="cancel one request, or every client's")
    c.add_argument("id", nargs="?")
    v = sub.add_parser("voice", parents=[conn], help="voice commands")
    v.add_argument("command", choices=["freeze", "unfreeze", "reset", "list", "save", "load"])
    v.add_argument("name", nargs="?")
    return parser


async def _run(args: argparse.Namespace) -> int:
    client = make_client(args)
    await client.connect(min(args.timeout, 30.0))
    try:
        if args.action == "speak":
            if (args.text is None) == (args.phonemes is None):
                raise InputError("give the text to speak, or --phonemes (not both)")
            result = await client.speak(
                args.text,
                phonemes=args.phonemes,
                voice=args.voice,
                mode=args.mode,
                request_id=args.id,
                timeout=args.timeout,
            )
            if result.error is not None:
                raise ServerError(result.error)
            if args.output:
                result.write_wav(args.output)
            summary = result.summary()
            summary["output"] = args.output
            if args.json:
                print(json.dumps(summary))
            else:
                ttfa = result.time_to_first_audio_ms
                server = result.server_first_audio_ms
                where = f"wrote {args.output}: " if args.output else ""
                print(
                    f"{where}{result.audio_seconds:.2f} s over {result.transport}, time to first "
                    f"audio {ttfa:.1f} ms (daemon reports {server} ms)"
                    if ttfa is not None
                    else f"{where}no audio received"
                )
            return 0
        if args.action == "status":
            print(json.dumps(await client.status(), indent=None if args.json else 1))
            return 0
        if args.action == "cancel":
            # A fresh connection has no requests of its own: without an id, ask for all
            # (forbidden where control.operator_only reserves it for the operator).
            msg: dict[str, Any] = {
                "type": "cancel",
                **({"id": args.id} if args.id else {"all": True}),
            }
            print(json.dumps(await client.request(msg, args.timeout)))
            return 0
        msg = {"type": args.command}
        if args.command in ("save", "load"):
            if not args.name:
                raise InputError(f"voice {args.command} needs a NAME")
            msg["name"] = args.name
        print(json.dumps(await client.request(msg, args.timeout)))
        return 0
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except VcstreamError as err:
        print(f"vcstream client: error: {err}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError) as err:
        where = args.zmq or args.ws or DEFAULT_WS_URL
        print(
            f"vcstream client: error: cannot talk to {where}: {err or 'timed out'}", file=sys.stderr
        )
        return 2
    except KeyboardInterrupt:
        return 130
