"""Spread of the spectral detail (synth.variance): measured on a speaker's mels, restored in
a sentence's, the envelope and quiet frames kept; carried by profiles and adapted voices;
bad values refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vcstream.errors import InputError
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.synth.fastpitch import FastPitchSynthesizer
from vcstream.synth.variance import (
    HIGH,
    LOW,
    MAX_GAIN,
    N_COEFFS,
    SpreadRestorer,
    cepstral_std,
    check_cepstral_std,
    dct_basis,
)
from vcstream.voices import VoiceProfile, VoiceStore


def _mel(rng, frames: int, detail: float) -> np.ndarray:
    """Log-mel frames: a smooth envelope that moves with the 'sound', plus band-to-band
    detail of strength ``detail`` (what a squared-error decoder smooths away)."""
    bands = np.arange(80)[:, None]
    sound = np.sin(np.linspace(0, 5 * np.pi, frames))[None, :]
    envelope = -4.0 - 3.0 * bands / 80 + 2.0 * np.exp(-((bands - 25 - 8 * sound) ** 2) / 30.0)
    ripple = np.cos(2 * np.pi * bands / 6.0 + rng.uniform(0, 2 * np.pi, (1, frames)))
    return envelope + detail * ripple + 0.02 * rng.standard_normal((80, frames))


def _detail(mel: np.ndarray) -> np.ndarray:
    return (dct_basis(80) @ mel)[LOW:HIGH]


def test_the_sentence_gets_the_speakers_spread_and_keeps_its_envelope() -> None:
    rng = np.random.default_rng(0)
    speaker = cepstral_std([_mel(rng, 150, 0.6), _mel(rng, 150, 0.6)])
    assert speaker is not None and speaker.shape == (N_COEFFS,) and np.all(speaker > 0)
    smooth = _mel(rng, 120, 0.15)
    out = SpreadRestorer()(torch.from_numpy(smooth).float(), speaker).numpy()
    before, after = _detail(smooth).std(1), _detail(out).std(1)
    moved = np.clip(speaker / before, 1 / MAX_GAIN, MAX_GAIN)  # what the gains may do
    assert np.allclose(after, before * moved, rtol=1e-3)
    assert after.mean() > 2.0 * before.mean()  # the ripple is back, not only in theory
    c_in, c_out = dct_basis(80) @ smooth, dct_basis(80) @ out
    assert np.allclose(c_out[:LOW], c_in[:LOW], atol=1e-4)  # the envelope is the synth's
    assert np.allclose(c_out[HIGH:], c_in[HIGH:], atol=1e-4)
    assert np.allclose(_detail(out).mean(1), _detail(smooth).mean(1), atol=1e-4)


def test_quiet_frames_and_too_short_sentences_are_left_alone() -> None:
    rng = np.random.default_rng(1)
    speaker = cepstral_std([_mel(rng, 200, 0.6)])
    mel = _mel(rng, 80, 0.15)
    mel[:, :15] = np.log(1e-5)  # silence, far below the loudest frame
    out = SpreadRestorer()(torch.from_numpy(mel).float(), speaker).numpy()
    assert np.allclose(out[:, :15], mel[:, :15], atol=1e-5)
    assert not np.allclose(out[:, 15:], mel[:, 15:], atol=1e-3)
    short = torch.from_numpy(_mel(rng, 5, 0.15)).float()
    assert torch.equal(SpreadRestorer()(short, speaker), short)


def test_too_little_voice_has_no_spread_and_bad_values_are_refused() -> None:
    rng = np.random.default_rng(2)
    assert cepstral_std([_mel(rng, 20, 0.5)]) is None
    assert cepstral_std([]) is None
    with pytest.raises(InputError, match="log-mels"):
        cepstral_std([np.zeros((30, 100))])
    for bad in ([1.0] * (N_COEFFS - 1), [float("nan")] * N_COEFFS, [0.0] * N_COEFFS, "x"):
        with pytest.raises(InputError, match="cepstral spread"):
            check_cepstral_std(bad)
    with pytest.raises(InputError, match="cepstral spread"):
        SpreadRestorer()(torch.zeros(80, 50), np.full(N_COEFFS, np.inf))


@pytest.fixture(scope="module")
def synth() -> FastPitchSynthesizer:
    return FastPitchSynthesizer(restore_spread=True)


def _speak(synth: FastPitchSynthesizer, voice: VoiceConditioning) -> torch.Tensor:
    return torch.cat(list(synth.synthesize(list("hɛloʊ wɜːld."), voice, SynthControls())), 1)


def test_fastpitch_restores_a_voices_spread_and_profiles_carry_it(synth, tmp_path) -> None:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal(256).astype(np.float32)
    emb /= np.linalg.norm(emb)
    spread = cepstral_std([_mel(rng, 300, 0.8)])
    plain = _speak(synth, VoiceConditioning(emb, 5.0, 0.2))
    restored = _speak(synth, VoiceConditioning(emb, 5.0, 0.2, cepstral_std=spread))
    assert restored.shape == plain.shape

    def off(mel: torch.Tensor) -> float:  # how far the sentence's spread is from the voice's
        return float(np.abs(np.log(_detail(mel.numpy()).std(1) / spread)).mean())

    assert off(restored) < 0.5 * off(plain)
    # off (the default, [synth] restore_spread = false): the voice's spread is not used
    unrestoring = FastPitchSynthesizer(restore_spread=False)
    assert torch.equal(
        _speak(unrestoring, VoiceConditioning(emb, 5.0, 0.2, cepstral_std=spread)), plain
    )
    store = VoiceStore(tmp_path)
    store.save(
        VoiceProfile("cleo", emb, 5.0, "ge2e", log_f0_mean=5.0, log_f0_std=0.2, cepstral_std=spread)
    )
    back = store.load("cleo")
    assert np.allclose(back.cepstral_std, spread, rtol=1e-4)
    assert torch.allclose(_speak(synth, back.conditioning()), restored, atol=1e-3)
    assert "cepstral_std" not in store.list()[0]  # summaries stay short
    data = json.loads((tmp_path / "cleo.json").read_text())
    data["cepstral_std"] = [-1.0] * N_COEFFS
    (tmp_path / "cleo.json").write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"cleo\.json is corrupt: cepstral spread"):
        store.load("cleo")


def test_the_live_meter_measures_what_the_recordings_give_and_forgets_on_reset() -> None:
    from vcstream.references import recordings_cepstral_std
    from vcstream.synth.variance import SpreadMeter

    rng = np.random.default_rng(5)
    t = np.arange(16000 * 6) / 16000
    buzz = np.sign(np.sin(2 * np.pi * 140 * t)) * (1 + np.sin(2 * np.pi * 3 * t))
    audio = (0.3 * buzz + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    meter = SpreadMeter(16000, window_s=30.0)
    meter.warm_up()  # compiles the resampler; measures nothing
    assert meter.cepstral_std is None
    for start in range(0, len(audio), 320):  # the daemon's 20 ms blocks
        meter.feed(audio[start : start + 320])
    live = meter.cepstral_std
    whole = recordings_cepstral_std([(audio, 16000)])
    assert live is not None and whole is not None
    # pieces of 1 s are measured apart: their edge frames differ a little
    assert float(np.abs(np.log(live / whole)).mean()) < 0.08
    meter.reset()
    assert meter.cepstral_std is None
    short = SpreadMeter(16000, window_s=1.0)  # bounded: only the latest second is kept
    for start in range(0, len(audio), 320):
        short.feed(audio[start : start + 320])
    assert len(short._ceps) <= round(22050 / 256) + 1


def test_reference_clicks_and_silence_are_skipped_when_measuring() -> None:
    from vcstream.references import recordings_cepstral_std

    rng = np.random.default_rng(6)
    t = np.arange(16000 * 2) / 16000
    voice = 0.3 * np.sign(np.sin(2 * np.pi * 120 * t)) + 0.01 * rng.standard_normal(t.size)
    tiny = np.full(200, 0.5, np.float32)  # shorter than one analysis window
    click = np.zeros(2000, np.float32)
    click[1000:1200] = 0.5
    silent = np.zeros(8000, np.float32)
    recs = [(voice.astype(np.float32), 16000), (tiny, 16000), (click, 16000), (silent, 16000)]
    assert recordings_cepstral_std(recs) is not None
    assert recordings_cepstral_std(recs[1:]) is None  # too few frames to measure a voice


@pytest.mark.parametrize(("samples", "frames"), [(0, 0), (200, 0), (300, 1), (384, 1), (1000, 3)])
def test_a_clip_shorter_than_the_mels_padding_still_has_a_mel(samples: int, frames: int) -> None:
    from vcstream.audio.mel import mel_spectrogram

    mel = mel_spectrogram(np.full(samples, 0.1, np.float32))  # reflection needs > 384
    assert tuple(mel.shape) == (80, frames) and bool(torch.isfinite(mel).all())
