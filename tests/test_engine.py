"""The engine with real models: paced output, barge-in, queue limits."""

from __future__ import annotations

import copy
import time

import pytest
from engineutil import started_engine
from netutil import FIXTURES

from vcstream.app import build_runtime
from vcstream.config import Config
from vcstream.engine import Engine
from vcstream.errors import ClientQueueFullError, ForbiddenError, QueueFullError
from vcstream.scheduler import ClientId
from vcstream.testing import RecordingPublisher

LONG = (
    "This request is long enough to still be playing when the next one barges in. "
    "It goes on for several sentences. Nobody should hear this last sentence at all."
)


@pytest.fixture(scope="module")
def runtime():
    return build_runtime(Config())


@pytest.fixture
def engine(runtime, tmp_path):
    cfg = copy.deepcopy(runtime.cfg)
    cfg.engine.request_queue = 2
    with started_engine(runtime, cfg, tmp_path) as eng:
        yield eng


def test_interrupt_cuts_the_playing_request(engine):
    rec = RecordingPublisher(engine.hub)
    engine.speak(request_id="long", text=LONG)
    rec.wait_for("first_audio", "long", timeout=60)
    engine.speak(request_id="short", text="Stop.", mode="interrupt")
    done_long = rec.wait_for("done", "long", timeout=60)
    assert done_long.data["cancelled"] is True
    done_short = rec.wait_for("done", "short", timeout=60)
    assert done_short.data["cancelled"] is False and done_short.data["audio_ms"] > 100
    first_short = min(f.seq for f in rec.frames if f.request_id == "short" and not f.silence)
    late = [f for f in rec.frames if f.request_id == "long" and f.seq > first_short]
    assert not late, "audio of the interrupted request played after the new one started"
    # far less of the long request was heard than it would have lasted
    assert done_long.data["audio_ms"] < 5000


def test_frames_keep_a_steady_cadence_and_contiguous_sequence(engine):
    rec = RecordingPublisher(engine.hub)
    engine.speak(request_id="one", text="One short sentence.")
    rec.wait_for("done", "one", timeout=60)
    seqs = [f.seq for f in rec.frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    audio = rec.audio("one")
    assert len(audio) / engine.sample_rate_hz * 1000 == pytest.approx(
        rec.find("done", "one").data["audio_ms"], abs=1
    )
    # idle time is filled with flagged silence, never a gap: the next frame after the
    # request is one (waited for: "done" can come before it, and under a loaded CI run no
    # idle frame need fall between subscribing and the request's first audio)
    deadline = time.monotonic() + 10.0
    while not any(f.silence and f.request_id == "" for f in rec.frames):
        assert time.monotonic() < deadline, "no idle silence frame after the request"
        time.sleep(0.01)
    seqs = [f.seq for f in list(rec.frames)]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # still contiguous


def test_full_request_queue_rejects(engine):
    rec = RecordingPublisher(engine.hub)
    accepted = []
    # A queue of 2 (plus the one the worker may have taken): the 4th request at the latest
    # is refused, and nothing already accepted is lost.
    with pytest.raises(QueueFullError, match="queue full"):
        for i in range(4):
            accepted.append(engine.speak(request_id=f"r{i}", text=LONG))
    assert len(accepted) >= 2
    engine.cancel(None)
    for rid in accepted:
        assert rec.wait_for("done", rid, timeout=60).data["cancelled"] is True


def test_voice_state_says_which_voice_a_line_is_spoken_in(engine):
    """Nothing heard: the synthesiser's default voice; then the live estimate; a loaded
    profile wins; reset goes back to the default."""
    import numpy as np

    from vcstream.audio.io import read_wav, resample
    from vcstream.voices import VoiceProfile

    synth = engine.pipeline.synthesizer
    state = engine.voice_state()
    assert state["default_voice"] == synth.default_voice_name is not None
    assert state["speaking_in"] == "default"

    audio, rate_hz = read_wav(FIXTURES / "speech_slt.wav")
    with engine._embed_lock:
        engine.embedder.process(resample(audio, rate_hz, 16000))
        engine.embedder.flush()
    assert engine.voice_state()["speaking_in"] == "live"

    emb = np.zeros(256, np.float32)
    emb[0] = 1.0
    engine.voices.save(VoiceProfile("other", emb, 5.0, "test"))
    engine.voice_load("other")
    assert engine.voice_state()["speaking_in"] == "loaded"
    assert engine.voice_reset()["speaking_in"] == "default"


def test_a_backend_that_ignores_the_voice_says_so():
    state = {"loaded_voice": "x", "has_embedding": True}
    assert Engine._speaking_in(state, clones=False, default=None) == "fixed"
    state = {"loaded_voice": None, "has_embedding": False}
    assert Engine._speaking_in(state, clones=True, default=None) == "none"


def test_metrics_carry_the_history_when_it_changes_and_once_a_second(engine):
    import time

    rec = RecordingPublisher(engine.hub)
    engine.speak(request_id="h1", text="Short.")
    done = rec.wait_for("done", "h1", timeout=60)
    time.sleep(2.5)
    metrics = [e for e in list(rec.events) if e.type == "metrics"]
    after = [e for e in metrics if e.timestamp_ns > done.timestamp_ns]
    with_history = [e for e in after if "history" in e.data]
    # the change goes out at once (the first or, racing the pacer, the second event after it)
    assert with_history[0] in after[:2]
    assert [h["id"] for h in with_history[0].data["history"]][-1] == "h1"
    assert len(after) >= 15  # about 10 a second
    assert 2 <= len(with_history) <= 4  # the change, then about once a second
    assert all("voice" in e.data and "stages" in e.data for e in after)
    assert "history" in engine.status()  # a status request always has it


# ---- fair scheduling ----------------------------------------------------------------
A = ClientId(("test", "a"), "a")
B = ClientId(("test", "b"), "b")
OP = ClientId(("test", "op"), "operator", operator=True)


@pytest.fixture
def fair_engine(runtime, tmp_path):
    cfg = copy.deepcopy(runtime.cfg)
    cfg.engine.request_queue, cfg.engine.client_queue = 8, 3
    with started_engine(runtime, cfg, tmp_path) as eng:
        yield eng


def _started(rec: RecordingPublisher) -> list[str]:
    return [e.request_id for e in list(rec.events) if e.type == "started"]


def test_clients_take_turns_and_their_own_limit(fair_engine):
    eng = fair_engine
    rec = RecordingPublisher(eng.hub)
    for i in range(3):
        eng.speak(request_id=f"a{i}", text="One.", client=A)
    with pytest.raises(ClientQueueFullError, match="limit 3"):
        eng.speak(request_id="a3", text="One.", client=A)  # a0 may be started: 2 or 3 queued
        eng.speak(request_id="a4", text="One.", client=A)
    eng.speak(request_id="b0", text="One.", client=B)  # B is not refused for A's backlog
    depths = {d["client"]: d["queued"] for d in eng.status()["queues"]["clients"]}
    assert depths["b"] == 1 and depths["a"] >= 2
    for rid in ("a0", "a1", "a2", "b0"):
        rec.wait_for("done", rid, timeout=60)
    assert _started(rec)[:2] == ["a0", "b0"]  # B's line next, not after A's backlog
    assert eng.status()["queues"]["clients"] == []


def test_cancel_without_id_is_the_clients_own_and_others_can_be_forbidden(fair_engine):
    eng = fair_engine
    rec = RecordingPublisher(eng.hub)
    eng.speak(request_id="a0", text=LONG, client=A)
    rec.wait_for("started", "a0", timeout=60)
    eng.speak(request_id="a1", text="One.", client=A)
    eng.speak(request_id="b0", text="One.", client=B)
    with pytest.raises(ForbiddenError):
        eng.cancel("a0", client=B, others_allowed=False)
    with pytest.raises(ForbiddenError):
        eng.cancel(client=B, everyone=True, others_allowed=False)
    assert eng.cancel(client=B)  # B's own queued line only
    assert rec.wait_for("done", "b0", timeout=30).data["cancelled"] is True
    assert rec.find("done", "a0") is None and rec.find("done", "a1") is None
    assert eng.cancel(client=A)
    for rid in ("a0", "a1"):
        assert rec.wait_for("done", rid, timeout=60).data["cancelled"] is True


def test_a_plain_interrupt_cuts_only_its_own_an_operators_cuts_what_plays(fair_engine):
    eng = fair_engine
    rec = RecordingPublisher(eng.hub)
    eng.speak(request_id="a0", text=LONG, client=A)
    rec.wait_for("first_audio", "a0", timeout=60)
    eng.speak(request_id="b0", text="One.", client=B)
    eng.speak(request_id="b1", text="Two.", client=B, mode="interrupt")  # cancels b0 only
    assert rec.wait_for("done", "b0", timeout=30).data["cancelled"] is True
    assert rec.find("done", "a0") is None
    eng.speak(request_id="op", text="Stop.", client=OP, mode="interrupt")
    assert rec.wait_for("done", "a0", timeout=60).data["cancelled"] is True
    assert rec.wait_for("done", "op", timeout=60).data["cancelled"] is False
    assert rec.wait_for("done", "b1", timeout=60).data["cancelled"] is False  # stays queued
    assert _started(rec) == ["a0", "op", "b1"]
