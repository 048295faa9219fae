"""The WebSocket edge against the real daemon (real models), on OS-chosen loopback ports."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
from netutil import FIXTURES, TOKEN, daemon_config, running_daemon
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from vcstream.net import protocol as p
from vcstream.net.client import ServerError, WsClient
from vcstream.net.client import main as client_main

TEXT = "The quick brown fox jumps over the lazy dog."
VOICE = "joe-ref"
# Piper (the baseline backend) samples its phoneme durations (VITS noise_w), so two
# renderings of one sentence differ a little in length (here about 2.5% max-min).
DURATION_TOLERANCE = 0.06


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime
    from vcstream.references import embed_references
    from vcstream.voices import VoiceProfile

    cfg = daemon_config(voices_dir)
    rt = build_runtime(cfg)
    # What `vcstream embed tests/fixtures/speech_joe.wav --save joe-ref` stores.
    ref = embed_references(rt.new_embedder(), [FIXTURES / "speech_joe.wav"])
    profile = VoiceProfile(
        VOICE,
        ref.conditioning.embedding,
        ref.voiced_seconds,
        rt.encoder_name,
        log_f0_mean=ref.conditioning.log_f0_mean,
        log_f0_std=ref.conditioning.log_f0_std,
        sources=["speech_joe.wav"],
    )
    rt.voice_store().save(profile)
    return rt


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    web = root / "web"
    (web / "js").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html><title>monitor</title>")
    (web / "js" / "app.js").write_text("export const x = 1;")
    (web / "style.css").write_text("body{}")
    (root / "secret.txt").write_text("do not serve")
    return web


@pytest.fixture(scope="module")
def daemon(runtime, voices_dir, web_dir):
    cfg = daemon_config(voices_dir, token=TOKEN, requests_per_second=4.0)
    with running_daemon(cfg, runtime, web_dir) as d:
        yield d


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def test_speak_over_websocket_and_zmq_matches_say(daemon, voices_dir, tmp_path, capsys):
    ws_wav, zmq_wav, say_wav = tmp_path / "ws.wav", tmp_path / "zmq.wav", tmp_path / "say.wav"
    rc = client_main(
        [
            "speak",
            TEXT,
            "--ws",
            daemon.ws_url,
            "--token",
            TOKEN,
            "--voice",
            VOICE,
            "-o",
            str(ws_wav),
            "--json",
        ]
    )
    assert rc == 0
    ws_out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    rc = client_main(
        [
            "speak",
            TEXT,
            "--zmq",
            daemon.zmq_router_endpoint,
            "--voice",
            VOICE,
            "-o",
            str(zmq_wav),
            "--json",
        ]
    )
    assert rc == 0
    zmq_out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for out in (ws_out, zmq_out):
        assert out["time_to_first_audio_ms"] > 0 and out["error"] is None
        assert out["sample_rate_hz"] == 22050
        # Every sample the daemon generated arrived: nothing lost or added on the way.
        received_ms = 1000 * out["audio_samples"] / out["sample_rate_hz"]
        assert received_ms == pytest.approx(out["daemon_audio_ms"], abs=0.051)

    config = tmp_path / "say.toml"
    config.write_text(f'[device]\ncompute = "cpu"\n[voices]\ndir = "{voices_dir}"\n')
    say = subprocess.run(
        [
            sys.executable,
            "-m",
            "vcstream",
            "say",
            "--config",
            str(config),
            "--voice",
            VOICE,
            "--text",
            TEXT,
            "-o",
            str(say_wav),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert say.returncode == 0, say.stderr[-2000:]
    say_s = json.loads(say.stdout.strip().splitlines()[-1])["audio_seconds"]
    assert say_s == pytest.approx(_wav_seconds(say_wav), abs=1e-3)
    for path, out in ((ws_wav, ws_out), (zmq_wav, zmq_out)):
        got = _wav_seconds(path)
        assert got == pytest.approx(out["audio_seconds"], abs=1e-3)
        assert got == pytest.approx(say_s, rel=DURATION_TOLERANCE), (path.name, got, say_s)


async def _await_error(client: WsClient, code: str, timeout: float = 30.0) -> dict:
    return await client.stream.wait(
        lambda m: m.get("type") == "error" and m.get("code") == code, timeout
    )


async def _bad_inputs(url: str, router: str) -> dict:
    results: dict[str, dict | str] = {}
    observer = await WsClient(url, token=TOKEN).connect()
    arrivals: list[float] = []
    observer.stream.on_audio = lambda h, pcm, now: arrivals.append(now)
    t_start = time.perf_counter()
    try:
        bad = await WsClient(url, token=TOKEN).connect()
        rows = [
            ("malformed JSON", '{"type": "speak", "text": ', p.BAD_JSON),
            ("unknown type", '{"type": "sing", "id": "u1"}', p.UNKNOWN_TYPE),
            ("binary garbage", bytes(range(256)) * 4, p.BAD_MESSAGE),
            ("not an object", "[1, 2]", p.BAD_MESSAGE),
            ("unknown field", '{"type": "speak", "txt": "hi"}', p.BAD_FIELD),
            (
                "unknown phonemes",
                json.dumps({"type": "speak", "id": "ph1", "phonemes": "hɛlˈoʊ ☃ ⌘"}),
                "unknown_phonemes",
            ),
            (
                "unknown voice",
                json.dumps({"type": "speak", "text": "hi", "voice": "nobody"}),
                "unknown_voice",
            ),
            ("text too long", json.dumps({"type": "speak", "text": "a " * 1500}), p.TOO_LONG),
        ]
        for name, data, code in rows:
            waiter = asyncio.ensure_future(_await_error(bad, code))
            await asyncio.sleep(0)
            await bad.send_raw(data)
            results[name] = await waiter
            await asyncio.sleep(0.3)  # stay under the rate limit: this row is not a flood

        # A flood of requests: refused past the burst, then not read for a while.
        waiter = asyncio.ensure_future(_await_error(bad, p.RATE_LIMITED))
        await asyncio.sleep(0)
        for i in range(30):
            await bad.send_raw(json.dumps({"type": "status", "id": f"f{i}"}))
        results["flood"] = await waiter
        await bad.close()

        # A 1 MiB message: the error event, then close code 1009.
        big = await WsClient(url, token=TOKEN).connect()
        waiter = asyncio.ensure_future(_await_error(big, p.TOO_LARGE))
        await asyncio.sleep(0)
        await big.send_raw("x" * (1 << 20))
        results["1 MiB message"] = await waiter
        await asyncio.sleep(0.2)
        results["1 MiB close code"] = str(big.conn.close_code)
        await big.close()

        # Wrong token (header, then first message), and no token at all.
        for name, kwargs in (
            ("wrong token in header", {"token": "wrong"}),
            ("wrong token in message", {"token": "wrong", "auth_in_header": False}),
        ):
            with pytest.raises(ServerError) as info:
                await WsClient(url, **kwargs).connect()
            results[name] = info.value.reply
        async with connect(url, max_size=2**20) as raw:
            hello = json.loads(await raw.recv())
            assert hello["type"] == "hello" and hello["auth_required"] is True
            await raw.send(json.dumps({"type": "speak", "text": "let me in"}))
            results["missing token"] = json.loads(await raw.recv())
            with pytest.raises(ConnectionClosed):
                while True:  # nothing else arrives (no audio, no events) before the close
                    msg = await raw.recv()
                    raise AssertionError(f"unauthenticated client received {msg!r:.80}")
            results["missing token close code"] = str(raw.close_code)

        # A page from another origin.
        with pytest.raises(ServerError) as info:
            await WsClient(url, token=TOKEN, origin="https://evil.example").connect()
        results["foreign origin"] = info.value.reply

        # The observer is still served: it can speak, and its stream never had a gap.
        r = await observer.speak("Still here.")
        results["observer speak"] = {"error": r.error, "seconds": r.audio_seconds}
    finally:
        elapsed = time.perf_counter() - t_start
        await observer.close()
    results["observer"] = {
        "seq_gaps": observer.stream.seq_gaps,
        "dropped": observer.stream.dropped_reports,
        "frames": len(arrivals),
        "elapsed_s": elapsed,
        "max_interval_s": max(b - a for a, b in itertools.pairwise(arrivals)),
    }
    return results


def test_bad_inputs_get_their_errors_and_others_are_served(daemon):
    res = asyncio.run(_bad_inputs(daemon.ws_url, daemon.zmq_router_endpoint))
    codes = {name: r["code"] for name, r in res.items() if isinstance(r, dict) and "code" in r}
    assert codes == {
        "malformed JSON": p.BAD_JSON,
        "unknown type": p.UNKNOWN_TYPE,
        "binary garbage": p.BAD_MESSAGE,
        "not an object": p.BAD_MESSAGE,
        "unknown field": p.BAD_FIELD,
        "unknown phonemes": "unknown_phonemes",
        "unknown voice": "unknown_voice",
        "text too long": p.TOO_LONG,
        "flood": p.RATE_LIMITED,
        "1 MiB message": p.TOO_LARGE,
        "wrong token in header": p.UNAUTHORIZED,
        "wrong token in message": p.UNAUTHORIZED,
        "missing token": p.UNAUTHORIZED,
        "foreign origin": p.FORBIDDEN_ORIGIN,
    }
    assert res["unknown type"]["id"] == "u1" and res["unknown phonemes"]["id"] == "ph1"
    assert "☃" in res["unknown phonemes"]["message"]
    assert res["flood"]["retry_after_ms"] >= 0
    assert res["1 MiB close code"] == "1009"
    assert res["missing token close code"] == "1008"
    assert res["observer speak"]["error"] is None and res["observer speak"]["seconds"] > 0.3
    obs = res["observer"]
    assert obs["seq_gaps"] == 0 and obs["dropped"] == []
    # One frame every 40 ms throughout, give or take scheduling: no stall, no burst.
    assert obs["frames"] == pytest.approx(obs["elapsed_s"] / 0.040, rel=0.1)
    assert obs["max_interval_s"] < 1.0


def _http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """A raw request, so that the path reaches the server exactly as written."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, body


def test_http_serves_web_dir_and_health(daemon):
    port = daemon.ws_port
    status, headers, body = _http_get(port, "/")
    assert status == 200 and body.startswith(b"<!doctype html>")
    assert headers["content-type"] == "text/html; charset=utf-8"
    status, headers, _ = _http_get(port, "/js/app.js")
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    status, headers, _ = _http_get(port, "/style.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert _http_get(port, "/missing.js")[0] == 404
    for path in (
        "/../secret.txt",
        "/js/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
    ):
        status, _, body = _http_get(port, path)
        assert status == 404 and b"do not serve" not in body, path
    status, headers, body = _http_get(port, "/healthz")
    health = json.loads(body)
    assert status == 200 and headers["content-type"] == "application/json"
    assert health["ok"] is True and health["protocol"] == 1 and health["sample_rate_hz"] == 22050
    assert health["last_frame_age_ms"] < 1000


async def _voice_and_status(url: str) -> dict:
    async with WsClient(url, token=TOKEN) as c:

        async def ask(msg: dict) -> dict:
            await asyncio.sleep(0.3)  # within the daemon's 4 requests per second
            return await c.request(msg)

        out = {"hello": c.hello}
        out["list"] = await ask({"type": "list"})
        out["load"] = await ask({"type": "load", "name": VOICE})
        out["freeze"] = await ask({"type": "freeze"})
        out["unfreeze"] = await ask({"type": "unfreeze"})
        out["status"] = await ask({"type": "status"})
        with pytest.raises(ServerError) as info:
            await ask({"type": "load", "name": "nobody"})
        out["load missing"] = info.value.reply
        out["reset"] = await ask({"type": "reset"})
        out["cancel"] = await ask({"type": "cancel", "id": "not-playing"})
        sub = await ask({"type": "subscribe", "audio": False})
        frames = c.stream.frames
        await asyncio.sleep(0.5)
        out["frames after unsubscribe"] = c.stream.frames - frames
        out["subscribe"] = sub
    return out


def test_voice_commands_status_and_subscriptions(daemon):
    out = asyncio.run(_voice_and_status(daemon.ws_url))
    hello = out["hello"]
    assert hello["protocol"] == 1 and hello["audio_header_bytes"] == 64
    assert hello["auth_required"] is False  # the token came in the Authorization header
    assert [v["name"] for v in out["list"]["voices"]] == [VOICE]
    assert out["load"]["voice"]["name"] == VOICE
    assert out["freeze"]["voice"]["frozen"] is True and out["unfreeze"]["voice"]["frozen"] is False
    status = out["status"]["status"]
    assert status["voice"]["loaded_voice"] == VOICE
    ws_clients = status["network"]["websocket"]["clients"]
    assert len(ws_clients) >= 1 and all(c["dropped_audio"] == 0 for c in ws_clients)
    assert status["network"]["zmq"]["pub"].startswith("tcp://127.0.0.1:")
    assert out["load missing"]["code"] == "unknown_voice" and out["load missing"]["to"] == "load"
    assert out["reset"]["voice"]["loaded_voice"] is None
    assert out["cancel"] == {
        "type": "reply",
        "to": "cancel",
        "id": "not-playing",
        "cancelled": False,
    }
    assert out["subscribe"]["audio"] is False and out["frames after unsubscribe"] <= 1


def test_exposed_without_protection_refuses_to_start(runtime, voices_dir):
    from vcstream.errors import InputError

    cfg = daemon_config(voices_dir)
    cfg.network.websocket.host = "0.0.0.0"
    with pytest.raises(InputError, match="token"), running_daemon(cfg, runtime):
        pass
    cfg = daemon_config(voices_dir)
    cfg.network.zmq.pub = "tcp://0.0.0.0:*"
    with pytest.raises(InputError, match="CURVE"), running_daemon(cfg, runtime):
        pass
    cfg = daemon_config(voices_dir, max_message_bytes=1 << 20)
    with pytest.raises(InputError, match="max_message_bytes"), running_daemon(cfg, runtime):
        pass


def test_bootstrap_median_interval_brackets_the_median() -> None:
    from vcstream.bench.network import bootstrap_median_interval

    assert bootstrap_median_interval([4.0] * 9) == (4.0, 4.0)
    values = [float(v) for v in range(-10, 11)]
    lo, hi = bootstrap_median_interval(values)
    assert lo < 0.0 < hi
    wide = bootstrap_median_interval([10.0 * v for v in values])
    assert wide[0] < lo and wide[1] > hi


def test_network_bench_measures_both_transports(runtime) -> None:
    from vcstream.bench.network import measure_network, network_table

    cfg = daemon_config(runtime.cfg.voices.dir)
    net = measure_network(cfg, runtime, repeat=2, text="Hello there.", in_process=True)
    assert len(net["say_ttfa_ms"]) == 2 and all(v > 0 for v in net["say_ttfa_ms"])
    for name in ("websocket", "zmq"):
        r = net[name]
        assert len(r["client_ttfa_ms"]) == 2
        # The client's clock starts before the daemon's (which starts once the text is
        # prepared) and stops after it, so it can never see first audio sooner.
        assert r["client_ttfa_ms_median"] >= r["daemon_first_audio_ms_median"]
        lo, hi = r["added_vs_say_ms_paired_ci90"]
        assert lo <= r["added_vs_say_ms_paired_median"] <= hi
    assert network_table(net).row_count == 2


async def _connection_cap(url: str) -> dict:
    from websockets.exceptions import InvalidStatus

    out: dict = {}
    first, second = WsClient(url), WsClient(url)
    await first.connect()
    await second.connect()
    try:
        with pytest.raises(InvalidStatus) as info:
            await WsClient(url).connect()
        out["refused"] = (info.value.response.status_code, json.loads(info.value.response.body))
        frames = first.stream.frames
        await asyncio.sleep(0.3)
        out["first served meanwhile"] = first.stream.frames - frames
    finally:
        await second.close()

    # The freed place is available again (the count follows closed sockets).
    async def reconnect() -> bool:
        for _ in range(50):
            try:
                async with WsClient(url):
                    return True
            except InvalidStatus:
                await asyncio.sleep(0.1)
        return False

    out["reconnected"] = await reconnect()
    out["again"] = await reconnect()
    await first.close()
    return out


def test_connection_cap_refuses_extra_clients_with_503(runtime, voices_dir):
    cfg = daemon_config(voices_dir, max_clients=2)
    with running_daemon(cfg, runtime) as d:
        out = asyncio.run(_connection_cap(d.ws_url))
        stats = d.service.ws.stats()
    status, body = out["refused"]
    assert status == 503
    assert body["type"] == "error" and body["code"] == p.TOO_MANY_CLIENTS
    assert out["first served meanwhile"] >= 3  # 40 ms frames kept flowing
    assert out["reconnected"] and out["again"]
    assert stats["refused_too_many_clients"] >= 1
