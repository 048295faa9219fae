"""The monitor page (web/), end to end in headless Firefox against the real daemon.

The Chromium suite (test_web.py) covers the page in depth; this one makes sure the same
user path works in Firefox, driven over WebDriver BiDi with real clicks and key presses:
audio frames reach the page's AudioWorklet and are played, a typed sentence is spoken and
shows in the request history with the daemon's own time to first audio, the voice reset
and the Escape key reach the daemon, and the page logs no errors. A screenshot goes to
artifacts/web_firefox.png.
"""

from __future__ import annotations

import json
import time

import pytest
from firefox_bidi import Firefox, firefox_binary
from netutil import ROOT, running_daemon, wait_until
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

if firefox_binary() is None:
    pytest.skip(
        "firefox is not installed: apt-get install firefox-esr "
        "(`make test` installs it when run as root)",
        allow_module_level=True,
    )

SENTENCE = "Good morning. The lights will dim in five minutes, so please take your seats."
SHOT = ROOT / "artifacts" / "web_firefox.png"


@pytest.fixture(scope="module")
def browser():
    with Firefox(width=1440, height=900) as b:
        yield b


@pytest.fixture
def daemon(page_runtime, voices_dir):
    with running_daemon(page_config(voices_dir), page_runtime) as d:
        yield d


def test_monitor_page_in_firefox(browser, daemon):
    b, d = browser, daemon
    rec = RecordingPublisher(d.engine.hub)
    b.events.clear()
    b.navigate(f"http://127.0.0.1:{d.ws_port}/")
    b.wait_for(f"{STATS}.connection === 'connected' && {STATS}.audio.ready")
    stats = page_stats(b)
    assert stats["hello"]["sample_rate_hz"] == d.engine.sample_rate_hz
    assert stats["audio"]["mode"] == "worklet", stats["audio"]
    # The steady stream (silence fill while idle) reaches the worklet and is played.
    b.wait_for(f"{STATS}.audio.framesPlayed > 10")

    # ---- speak a typed sentence, like a user ----------------------------------------------
    wait_until(lambda: d.engine.voice_state()["n_partials"] >= 2, 30, "a live voice estimate")
    b.type_text("#speak-text", SENTENCE)
    assert b.evaluate("document.getElementById('speak-text').value") == SENTENCE
    b.click("#speak")
    b.wait_for(
        f"{STATS}.history.some(e => e.text === {json.dumps(SENTENCE)} && e.state === 'playing')"
        f" && {STATS}.audio.speaking",
        60,
    )
    time.sleep(0.5)  # a little of the sentence on the spectrogram
    assert b.screenshot(SHOT).stat().st_size > 20_000
    entry = wait_history_entry(b, SENTENCE, "done", 60)
    rid = entry["id"]
    done = rec.wait_for("done", rid, timeout=10)
    assert not done.data.get("cancelled")
    assert entry["ttfaMs"] == done.data["first_audio_ms"]
    assert entry["audioMs"] == done.data["audio_ms"]
    assert {h["id"]: h for h in d.engine.status()["history"]}[rid]["text"] == SENTENCE
    assert history_row(b, rid) == {
        "state": "done",
        "text": SENTENCE,
        "rid": f"{rid} (this page)",
        "ttfa": f"{js_to_fixed0(done.data['first_audio_ms'])} ms",
    }

    # The sentence's samples reached the worklet and were played (the jitter buffer may
    # drop some when this browser's audio thread is starved for CPU: most, not all).
    voiced = [f for f in rec.frames if f.request_id == rid and not f.silence]
    samples = sum(len(f.pcm) for f in voiced)
    assert samples > 0.5 * d.engine.sample_rate_hz  # a real sentence, not a blip
    b.wait_for(f"{played_samples_js(rid)} >= {samples // 2}", 20)
    time.sleep(0.6)  # the jitter buffer holds at most 400 ms
    assert samples // 2 <= b.evaluate(played_samples_js(rid)) <= samples
    stats = page_stats(b)
    assert stats["audio"]["voicedFramesPlayed"] > 0
    assert stats["voicedFramesReceived"] >= len(voiced)

    # ---- the voice reset, clicked on the page, reaches the daemon -------------------------
    t_reset = time.monotonic_ns()
    b.click("#reset")
    reset = wait_until(
        lambda: embedding_after(rec, t_reset, n_partials=0, loaded_voice=None),
        10,
        "the reset to reach the daemon",
    )
    assert reset.data["has_embedding"] is False
    b.wait_for(f"{STATS}.messages.includes('voice reset')", 10)

    # ---- a key press: Escape is "Stop all", answered by the daemon ------------------------
    b.press("Escape")
    b.wait_for(f"{STATS}.messages.includes('nothing to stop')", 10)

    assert b.page_errors() == []
    assert page_stats(b)["errors"] == []


def test_enable_audio_without_an_output_device_says_so(daemon):
    """Without the mock audio backend, on a machine with no sound server or card (CI),
    Firefox never starts an AudioContext: the page must say so instead of waiting."""
    with Firefox(width=1024, height=700, prefs={"media.cubeb.force_mock_context": False}) as b:
        b.navigate(f"http://127.0.0.1:{daemon.ws_port}/")
        b.wait_for(f"{STATS}.connection === 'connected'")
        b.wait_for(f"{STATS}.audio.state !== 'off'", 10)
        if page_stats(b)["audio"]["state"] == "running":
            pytest.skip("this machine has an audio output: Firefox started audio")
        b.click("#audio-enable")
        message = b.wait_for(
            f"{STATS}.messages.find(m => m.startsWith('could not start audio'))", 10
        )
        assert "did not start audio" in message and "output device" in message
        assert page_stats(b)["audio"]["state"] == "suspended"
