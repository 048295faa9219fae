"""The live voice adapting in the real daemon (real models, the adaptation process, real
WebSocket and ZeroMQ clients): the `adapt` command's errors, the frame cadence while it
runs, the adapted voice in status, saved, and spoken after a daemon restart."""

from __future__ import annotations

import asyncio
import itertools
import warnings

import pytest
from netutil import FIXTURES, daemon_config, running_daemon

from vcstream.net.client import ServerError, WsClient, ZmqClient

# Frame cadence and response-time bounds: run alone, not beside other tests (make test).
pytestmark = pytest.mark.realtime

LINE = "The adaptation runs in its own process at a lower priority."
MIN_SECONDS = 4.0  # wide enough a window (real-time capture) to catch "too little voice"


def _config(voices_dir):
    cfg = daemon_config(voices_dir)
    cfg.capture.source = "file"
    cfg.capture.file = str(FIXTURES / "speech_slt.wav")  # 8.9 s, heard once
    cfg.capture.loop = False
    cfg.adapt.min_seconds = MIN_SECONDS
    cfg.adapt.steps = 6  # a few steps: the test is about the daemon, not the voice
    cfg.adapt.measure = False
    return cfg


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime

    return build_runtime(_config(voices_dir))


def _gaps(stamps: list[int]) -> list[int]:
    """Time between consecutive frames, by the daemon's own publish timestamps."""
    return [b - a for a, b in itertools.pairwise(stamps)]


async def _until(predicate, timeout: float, what: str) -> None:
    """Poll without blocking the event loop (the clients keep reading meanwhile)."""
    for _ in range(int(timeout / 0.1)):
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no {what} within {timeout} s")


async def _code(client, msg) -> str:
    with pytest.raises(ServerError) as err:
        await client.request(msg)
    return err.value.code


def test_live_voice_adapts_in_the_background_and_survives_a_restart(runtime, voices_dir):
    cfg = _config(voices_dir)
    frame_ns = cfg.output.frame_ms * 1_000_000

    async def session(d) -> dict:
        async with WsClient(d.ws_url) as ws:
            zmq = await ZmqClient(d.zmq_router_endpoint, d.zmq_pub_endpoint).connect()
            try:
                # Nothing voiced yet (the capture's first 0.3 s are silence).
                assert await _code(zmq, {"type": "adapt"}) in ("no_voice", "too_little_voice")

                def voiced() -> float:
                    return d.engine.adapter.state()["voice_seconds"]

                await _until(lambda: voiced() > 0.5, 30, "voice")
                if voiced() < MIN_SECONDS:
                    err = await _code(ws, {"type": "adapt"})
                    assert err == "too_little_voice"
                events: list[dict] = []
                stamps: list[int] = []
                ws.stream.on_message = lambda m, _now: events.append(m)
                ws.stream.on_audio = lambda h, _pcm, _now: stamps.append(h.timestamp_ns)
                # The cadence without adaptation, in this run, on this machine: the baseline.
                await ws.speak(LINE)
                await asyncio.sleep(1.0)
                baseline = _gaps(stamps)
                stamps.clear()
                await _until(lambda: voiced() >= MIN_SECONDS + 1, 60, "voice enough")
                reply = await ws.request({"type": "adapt"})
                assert reply["adapt"]["state"] == "adapting"
                assert await _code(zmq, {"type": "adapt"}) == "already_adapting"
                # Listeners keep their cadence while the adaptation process works.
                speaking = asyncio.ensure_future(ws.speak(LINE))
                for _ in range(1800):  # 15 min at most: a shared machine is slow
                    if any(e.get("type") in ("adapted", "adapt_error") for e in events):
                        break
                    await asyncio.sleep(0.5)
                await speaking
                done = [e for e in events if e.get("type") in ("adapted", "adapt_error")]
                assert done and done[0]["type"] == "adapted", done
                stages = {e.get("stage") for e in events if e.get("type") == "adapt_progress"}
                assert {"queued", "tune"} <= stages
                gaps = _gaps(stamps)
                assert len(gaps) > 100
                # No frame lost: as many frames as the time they span (within 10 %) ...
                span = stamps[-1] - stamps[0]
                assert len(gaps) == pytest.approx(span / frame_ns, rel=0.1)
                # ... 99 % of gaps within two frame periods, and no gap longer than the
                # page's jitter buffer (100 ms) plus two periods, which a listener rides out.
                # A single hiccup of 118 ms was seen in a full-suite run on the 2 shared cores
                # while the worker process started, so the bound on the maximum is not 2 periods.
                # That is only decidable where the machine itself keeps the cadence: on one busy
                # with other work (the baseline, without adaptation, already has longer gaps)
                # the count above is what is checked, and the gaps are reported.
                if max(baseline) <= 2 * frame_ns:
                    p99 = sorted(gaps)[int(0.99 * (len(gaps) - 1))]
                    assert p99 <= 2 * frame_ns, f"99th-percentile gap {p99 / 1e6:.0f} ms"
                    limit = 100_000_000 + 2 * frame_ns
                    assert max(gaps) <= limit, f"a {max(gaps) / 1e6:.0f} ms gap"
                else:
                    warnings.warn(
                        f"busy machine: longest gap {max(baseline) / 1e6:.0f} ms without "
                        f"adaptation, {max(gaps) / 1e6:.0f} ms while adapting",
                        stacklevel=1,
                    )
                status = await ws.status()
                adapt = status["adapt"]
                assert adapt["state"] == "adapted" and adapt["adapted"]["steps"] >= 0
                assert adapt["adapted"]["seconds"] >= MIN_SECONDS - 1
                spoken = await ws.speak("Now in the adapted voice.")
                assert spoken.error is None and spoken.chunks
                saved = (await ws.request({"type": "save", "name": "live-adapted"}))["voice"]
                assert saved["adapted"]["checkpoint"] == runtime.synthesizer.checkpoint_id
                return adapt
            finally:
                await zmq.close()

    with running_daemon(cfg, runtime) as d:
        adapted = asyncio.run(session(d))

    cfg2 = daemon_config(voices_dir)  # a restarted daemon, no capture
    cfg2.embedder.initial_voice = "live-adapted"

    async def after_restart(d) -> None:
        async with WsClient(d.ws_url) as ws:
            status = await ws.status()
            assert status["voice"]["loaded_voice"] == "live-adapted"
            spoken = await ws.speak("Still the adapted voice after a restart.")
            assert spoken.error is None and spoken.chunks
            # the adapt command refuses while a saved voice is loaded
            assert await _code(ws, {"type": "adapt"}) == "bad_input"

    with running_daemon(cfg2, runtime) as d:
        asyncio.run(after_restart(d))
    profile = runtime.voice_store().load("live-adapted")
    assert profile.adapted is not None and profile.adapted.plan == adapted["adapted"]["plan"]
