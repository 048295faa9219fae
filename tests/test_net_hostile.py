"""Hostile clients against the real daemon on loopback: each bad input gets its specific
error, and a second client (WebSocket and ZeroMQ) keeps receiving every frame, its events,
metrics and status, without a gap."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import time

import pytest
import zmq
import zmq.asyncio
from netutil import daemon_config, running_daemon

from vcstream.net import protocol as p
from vcstream.net.client import WsClient, ZmqClient

ANSI_TEXT = "\x1b[31mRed\x1b[0m alert,\x07 \x1b]0;pwned\x07all hands."
# (raw JSON text, the error code it must get); raw, so the escapes reach the daemon as sent.
HOSTILE = [
    (r'{"type":"speak","id":"surr","text":"hi \ud800 there"}', p.BAD_TEXT),
    (r'{"type":"speak","id":"s\ud800","text":"hi"}', p.BAD_TEXT),
    (r'{"type":"speak","text":"hi","voice":"v\udfff"}', p.BAD_TEXT),
    (r'{"type":"save","name":"n\ud800"}', p.BAD_TEXT),
    (r'{"type":"speak","text":"non \uffff character"}', p.BAD_TEXT),
    ('{"type":"speak","id":' + "9" * 5000 + ',"text":"x"}', p.BAD_JSON),
    ('{"type":"speak","id":"big","text":"x","extra":1e400}', p.BAD_JSON),
    ('{"type":"status","id":NaN}', p.BAD_JSON),
    (r'{"type":"speak","id":"abc\n","text":"x"}', p.BAD_FIELD),
    (r'{"type":"save","name":"trail\n"}', p.BAD_FIELD),
    (r'{"type":"load","name":"trail\n"}', p.BAD_FIELD),
    (r'{"type":"speak","text":"x","voice":"trail\n"}', p.BAD_FIELD),
]


@pytest.fixture(scope="module")
def daemon(voices_dir):
    from vcstream.app import build_runtime

    cfg = daemon_config(voices_dir, requests_per_second=100.0)
    with running_daemon(cfg, build_runtime(cfg)) as d:
        yield d


class Watch:
    """A well-behaved second client on both transports, recording what reaches it."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.arrivals: list[tuple[int, float]] = []
        self.metrics = 0
        self.history_metrics = 0

    async def __aenter__(self) -> Watch:
        self.ws = await WsClient(self.daemon.ws_url).connect()
        self.ws.stream.on_audio = lambda h, pcm, now: self.arrivals.append((h.seq, now))
        self.ws.stream.on_message = self._on_message
        self.zmq = await ZmqClient(
            self.daemon.zmq_router_endpoint,
            self.daemon.zmq_pub_endpoint,
            topics=(p.TOPIC_AUDIO, p.TOPIC_EVENT, p.TOPIC_STATUS),
        ).connect()
        self.t0 = time.perf_counter()
        return self

    def _on_message(self, msg: dict, now: float) -> None:
        if msg.get("type") == "metrics":
            self.metrics += 1
            self.history_metrics += "history" in msg

    async def check(self) -> None:
        """Still served, with nothing lost, and able to speak."""
        # Long enough to see the history ride in a metrics message (at least once a second).
        await asyncio.sleep(max(0.0, 1.5 - (time.perf_counter() - self.t0)))
        elapsed = time.perf_counter() - self.t0
        assert self.ws.stream.closed is None and self.zmq.stream.closed is None
        for stream in (self.ws.stream, self.zmq.stream):
            assert stream.seq_gaps == 0 and stream.dropped_reports == []
        assert self.zmq.topic_gaps == {}
        seqs = [s for s, _ in self.arrivals]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        times = [t for _, t in self.arrivals]
        assert max(b - a for a, b in itertools.pairwise(times)) < 1.0
        assert self.metrics >= 5 * elapsed  # metrics at ~10 Hz kept coming
        assert self.history_metrics >= 1
        for client in (self.ws, self.zmq):
            status = await client.status()
            assert isinstance(status["history"], list)
        result = await self.ws.speak("Still here.")
        assert result.error is None and result.done is not None

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.zmq.close()


async def _ws_attack(daemon) -> dict:
    out: dict = {}
    async with Watch(daemon) as watch:
        async with WsClient(daemon.ws_url) as attacker:
            for raw, _ in HOSTILE:
                waiter = asyncio.ensure_future(
                    attacker.stream.wait(lambda m: m.get("type") == "error", 10)
                )
                await asyncio.sleep(0)
                await attacker.send_raw(raw)
                out[raw] = await waiter
            events: list[dict] = []
            watch.ws.stream.on_message = lambda m, now: (
                events.append(m) if m.get("id") == "ansi-1" else watch._on_message(m, now)
            )
            result = await attacker.speak(ANSI_TEXT, request_id="ansi-1")
            out["ansi"] = result
            await asyncio.sleep(0.3)
            out["watched_ansi_events"] = events
            watch.ws.stream.on_message = watch._on_message
            assert attacker.stream.closed is None
        await watch.check()
    return out


def test_hostile_websocket_messages_get_their_errors_and_disturb_no_one(daemon, voices_dir):
    out = asyncio.run(_ws_attack(daemon))
    for raw, code in HOSTILE:
        assert out[raw]["code"] == code, (raw[:60], out[raw])
    assert not [f for f in voices_dir.iterdir() if "\n" in f.name]
    ansi = out["ansi"]
    assert ansi.error is None and ansi.done["text"] == "Red alert, all hands."
    seen = out["watched_ansi_events"]
    assert {"accepted", "done"} <= {m["type"] for m in seen}
    for m in seen:
        assert not any(c in json.dumps(m, ensure_ascii=False) for c in "\x1b\x07")


async def _zmq_attack(daemon) -> dict:
    out: dict = {}
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(daemon.zmq_router_endpoint)
    try:
        async with Watch(daemon) as watch:
            raws = [(raw.encode(), code) for raw, code in HOSTILE]
            # UTF-8-style bytes of a surrogate, which json.loads(bytes) would let through
            raws.append((b'{"type":"speak","id":"zb","text":"a\xed\xa0\x80b"}', p.BAD_TEXT))
            for raw, code in raws:
                await dealer.send(raw)
                async with asyncio.timeout(10):  # a reply, always
                    reply = json.loads((await dealer.recv_multipart())[-1])
                out[raw] = (reply, code)
            await watch.check()
    finally:
        dealer.close(0)
        ctx.term()
    return out


def test_hostile_zmq_messages_always_get_a_reply_and_disturb_no_one(daemon):
    out = asyncio.run(_zmq_attack(daemon))
    for raw, (reply, code) in out.items():
        assert reply["type"] == "error" and reply["code"] == code, (raw[:60], reply)


async def _poisoned(daemon) -> dict:
    engine = daemon.engine
    async with Watch(daemon) as watch:
        before = (await watch.ws.status())["network"]["encode_repairs"]
        # What a bug letting a bad string into shared state would leave: a history row
        # that no UTF-8 encoder takes. It must cost that one field, not everyone's stream.
        with engine._lock:
            engine._history.append({"id": "poison", "text": "bad \ud800 text"})
            engine._history_changes += 1
        try:
            await asyncio.sleep(1.5)
            status = await watch.zmq.status()
            rows = [h for h in status["history"] if h["id"] == "poison"]
            repairs = status["network"]["encode_repairs"] - before
            await watch.check()
        finally:
            with engine._lock:
                engine._history = [h for h in engine._history if h["id"] != "poison"]
                engine._history_changes += 1
    return {"rows": rows, "repairs": repairs}


def test_an_unencodable_value_in_shared_state_costs_one_field_not_the_stream(daemon):
    out = asyncio.run(_poisoned(daemon))
    assert out["rows"] == [{"id": "poison", "text": "bad \ufffd text"}]
    assert out["repairs"] >= 2  # metrics and status messages carried it, repaired


def _http(port: int, request: bytes) -> tuple[str, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        data = b""
        with contextlib.suppress(TimeoutError):
            while chunk := s.recv(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return lines[0], headers, body


METHOD_PROBES = [
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "405"),
    (b"POST /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "405"),
    (b"PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "405"),
    (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", "405"),
    (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "405"),
    (b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", "501"),
]


def _http_probes(port: int) -> dict:
    return {
        "get": _http(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "head": _http(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"),
        "head_health": _http(port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        "methods": [(req, status, _http(port, req)) for req, status in METHOD_PROBES],
        "after": _http(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    }


async def _http_attack(daemon) -> dict:
    async with Watch(daemon) as watch:
        out = await asyncio.to_thread(_http_probes, daemon.ws_port)
        await watch.check()
    return out


def test_http_methods_are_answered_as_http_says(daemon):
    out = asyncio.run(_http_attack(daemon))
    get_line, get_headers, get_body = out["get"]
    assert get_line.startswith("HTTP/1.1 200") and len(get_body) > 100
    line, headers, body = out["head"]
    assert line.startswith("HTTP/1.1 200") and body == b""
    assert headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))
    line, _, body = out["head_health"]
    assert line.startswith("HTTP/1.1 200") and body == b""
    for request, status, (line, headers, body) in out["methods"]:
        assert line.split(" ")[1] == status, (request, line)
        assert headers["Allow"] == "GET, HEAD" and b"use GET or HEAD" in body
        assert int(headers["Content-Length"]) == len(body)
    assert out["after"][0].startswith("HTTP/1.1 200")
