"""The ZeroMQ edge against the real daemon: PUB sequence numbers, ROUTER control, CURVE."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
import zmq.auth
from netutil import daemon_config, running_daemon

from vcstream.net import protocol as p
from vcstream.net.client import ConnectionLostError, ZmqClient

TEXT = "Numbers on the wire should never skip. Two sentences make sure of it."


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime

    return build_runtime(daemon_config(voices_dir))


@pytest.fixture(scope="module")
def daemon(runtime, voices_dir):
    with running_daemon(daemon_config(voices_dir, requests_per_second=4.0), runtime) as d:
        yield d


async def _speak_and_watch(router: str, pub: str) -> dict:
    async with ZmqClient(router, pub, topics=(p.TOPIC_AUDIO, p.TOPIC_EVENT, p.TOPIC_STATUS)) as c:
        result = await c.speak(TEXT)
        await asyncio.sleep(0.5)  # some idle frames and metrics after the request, too
        return {
            "result": result,
            "frames": c.stream.frames,
            "seq_gaps": c.stream.seq_gaps,
            "topic_seq": dict(c.topic_seq),
            "topic_gaps": dict(c.topic_gaps),
        }


def test_subscriber_sees_contiguous_sequence_numbers(daemon):
    out = asyncio.run(_speak_and_watch(daemon.zmq_router_endpoint, daemon.zmq_pub_endpoint))
    r = out["result"]
    assert r.error is None and r.done is not None
    assert r.audio_seconds > 1.0 and r.end_of_utterance
    assert r.time_to_first_audio_ms > 0
    assert [e["type"] for e in r.events][:2] == ["accepted", "started"]
    assert out["frames"] > 40
    assert out["seq_gaps"] == 0
    assert out["topic_gaps"] == {}
    assert set(out["topic_seq"]) == {b"event", b"status"}  # events and ~10 Hz metrics arrived


async def _router_bad_inputs(router: str, pub: str) -> dict:
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.connect(router)

    async def ask(payload: bytes, timeout: float = 10.0) -> dict | None:
        await dealer.send(payload)
        try:
            async with asyncio.timeout(timeout):
                return json.loads((await dealer.recv_multipart())[-1])
        except TimeoutError:
            return None

    out: dict = {}
    observer = await ZmqClient(router, pub).connect()
    try:
        out["malformed JSON"] = await ask(b'{"type": "speak", "text": ')
        await asyncio.sleep(0.3)
        out["binary garbage"] = await ask(bytes(range(256)))
        await asyncio.sleep(0.3)
        out["unknown type"] = await ask(b'{"type": "sing", "id": "z9"}')
        await asyncio.sleep(0.3)
        out["unknown phonemes"] = await ask(
            json.dumps({"type": "speak", "id": "zp", "phonemes": "h☃lo"}).encode()
        )
        await asyncio.sleep(0.3)
        out["auth over zmq"] = await ask(b'{"type": "auth", "token": "x"}')
        await asyncio.sleep(1.0)
        for i in range(20):
            await dealer.send(json.dumps({"type": "status", "id": f"s{i}"}).encode())
        replies = []
        async with asyncio.timeout(20):
            while len(replies) < 20:
                replies.append(json.loads((await dealer.recv_multipart())[-1]))
        out["flood"] = [r.get("code", r["type"]) for r in replies]
        # Over the size limit: libzmq drops the peer, there is no reply ...
        out["1 MiB message"] = await ask(b"x" * (1 << 20), timeout=2.0)
        # ... and everyone else carries on.
        r = await observer.speak("Still fine.")
        out["observer speak"] = r
        out["observer gaps"] = observer.stream.seq_gaps
    finally:
        await observer.close()
        dealer.close(linger=0)
        ctx.term()
    return out


def test_router_bad_inputs_get_their_errors(daemon):
    out = asyncio.run(_router_bad_inputs(daemon.zmq_router_endpoint, daemon.zmq_pub_endpoint))
    assert out["malformed JSON"]["code"] == p.BAD_JSON
    assert out["binary garbage"]["code"] == p.BAD_JSON
    assert out["unknown type"]["code"] == p.UNKNOWN_TYPE and out["unknown type"]["id"] == "z9"
    assert out["unknown phonemes"]["code"] == "unknown_phonemes"
    assert out["unknown phonemes"]["id"] == "zp"
    assert out["auth over zmq"]["code"] == p.UNKNOWN_TYPE
    assert out["flood"].count("reply") >= 4 and p.RATE_LIMITED in out["flood"]
    assert out["1 MiB message"] is None
    assert out["observer speak"].error is None and out["observer speak"].audio_seconds > 0.3
    assert out["observer gaps"] == 0


@pytest.fixture(scope="module")
def curve(tmp_path_factory, runtime, voices_dir):
    keys = tmp_path_factory.mktemp("curve")
    allowed, other = keys / "allowed", keys / "other"
    allowed.mkdir()
    other.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    good_public, good_secret = zmq.auth.create_certificates(keys, "good")
    _, rogue_secret = zmq.auth.create_certificates(other, "rogue")
    Path(good_public).rename(allowed / "good.key")
    cfg = daemon_config(voices_dir)
    cfg.network.zmq.curve_server_secret = server_secret
    cfg.network.zmq.curve_allowed_clients = str(allowed)
    with running_daemon(cfg, runtime) as d:
        yield {
            "daemon": d,
            "server_public": zmq.auth.load_certificate(server_secret)[0],
            "good": zmq.auth.load_certificate(good_secret),
            "rogue": zmq.auth.load_certificate(rogue_secret),
        }


async def _listen(pub: str, server_public: bytes | None, keys, seconds: float) -> int:
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    if server_public is not None:
        sub.curve_serverkey = server_public
        sub.curve_publickey, sub.curve_secretkey = keys
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(pub)
    received = 0
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            if await sub.poll(left * 1000):
                await sub.recv_multipart()
                received += 1
    finally:
        sub.close(linger=0)
        ctx.term()
    return received


def test_curve_allow_list(curve):
    d = curve["daemon"]
    pub, router, server_public = d.zmq_pub_endpoint, d.zmq_router_endpoint, curve["server_public"]

    async def run() -> dict:
        good, rogue, plain = await asyncio.gather(
            _listen(pub, server_public, curve["good"], 2.0),
            _listen(pub, server_public, curve["rogue"], 2.0),
            _listen(pub, None, None, 2.0),
        )
        allowed = ZmqClient(router, pub, server_public_key=server_public, client_keys=curve["good"])
        await allowed.connect()
        try:
            status = await allowed.status()
        finally:
            await allowed.close()
        refused = ZmqClient(
            router, pub, server_public_key=server_public, client_keys=curve["rogue"]
        )
        try:
            await refused.connect(timeout=2.0)
            refused_error = None
        except ConnectionLostError as err:
            refused_error = str(err)
        finally:
            await refused.close()
        return {
            "good": good,
            "rogue": rogue,
            "plain": plain,
            "status": status,
            "refused": refused_error,
        }

    out = asyncio.run(run())
    assert out["good"] > 20  # about 25 frames a second, plus events
    assert out["rogue"] == 0
    assert out["plain"] == 0
    assert out["status"]["network"]["zmq"]["curve"] is True
    assert out["refused"] is not None
