"""Every accepted request ends in exactly one ``done`` or ``error``, whatever happens to it.

The real engine and models; faults are injected into the synthesiser (a call that never
returns, a call that raises), the way a wedged model or a bug would look.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from vcstream.app import build_runtime
from vcstream.capture import NullSource
from vcstream.config import Config
from vcstream.engine import Engine
from vcstream.errors import BadTextError
from vcstream.request_watchdog import STALLED
from vcstream.testing import RecordingPublisher
from vcstream.voices import VoiceStore

# Short, for the test; but no shorter: on a loaded 2-core machine one vocoder chunk can take
# most of a second, and a request between chunks makes no visible progress.
STALL_S = 2.0


@pytest.fixture(scope="module")
def runtime():
    return build_runtime(Config())


@pytest.fixture
def engine(runtime, tmp_path, request):
    cfg = Config()
    # The watchdog only where a test wedges the engine (0 turns it off): elsewhere a slow
    # chunk on a busy machine must not be mistaken for a stall.
    cfg.engine.request_stall_s = getattr(request, "param", 0.0)
    eng = Engine(
        cfg,
        pipeline=runtime.new_pipeline(),
        embedder=runtime.new_embedder(),
        source=NullSource(cfg.capture),
        voices=VoiceStore(tmp_path),
        model_name=runtime.encoder_name,
        device=str(runtime.device),
    )
    eng.start()
    yield eng
    eng.stop()


def _endings(rec: RecordingPublisher) -> Counter:
    return Counter((e.request_id, e.type) for e in list(rec.events) if e.type in ("done", "error"))


def _contiguous(rec: RecordingPublisher) -> bool:
    seqs = [f.seq for f in list(rec.frames)]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


@pytest.mark.parametrize("engine", [STALL_S], indirect=True)
def test_a_wedged_synthesis_is_failed_once_and_its_id_freed(engine):
    rec = RecordingPublisher(engine.hub)
    synth = engine.pipeline.synthesizer
    release = threading.Event()
    original = synth.synthesize

    def wedged(*args, **kwargs):
        release.wait(30)  # a model call that does not return
        yield from original(*args, **kwargs)

    synth.synthesize = wedged
    try:
        engine.speak(request_id="wedged", text="This line never gets synthesised.")
        engine.speak(request_id="behind", text="Nor does the one queued behind it.")
        err = rec.wait_for("error", "wedged", timeout=10 * STALL_S)
        assert err.data["code"] == STALLED
        assert rec.wait_for("error", "behind", timeout=10 * STALL_S).data["code"] == STALLED
        status = engine.status()
        assert status["history"][-1]["error"] == STALLED
        # The id is free again while the synthesis thread is still stuck.
        engine.speak(request_id="wedged", text="Same id, new request.")
    finally:
        synth.synthesize = original
        release.set()
    done = rec.wait_for("done", "wedged", timeout=60)
    assert done.data.get("cancelled") is not True and done.data["audio_ms"] > 100
    engine.speak(request_id="after", text="And the engine goes on.")
    rec.wait_for("done", "after", timeout=60)
    assert _endings(rec) == {
        ("wedged", "error"): 1,
        ("wedged", "done"): 1,  # the second request of that id
        ("behind", "error"): 1,
        ("after", "done"): 1,
    }
    # The stale first "wedged" produced nothing once released: the audio under that id is
    # the second request's alone, exactly as long as its done event says.
    audio_ms = 1000 * len(rec.audio("wedged")) / engine.sample_rate_hz
    assert audio_ms == pytest.approx(done.data["audio_ms"], abs=1)
    assert _contiguous(rec)  # listeners never saw a stall


def test_a_synthesis_exception_ends_the_request_once_and_frees_its_id(engine):
    rec = RecordingPublisher(engine.hub)
    synth = engine.pipeline.synthesizer
    original = synth.synthesize

    def broken(*args, **kwargs):
        raise RuntimeError("injected fault")
        yield  # a generator, like the real one

    synth.synthesize = broken
    try:
        engine.speak(request_id="boom", text="This fails.")
        err = rec.wait_for("error", "boom", timeout=30)
    finally:
        synth.synthesize = original
    assert err.data["code"] == "internal"
    engine.speak(request_id="boom", text="This one works.")
    rec.wait_for("done", "boom", timeout=60)
    assert _endings(rec) == {("boom", "error"): 1, ("boom", "done"): 1}


def test_an_id_can_be_reused_after_its_request_was_cancelled(engine):
    rec = RecordingPublisher(engine.hub)
    engine.speak(request_id="again", text="A first line that is cancelled straight away.")
    engine.cancel("again")
    assert rec.wait_for("done", "again", timeout=60).data["cancelled"] is True
    rec.events.clear()
    engine.speak(request_id="again", text="The second line of that id is heard.")
    done = rec.wait_for("done", "again", timeout=60)
    assert done.data.get("cancelled") is not True and done.data["audio_ms"] > 100


def test_text_is_cleaned_before_it_is_kept_and_unencodable_text_refused(engine):
    rec = RecordingPublisher(engine.hub)
    engine.speak(request_id="ansi", text="\x1b[31mRed\x1b[0m alert,\x07 all hands.")
    accepted = rec.wait_for("accepted", "ansi", timeout=10)
    done = rec.wait_for("done", "ansi", timeout=60)
    assert accepted.data["text"] == done.data["text"] == "Red alert, all hands."
    with pytest.raises(BadTextError):
        engine.speak(request_id="surr", text="hi \ud800 there")
    assert engine.status()["history"][-1]["id"] == "ansi"
