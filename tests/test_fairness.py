"""Fair scheduling through the real daemon: a flooding client cannot hold up another
client's next line (WebSocket and ZeroMQ), cancel-own semantics, and what only the
operator may do. Time to first audio is compared with a no-flood run in the same test,
as a ratio with a generous bound (the machine is shared and noisy)."""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics

import pytest
import zmq
import zmq.asyncio
from netutil import daemon_config, running_daemon

from vcstream.net.client import ServerError, WsClient, ZmqClient
from vcstream.testing import RecordingPublisher

# Frame cadence and response-time bounds: run alone, not beside other tests (make test).
pytestmark = pytest.mark.realtime

RATE = 5.0  # requests per second per client (the default)
FLOOD_TEXT = "A flooding line."
B_TEXT = "Yes."
OP_TOKEN = "operator-token-7Qx"
OP_ZMQ = "op-dealer"
BACKLOG = 8  # the flooder's own queue: with one FIFO, B would wait for all of it
ROUNDS = 2


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime

    return build_runtime(daemon_config(voices_dir))


@pytest.fixture(scope="module")
def daemon(runtime, voices_dir):
    cfg = daemon_config(voices_dir, requests_per_second=RATE)
    cfg.engine.client_queue = BACKLOG
    cfg.engine.request_queue = 16
    cfg.control.operator_tokens = [OP_TOKEN]
    cfg.control.operator_zmq_identities = [OP_ZMQ]
    cfg.control.operator_only = ["cancel_all", "voice"]
    with running_daemon(cfg, runtime) as d:
        yield d


def _ws(daemon, **kw) -> WsClient:
    return WsClient(f"ws://127.0.0.1:{daemon.ws_port}/", **kw)


def _zmq(daemon) -> ZmqClient:
    return ZmqClient(daemon.zmq_router_endpoint, daemon.zmq_pub_endpoint)


async def _flood(client, stop: asyncio.Event, codes: dict[str, int]) -> None:
    """Speak requests as fast as the rate limit allows, whatever the replies say."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await client.request({"type": "speak", "id": f"flood{n}", "text": FLOOD_TEXT})
            codes["accepted"] = codes.get("accepted", 0) + 1
        except ServerError as err:
            codes[err.code] = codes.get(err.code, 0) + 1
        await asyncio.sleep(1.0 / RATE)


async def _ttfa(client, rid: str) -> float:
    r = await client.speak(B_TEXT, request_id=rid, timeout=60)
    assert r.error is None and r.done is not None, r.error
    return r.time_to_first_audio_ms


def _line_service_ms(rec: RecordingPublisher) -> float:
    """How long the daemon takes per flood line, here and now: the median time between
    consecutive flood lines ending (their audio, or their synthesis when that is slower)."""
    ends = sorted(
        e.timestamp_ns
        for e in list(rec.events)
        if e.type == "done" and e.request_id.startswith("flood") and not e.data.get("cancelled")
    )
    gaps = [(b - a) / 1e6 for a, b in itertools.pairwise(ends)]
    assert gaps, "no two flood lines finished during the measurement"
    return statistics.median(gaps)


async def _measure(daemon, make_b, make_a, tag: str) -> dict:
    rec = RecordingPublisher()
    token = daemon.engine.hub.subscribe("fairness-test", rec.offer)
    try:
        return await _measure_with(rec, make_b, make_a, tag)
    finally:
        daemon.engine.hub.unsubscribe(token)


async def _measure_with(rec, make_b, make_a, tag: str) -> dict:
    async with make_b() as b:
        await _ttfa(b, f"{tag}-warm")
        alone = [await _ttfa(b, f"{tag}-alone{i}") for i in range(ROUNDS)]
        async with make_a() as a:
            stop, codes = asyncio.Event(), {}
            flood = asyncio.get_running_loop().create_task(_flood(a, stop, codes))
            # until the flooder's own queue is full: its backlog is in place
            while not codes.get("client_queue_full"):
                await asyncio.sleep(0.05)
            depths = (await b.status())["queues"]["clients"]
            flooded = [await _ttfa(b, f"{tag}-flood{i}") for i in range(ROUNDS)]
            line_ms = _line_service_ms(rec)
            stop.set()
            await flood
            await a.request({"type": "cancel"})  # its own backlog (no id: own requests)
    return {
        "alone_ms": statistics.median(alone),
        "flood_ms": statistics.median(flooded),
        "line_ms": line_ms,
        "codes": codes,
        "depths": depths,
    }


def _check(out: dict, lookahead_ms: float, transport: str) -> None:
    alone, flood, line = out["alone_ms"], out["flood_ms"], out["line_ms"]
    bound = 2.5 * alone + line + lookahead_ms
    print(
        f"\n{transport}: B's time to first audio alone {alone:.0f} ms, during the flood "
        f"{flood:.0f} ms (x{flood / alone:.2f}); one flood line takes {line:.0f} ms; bound "
        f"2.5 x alone + line + lookahead = {bound:.0f} ms; flood/bound = {flood / bound:.2f}; "
        f"a FIFO would have queued B behind {BACKLOG} lines (~{BACKLOG * line:.0f} ms); "
        f"flooder's replies {out['codes']}"
    )
    assert out["codes"].get("client_queue_full", 0) >= 1
    assert not out["codes"].get("queue_full")  # its own limit, not the shared one
    labels = {d["client"]: d["queued"] for d in out["depths"]}
    assert max(labels.values()) >= BACKLOG - 1, labels
    assert all(re.fullmatch(r"(ws|zmq)#\d+", label) for label in labels), labels
    assert flood <= bound, f"B waited {flood:.0f} ms behind the flood (bound {bound:.0f} ms)"


def test_a_flood_over_websocket_holds_up_another_client_by_one_line_at_most(daemon):
    out = asyncio.run(_measure(daemon, lambda: _ws(daemon), lambda: _ws(daemon), "ws"))
    _check(out, 1000 * daemon.engine.cfg.engine.lookahead_seconds, "WebSocket")


def test_a_flood_over_zmq_holds_up_another_client_by_one_line_at_most(daemon):
    out = asyncio.run(_measure(daemon, lambda: _zmq(daemon), lambda: _zmq(daemon), "zmq"))
    _check(out, 1000 * daemon.engine.cfg.engine.lookahead_seconds, "ZeroMQ")


async def _dealer(endpoint: str, identity: bytes | None = None):
    ctx = zmq.asyncio.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if identity is not None:
        s.setsockopt(zmq.ROUTING_ID, identity)
    s.connect(endpoint)
    return s


async def _ask(sock, msg: dict) -> dict:
    import json

    await sock.send(json.dumps(msg).encode())
    async with asyncio.timeout(30):
        return json.loads((await sock.recv_multipart())[-1])


def test_cancel_own_forbidden_and_the_operator(daemon):
    rec = RecordingPublisher()
    token = daemon.engine.hub.subscribe("fairness-test", rec.offer)

    async def run() -> dict:
        out = {}
        async with _ws(daemon) as plain, _ws(daemon) as other, _ws(daemon, token=OP_TOKEN) as op:
            # a plain client: voice commands and cancelling everyone's are the operator's
            for msg in ({"type": "reset"}, {"type": "cancel", "all": True}):
                with pytest.raises(ServerError) as err:
                    await plain.request(msg)
                out[msg["type"]] = err.value.code
            await other.request({"type": "speak", "id": "other1", "text": FLOOD_TEXT * 4})
            with pytest.raises(ServerError) as err:
                await plain.request({"type": "cancel", "id": "other1"})
            out["cancel_others"] = err.value.code
            out["cancel_own"] = (await plain.request({"type": "cancel"}))["cancelled"]
            # an identity field in a message is not how anyone becomes the operator
            with pytest.raises(ServerError) as err:
                await plain.request({"type": "reset", "client": "operator"})
            out["spoofed"] = err.value.code
            # the operator: an interrupt cuts what plays (another client's line) and goes
            # before what is queued, which stays queued
            await asyncio.to_thread(rec.wait_for, "first_audio", "other1", 60)
            await other.request({"type": "speak", "id": "other2", "text": B_TEXT})
            r = await op.speak(B_TEXT, request_id="op1", mode="interrupt", timeout=60)
            out["op_done"] = r.done is not None
            r2 = await other.speak(B_TEXT, request_id="other3", timeout=60)  # after other2
            assert r2.done is not None
            out["order"] = [e["id"] for e in (await op.status())["history"]][-4:]
            out["cancelled"] = {
                e["id"]: bool(e.get("cancelled")) for e in (await op.status())["history"]
            }
            out["op_status_label"] = (await op.status())["network"]["websocket"]["clients"]
            out["op_reset"] = (await op.request({"type": "reset"}))["to"]
            out["op_cancel_all"] = (await op.request({"type": "cancel", "all": True}))["to"]
            # over ZeroMQ: the peer whose routing id is marked as operator, and one that is not
            op_dealer = await _dealer(daemon.zmq_router_endpoint, OP_ZMQ.encode())
            plain_dealer = await _dealer(daemon.zmq_router_endpoint)
            try:
                out["zmq_plain_reset"] = (await _ask(plain_dealer, {"type": "reset"})).get("code")
                out["zmq_op_reset"] = (await _ask(op_dealer, {"type": "reset"})).get("to")
            finally:
                op_dealer.close()
                plain_dealer.close()
        return out

    try:
        out = asyncio.run(run())
    finally:
        daemon.engine.hub.unsubscribe(token)
    assert out["reset"] == out["cancel"] == out["cancel_others"] == "forbidden"
    assert out["cancel_own"] is False  # it had nothing of its own; other1 plays on
    assert out["spoofed"] == "bad_field"
    assert out["op_done"]
    assert out["order"] == ["other1", "op1", "other2", "other3"], out["order"]
    assert out["cancelled"]["other1"] and not out["cancelled"]["other2"]
    assert {c["client"] for c in out["op_status_label"]} >= {"operator"}
    assert out["op_reset"] == "reset" and out["op_cancel_all"] == "cancel"
    assert out["zmq_plain_reset"] == "forbidden" and out["zmq_op_reset"] == "reset"
