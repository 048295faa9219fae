"""The monitor page (web/), end to end in headless Chromium against the real daemon.

The daemon runs with all its real models, its capture fed from a looped WAV (a performer
talking); Chromium loads the page the daemon serves, and the test works it like a user:
real clicks and typing. It checks what arrived at the daemon (its own events and state)
and what the page's audio worklet counted. A screenshot goes to artifacts/web.png.
"""

from __future__ import annotations

import json
import time

import pytest
from chromium_cdp import Chromium, chromium_binary
from netutil import ROOT, wait_until
from pageutil import (
    STATS,
    embedding_after,
    history_row,
    js_to_fixed0,
    page_config,
    page_stats,
    played_samples_js,
    wait_history_entry,
)

from vcstream.testing import RecordingPublisher

pytestmark = pytest.mark.slow

if chromium_binary() is None:
    pytest.skip(
        "chromium is not installed: apt-get install chromium chromium-driver "
        "(`make test` installs them when run as root)",
        allow_module_level=True,
    )

SENTENCE = "Good evening, and welcome to the installation. Please speak into the microphone."
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1440, height=900) as b:
        yield b


def _wait(predicate, timeout: float = 30.0, what: str = "condition"):
    return wait_until(predicate, timeout, what)


def test_page_units_in_browser(browser, page_runtime, voices_dir):
    """The jitter buffer's policy and the FFT, run by the browser from the served files."""
    from vcstream.daemon import start_daemon

    d = start_daemon(page_config(voices_dir), page_runtime)
    try:
        browser.navigate(f"http://127.0.0.1:{d.ws_port}/")
        out = browser.evaluate(
            """(async () => {
              const { JitterBuffer } = await import('/jitter.js');
              const { FFT } = await import('/spectrogram.js');
              const jb = new JitterBuffer(1000, { prebuffer: 100, maxBuffered: 400 });
              const block = new Float32Array(64);
              const res = {};
              res.silentBeforePrebuffer = jb.pull(block);           // 0: still priming
              jb.push(new Float32Array(80).fill(0.5), true, 'a');
              res.stillPriming = jb.pull(block);                    // 0: 80 < 100
              jb.push(new Float32Array(80).fill(0.25), false, '');
              res.first = jb.pull(block);                           // 64
              res.firstValue = block[0];
              res.second = jb.pull(block);                          // 64
              res.third = jb.pull(block);                           // 32 then underrun
              res.afterUnderrun = Array.from(block.slice(30, 34));
              jb.push(new Float32Array(300), false, '');
              jb.push(new Float32Array(200), false, '');            // 500 > 400: drop to 100
              res.bufferedAfterOverflow = jb.buffered;
              res.counters = jb.counters;
              res.playedA = jb.playedByRequest.get('a');
              const n = 512, fft = new FFT(n);
              const re = new Float64Array(n), im = new Float64Array(n);
              for (let i = 0; i < n; i++) re[i] = Math.sin(2 * Math.PI * 37 * i / n);
              fft.transform(re, im);
              const mags = Array.from(re, (r, i) => Math.hypot(r, im[i]));
              res.peakBin = mags.slice(0, n / 2).indexOf(Math.max(...mags.slice(0, n / 2)));
              res.peakMag = mags[37];
              // The player reports what it played (the spectrogram's feed): exactly the
              // pushed samples, after the jitter buffer, through the worklet and through the
              // ScriptProcessorNode fallback alike.
              const { Player } = await import('/audio.js');
              const playedBack = async (p, id) => {
                let signal = 0;
                p.addEventListener('played', (e) => {
                  for (const v of e.detail.pcm) if (Math.abs(v - 1000 / 32768) < 1e-6) signal++;
                });
                await p.open(22050);
                for (let i = 0; i < 10; i++) p.push(new Int16Array(882).fill(1000), true, id);
                const t0 = performance.now();
                const counted = () => (p.stats ? p.stats.playedByRequest[id] || 0 : 0);
                while ((signal < 8820 || counted() < 8820) && performance.now() - t0 < 5000) {
                  await new Promise(r => setTimeout(r, 50));
                }
                return signal;
              };
              const w = new Player();
              res.workletReported = await playedBack(w, 'w');
              res.workletMode = w.mode;
              await w.close();
              // Where AudioWorklet is missing (not a secure context) the player falls back
              // to a ScriptProcessorNode around the same jitter buffer.
              Object.defineProperty(BaseAudioContext.prototype, 'audioWorklet',
                                    { get: () => undefined, configurable: true });
              const p = new Player();
              res.fallbackReported = await playedBack(p, 'fb');
              res.fallbackMode = p.mode;
              res.fallbackPlayed = p.stats ? p.stats.playedByRequest.fb || 0 : 0;
              await p.close();
              return JSON.stringify(res);
            })()"""
        )
    finally:
        d.stop()
    r = json.loads(out)
    assert r["silentBeforePrebuffer"] == 0 and r["stillPriming"] == 0
    assert (r["first"], r["second"], r["third"]) == (64, 64, 32)
    assert r["firstValue"] == 0.5
    assert r["afterUnderrun"] == [0.25, 0.25, 0, 0]
    assert r["bufferedAfterOverflow"] == 100
    c = r["counters"]
    assert c["underruns"] == 1
    assert c["framesPlayed"] == 2 and c["voicedFramesPlayed"] == 1
    assert c["voicedSamplesPlayed"] == 80 and r["playedA"] == 80
    assert c["samplesDropped"] == 400 and c["framesDropped"] == 1
    assert r["peakBin"] == 37
    assert abs(r["peakMag"] - 256) < 1e-6  # n/2 for a unit sine
    assert r["fallbackMode"] == "scriptprocessor"
    assert r["fallbackPlayed"] == 8820
    assert r["workletMode"] == "worklet"
    assert r["workletReported"] == 8820 and r["fallbackReported"] == 8820


def test_monitor_page_against_real_daemon(browser, page_runtime, voices_dir):
    from vcstream.daemon import start_daemon

    d = start_daemon(page_config(voices_dir), page_runtime)
    rec = RecordingPublisher(d.engine.hub)
    try:
        b = browser
        b.events.clear()
        b.navigate(f"http://127.0.0.1:{d.ws_port}/")
        b.wait_for(f"{STATS}.connection === 'connected' && {STATS}.audio.ready")
        stats = page_stats(b)
        assert stats["hello"]["sample_rate_hz"] == d.engine.sample_rate_hz
        assert stats["audio"]["mode"] == "worklet"
        # The steady stream (silence fill while idle) reaches the worklet and is played.
        b.wait_for(f"{STATS}.audio.framesPlayed > 10")

        # ---- voice controls, checked at the daemon --------------------------------------
        _wait(lambda: d.engine.voice_state()["n_partials"] >= 2, what="a live voice estimate")
        b.click("#freeze")
        _wait(lambda: d.engine.voice_state()["frozen"], 10, "frozen at the daemon")
        b.wait_for("document.getElementById('voice-state').textContent === 'frozen'", 10)
        b.click("#freeze")  # now labelled Unfreeze
        _wait(lambda: not d.engine.voice_state()["frozen"], 10, "unfrozen at the daemon")

        b.type_text("#voice-name", "web-voice")
        b.click("#save")
        _wait(lambda: (voices_dir / "web-voice.json").exists() or any(
            v.get("name") == "web-voice" for v in d.engine.voice_list()
        ), 10, "the saved voice")  # fmt: skip
        b.wait_for(f"({STATS}.voices || []).includes('web-voice')", 10)
        b.evaluate("document.getElementById('voice-list').value = 'web-voice'")
        b.click("#load")
        _wait(lambda: d.engine.voice_state()["loaded_voice"] == "web-voice", 10, "loaded voice")
        b.wait_for("document.getElementById('voice-state').textContent === 'loaded: web-voice'", 10)

        t_reset = time.monotonic_ns()
        b.click("#reset")
        reset = _wait(
            lambda: embedding_after(rec, t_reset, n_partials=0, loaded_voice=None),
            10,
            "the reset to reach the daemon",
        )
        assert reset.data["has_embedding"] is False
        assert reset.data["speaking_in"] == "default"  # nothing heard: the default voice
        b.wait_for(f"{STATS}.messages.includes('voice reset')", 10)

        # ---- speak a typed sentence -----------------------------------------------------
        b.type_text("#speak-text", SENTENCE)
        b.click("#speak")
        find = f"{STATS}.history.find(e => e.text === {json.dumps(SENTENCE)}"
        # The screenshot is taken while the sentence plays.
        b.wait_for(f"{find} && e.state === 'playing') && {STATS}.audio.speaking", 60)
        time.sleep(0.8)
        shot = b.screenshot(ARTIFACTS / "web.png")
        assert shot.stat().st_size > 20_000
        entry = wait_history_entry(b, SENTENCE, "done", 60)
        rid = entry["id"]
        done = rec.wait_for("done", rid, timeout=10)
        assert not done.data.get("cancelled")
        assert entry["ttfaMs"] == done.data["first_audio_ms"]
        assert entry["audioMs"] == done.data["audio_ms"]
        # the spectrogram is fed what the worklet played
        assert page_stats(b)["spectrogramSamples"] > done.data["audio_ms"] / 1000 * 22050
        hist = {h["id"]: h for h in d.engine.status()["history"]}
        assert hist[rid]["text"] == SENTENCE

        # The history table shows it, with its time to first audio.
        shown = history_row(b, rid)
        assert shown == {
            "state": "done",
            "text": SENTENCE,
            "rid": f"{rid} (this page)",
            "ttfa": f"{js_to_fixed0(done.data['first_audio_ms'])} ms",
        }

        # The request's samples reached the worklet and were played. The jitter buffer
        # drops audio only when this browser's audio thread is starved for CPU (it then
        # keeps latency bounded), so most, not all, is required; `played <= samples`
        # checks the per-request accounting.
        samples = sum(len(f.pcm) for f in rec.frames if f.request_id == rid and not f.silence)
        assert samples > 0.5 * d.engine.sample_rate_hz  # a real sentence, not a blip
        played_js = played_samples_js(rid)
        b.wait_for(f"{played_js} >= {samples // 2}", 20)
        time.sleep(1.0)  # the jitter buffer holds at most 400 ms
        assert samples // 2 <= b.evaluate(played_js) <= samples
        stats = page_stats(b)
        assert stats["audio"]["voicedFramesPlayed"] > 0
        voiced = sum(1 for f in rec.frames if f.request_id == rid and not f.silence)
        b.wait_for(f"{STATS}.voicedFramesReceived >= {voiced}", 10)  # a busy browser lags
        assert b.page_errors() == []
    finally:
        d.stop()


def test_page_reconnects_after_daemon_restart(browser, page_runtime, voices_dir):
    from vcstream.daemon import start_daemon

    d = start_daemon(page_config(voices_dir), page_runtime)
    port = d.ws_port
    try:
        browser.navigate(f"http://127.0.0.1:{port}/")
        browser.wait_for(f"{STATS}.connection === 'connected'")
        connects = browser.evaluate(f"{STATS}.connects")
    finally:
        d.stop()
    browser.wait_for(f"{STATS}.connection === 'reconnecting'", 10)
    assert browser.evaluate("document.getElementById('conn').textContent").startswith(
        "reconnecting"
    )
    d = start_daemon(page_config(voices_dir, port=port), page_runtime)
    try:
        browser.wait_for(f"{STATS}.connection === 'connected' && {STATS}.connects > {connects}", 20)
        before = browser.evaluate(f"{STATS}.audio.framesPlayed")
        browser.wait_for(f"{STATS}.audio.framesPlayed > {before + 10}", 10)
    finally:
        d.stop()
