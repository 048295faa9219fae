"""Incremental speaker embedder and its voice-activity gate, on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vcstream.audio.io import read_wav
from vcstream.audio.pitch import LogF0Histogram, estimate_f0
from vcstream.config import EmbedderConfig
from vcstream.encoder.embed import embed_stream
from vcstream.encoder.ge2e import SpeakerEncoder
from vcstream.encoder.incremental import IncrementalEmbedder
from vcstream.encoder.vad import FRAME_SAMPLES, VoiceActivityGate, voiced_audio
from vcstream.errors import InputError
from vcstream.synth.fastpitch import log_f0_statistics

FIXTURES = Path(__file__).parent / "fixtures"
SR = 16000
GAP_SECONDS = 0.9
NOISE_DBFS = -62.0
SPEECH_GAIN = 0.3
# A gate that passes every frame: the stream is then the input itself.
OPEN_GATE = EmbedderConfig(vad_threshold_db=0.0, vad_floor_dbfs=-200.0)


def load(name: str) -> np.ndarray:
    audio, sr = read_wav(FIXTURES / f"speech_{name}.wav")
    assert sr == SR
    return audio


def with_pauses(speech: np.ndarray, seed: int = 0, gain: float = SPEECH_GAIN) -> np.ndarray:
    """Speech cut into four phrases at quiet points, with 0.9 s pauses between, over noise.

    The speech is made quieter (-10 dB, about -28 dBFS) so that the per-partial volume
    normalisation has work to do.
    """
    speech = speech * np.float32(gain)
    frames = speech[: speech.size // 160 * 160].reshape(-1, 160).astype(np.float64)
    power = np.mean(frames**2, axis=1)
    cuts = []
    for q in (0.25, 0.5, 0.75):
        c = int(q * power.size)
        cuts.append((c - 50 + int(np.argmin(power[c - 50 : c + 50]))) * 160)
    gap = np.zeros(int(GAP_SECONDS * SR), np.float32)
    parts = [gap[: SR // 2]]
    for phrase in np.split(speech, cuts):
        parts += [phrase, gap]
    signal = np.concatenate(parts)
    noise = np.random.default_rng(seed).standard_normal(signal.size) * 10 ** (NOISE_DBFS / 20)
    return (signal + noise).astype(np.float32)


def feed(embedder: IncrementalEmbedder, audio: np.ndarray, seed: int = 1) -> list:
    """Feed in small uneven blocks (1 sample to 44 ms); return the updates."""
    rng = np.random.default_rng(seed)
    updates, pos = [], 0
    while pos < audio.size:
        n = int(rng.choice([1, 7, 160, 320, 333, 700]))
        update = embedder.process(audio[pos : pos + n])
        if update is not None:
            updates.append(update)
        pos += n
    return updates


@pytest.fixture(scope="module")
def fed(encoder: SpeakerEncoder):
    signal = with_pauses(load("joe"))
    emb = IncrementalEmbedder(encoder)
    updates = feed(emb, signal)
    return signal, emb, updates


def test_gate_drops_the_pauses(fed) -> None:
    signal, emb, _ = fed
    voiced = voiced_audio(signal)
    speech_seconds = load("joe").size / SR
    pause_seconds = signal.size / SR - speech_seconds
    assert pause_seconds > 3.0
    # Everything voiced was kept, the pauses went (but for the 200 ms hangovers).
    assert speech_seconds - 0.3 < voiced.size / SR < speech_seconds + 4 * 0.25
    assert emb.voiced_seconds == pytest.approx(voiced.size / SR)


def test_incremental_equals_batch_of_voiced_audio(encoder: SpeakerEncoder, fed) -> None:
    signal, emb, updates = fed
    batch = embed_stream(encoder, voiced_audio(signal))
    assert batch is not None
    assert emb.n_partials == len(batch.starts) == len(updates) >= 9
    assert float(emb.embedding @ batch.embedding) > 0.9999
    assert abs(np.linalg.norm(emb.embedding) - 1) < 1e-5
    last = updates[-1]
    assert last.n_partials == emb.n_partials
    np.testing.assert_allclose(last.partial, batch.partials[-1], atol=1e-4)
    # And it is the voice of the recording, not the other speaker's.
    same = float(emb.embedding @ embed_stream(encoder, load("joe")).embedding)
    other = float(emb.embedding @ embed_stream(encoder, load("slt")).embedding)
    assert same > 0.95 and same > other + 0.3


def test_convergence_rises(fed) -> None:
    _, emb, updates = fed
    conv = [u.convergence for u in updates]
    assert conv[0] is None
    assert all(c is not None for c in conv[1:])
    assert conv[-1] > conv[1]
    assert conv[-1] > 0.99
    assert np.mean(conv[-3:]) > np.mean(conv[1:4])
    assert emb.convergence == conv[-1]


def test_embedding_does_not_depend_on_input_level(encoder: SpeakerEncoder) -> None:
    audio = load("slt")
    loud, quiet = IncrementalEmbedder(encoder, OPEN_GATE), IncrementalEmbedder(encoder, OPEN_GATE)
    feed(loud, audio)
    feed(quiet, audio * np.float32(0.03))  # 30 dB down
    assert loud.n_partials == quiet.n_partials > 5
    assert float(loud.embedding @ quiet.embedding) > 0.9999


def test_flush_adds_end_partial_like_batch(encoder: SpeakerEncoder) -> None:
    # With an open gate the stream is the input (in whole 10 ms frames); 301 frames of
    # audio give 300 stream frames (the last needs 40 samples more), 60 uncovered.
    audio = load("slt")[: 301 * 160]
    emb = IncrementalEmbedder(encoder, OPEN_GATE)
    feed(emb, audio)
    before = embed_stream(encoder, audio)
    assert before is not None and before.starts == [0, 80]
    assert emb.n_partials == 2
    assert float(emb.embedding @ before.embedding) > 0.9999
    update = emb.flush()
    after = embed_stream(encoder, audio, final=True)
    assert after is not None and after.starts == [0, 80, 140]
    assert update is not None and update.n_partials == emb.n_partials == 3
    assert float(emb.embedding @ after.embedding) > 0.9999
    assert emb.flush() is None  # nothing left


def test_short_stream_gets_a_padded_partial_on_flush(encoder: SpeakerEncoder) -> None:
    audio = load("slt")[16000 : 16000 + 131 * 160]  # 130 stream frames
    emb = IncrementalEmbedder(encoder, OPEN_GATE)
    assert not feed(emb, audio)
    assert emb.embedding is None and emb.convergence is None
    update = emb.flush()
    batch = embed_stream(encoder, audio, final=True)
    assert batch is not None and batch.starts == [-30]
    assert update is not None and update.convergence is None
    assert float(emb.embedding @ batch.embedding) > 0.9999


def test_freeze_stops_updates_and_unfreeze_resumes(encoder: SpeakerEncoder) -> None:
    signal = with_pauses(load("slt"), seed=5)
    half = signal.size // 2
    emb = IncrementalEmbedder(encoder)
    feed(emb, signal[:half])
    snapshot = (emb.embedding, emb.n_partials, emb.voiced_seconds, emb.pitch_stats)
    assert snapshot[0] is not None
    emb.freeze()
    assert emb.frozen
    levels = []
    for pos in range(half, signal.size, 320):
        assert emb.process(signal[pos : pos + 320]) is None
        levels.append(emb.level_dbfs)
    np.testing.assert_array_equal(emb.embedding, snapshot[0])
    assert (emb.n_partials, emb.voiced_seconds, emb.pitch_stats) == snapshot[1:]
    assert max(levels) > -40 and min(levels) < -55  # the meter keeps working
    emb.unfreeze()
    assert not emb.frozen
    feed(emb, signal[:half])
    assert emb.n_partials > snapshot[1]
    assert emb.voiced_seconds > snapshot[2]


def test_auto_freeze(encoder: SpeakerEncoder) -> None:
    emb = IncrementalEmbedder(encoder, EmbedderConfig(auto_freeze_seconds=3.0))
    feed(emb, load("slt"))
    assert emb.frozen
    assert 3.0 <= emb.voiced_seconds < 3.1


def test_reset_clears(encoder: SpeakerEncoder) -> None:
    emb = IncrementalEmbedder(encoder)
    feed(emb, load("slt"))
    emb.freeze()
    assert emb.embedding is not None and emb.pitch_stats is not None
    emb.reset()
    assert emb.embedding is None
    assert emb.n_partials == 0 and emb.voiced_seconds == 0.0
    assert emb.convergence is None and emb.pitch_stats is None
    assert not emb.frozen
    # And it learns again from scratch, giving the same answer as a fresh embedder.
    feed(emb, load("slt"))
    fresh = IncrementalEmbedder(encoder)
    feed(fresh, load("slt"))
    np.testing.assert_allclose(emb.embedding, fresh.embedding, atol=1e-6)


def test_pitch_stats_follow_the_voiced_stream(encoder: SpeakerEncoder, fed) -> None:
    signal, emb, _ = fed
    centre, spread = emb.pitch_stats
    f0, voiced = estimate_f0(voiced_audio(signal), SR, 160)
    # The statistics the synthesiser was trained on, of every voiced frame, to half a bin.
    exact = log_f0_statistics(np.where(voiced, f0, 0.0))
    assert centre == pytest.approx(exact[0], abs=LogF0Histogram.BIN)
    assert spread == pytest.approx(exact[1], abs=2 * LogF0Histogram.BIN)
    slt = IncrementalEmbedder(encoder)
    feed(slt, load("slt"))
    assert slt.pitch_stats[0] > centre + 0.3  # the female voice is clearly higher


def test_meters_and_bad_input(encoder: SpeakerEncoder) -> None:
    emb = IncrementalEmbedder(encoder)
    assert emb.process(np.zeros(0, np.float32)) is None
    emb.process(np.full(320, 0.1, np.float32))
    assert emb.level_dbfs == pytest.approx(-20.0, abs=0.01)
    with pytest.raises(InputError):
        emb.process(np.zeros((2, 160), np.float32))
    with pytest.raises(InputError):
        emb.process(np.array([0.0, np.inf], np.float32))
    with pytest.raises(InputError):
        IncrementalEmbedder(encoder, EmbedderConfig(partial_step_seconds=2.0))


# ---- the voice-activity gate ---------------------------------------------------------------


def gate_fraction(audio: np.ndarray, cfg: EmbedderConfig | None = None) -> float:
    return voiced_audio(audio, cfg).size / (audio.size // FRAME_SAMPLES * FRAME_SAMPLES)


def test_gate_on_silence_and_steady_noise() -> None:
    rng = np.random.default_rng(0)
    assert gate_fraction(np.zeros(3 * SR, np.float32)) == 0.0
    for dbfs in (-70.0, -40.0, -20.0):  # below the absolute floor, and loud steady noise
        noise = (rng.standard_normal(3 * SR) * 10 ** (dbfs / 20)).astype(np.float32)
        assert gate_fraction(noise) < 0.02, dbfs


def test_gate_adapts_to_a_louder_room() -> None:
    rng = np.random.default_rng(1)
    quiet = rng.standard_normal(2 * SR) * 10 ** (-60 / 20)
    loud = rng.standard_normal(10 * SR) * 10 ** (-35 / 20)
    gate = VoiceActivityGate()
    gate.process(quiet.astype(np.float32))
    tail = gate.process(loud.astype(np.float32)[: 5 * SR])  # opens on the step...
    assert tail.size > 0
    assert gate.process(loud.astype(np.float32)[5 * SR :]).size == 0  # ...then closes
    assert not gate.active


@pytest.mark.parametrize("name", ["joe", "slt"])
def test_gate_on_speech(name: str) -> None:
    speech = load(name)
    assert gate_fraction(speech) > 0.9
    noisy = with_pauses(speech)
    gate = VoiceActivityGate()
    flags = []
    for pos in range(0, noisy.size, 320):  # 20 ms blocks, as the daemon feeds it
        gate.process(noisy[pos : pos + 320])
        flags.append(gate.active)
    assert gate.frames_voiced * FRAME_SAMPLES == voiced_audio(noisy).size
    assert not flags[0] and not flags[-1]  # pauses at both ends
    assert np.mean(flags) > 0.6
