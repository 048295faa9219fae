"""kNN frame conversion: frames move toward the reference's, level and silence are kept,
bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vcstream.errors import InputError, NoVoiceError
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.synth.knn import FrameMatcher, FrameMatchingSynthesizer
from vcstream.synth.variance import dct_basis


def _voice(rng, n_frames: int, tilt: float, formant: int) -> np.ndarray:
    """Log-mel frames of a made-up voice: a spectral tilt and one formant bump that
    moves with the 'sound' (a slow sweep), plus noise."""
    bands = np.arange(80)[:, None]
    sound = np.sin(np.linspace(0, 6 * np.pi, n_frames))[None, :]
    centre = formant + 10 * sound
    mel = -4.0 - tilt * bands / 80 + 2.5 * np.exp(-((bands - centre) ** 2) / 20.0)
    return mel + 0.05 * rng.standard_normal((80, n_frames))


def test_dct_is_orthonormal() -> None:
    d = dct_basis(80)
    assert np.allclose(d @ d.T, np.eye(80), atol=1e-10)


@pytest.mark.parametrize("mode", ["envelope", "frame", "stats"])
def test_conversion_moves_frames_toward_the_reference_and_keeps_the_level(mode: str) -> None:
    rng = np.random.default_rng(0)
    ref = _voice(rng, 400, tilt=6.0, formant=30)
    src = _voice(rng, 120, tilt=1.0, formant=20)
    out = FrameMatcher([ref[:, :200], ref[:, 200:]], k=4, mode=mode).convert(src).numpy()
    assert out.shape == src.shape and out.dtype == np.float32

    def shape(x: np.ndarray) -> np.ndarray:  # the level is kept on purpose: compare shapes
        return x - x.mean(0, keepdims=True)

    def dist_to_ref(x: np.ndarray) -> float:  # mean distance to the nearest reference frame
        d = ((shape(x)[:, :, None] - shape(ref)[:, None, :]) ** 2).sum(0)
        return float(np.sqrt(d.min(1)).mean())

    assert dist_to_ref(out) < 0.5 * dist_to_ref(src)
    assert np.allclose(out.mean(0), src.mean(0), atol=1e-4)  # each frame's level (c0) kept


def test_silent_frames_are_left_alone_and_alpha_zero_changes_nothing() -> None:
    rng = np.random.default_rng(1)
    ref = _voice(rng, 300, tilt=6.0, formant=30)
    src = _voice(rng, 60, tilt=1.0, formant=20)
    src[:, :10] = np.log(1e-5)  # silence: far below the loudest frame
    out = FrameMatcher([ref]).convert(torch.from_numpy(src)).numpy()
    assert np.allclose(out[:, :10], src[:, :10])
    same = FrameMatcher([ref], alpha=0.0).convert(src).numpy()
    assert np.allclose(same, src, atol=1e-4)


def test_bad_settings_and_too_little_reference_are_specific_errors() -> None:
    rng = np.random.default_rng(2)
    ref = _voice(rng, 300, tilt=6.0, formant=30)
    with pytest.raises(InputError, match="mode"):
        FrameMatcher([ref], mode="nearest")
    with pytest.raises(InputError, match="alpha"):
        FrameMatcher([ref], alpha=1.5)
    with pytest.raises(NoVoiceError, match="at least 50"):
        FrameMatcher([ref[:, :20]])
    with pytest.raises(InputError, match="want a mel"):
        FrameMatcher([ref]).convert(np.zeros((40, 10)))


def test_wrapping_synthesiser_yields_the_converted_mel_in_chunks() -> None:
    rng = np.random.default_rng(3)
    ref = _voice(rng, 300, tilt=6.0, formant=30)
    src = torch.from_numpy(_voice(rng, 70, tilt=1.0, formant=20).astype(np.float32))

    class Inner:
        name, clones, default_voice_name = "fake", True, "someone"

        def synthesize(self, phonemes, voice, controls):
            yield src[:, :40]
            yield src[:, 40:]

    matcher = FrameMatcher([ref])
    synth = FrameMatchingSynthesizer(Inner(), matcher, chunk_frames=32)
    chunks = list(synth.synthesize(["a"], VoiceConditioning(), SynthControls()))
    assert [c.shape[1] for c in chunks] == [32, 32, 6]
    assert torch.allclose(torch.cat(chunks, 1), matcher.convert(src))
    assert synth.name == "fake+knn" and synth.default_voice_name == "someone"


def test_matcher_for_recordings_reads_wavs_and_refuses_a_bad_one(tmp_path) -> None:
    from pathlib import Path

    from vcstream.errors import AudioFileError
    from vcstream.synth.knn import matcher_for_recordings

    wav = Path(__file__).parent / "fixtures" / "speech_slt.wav"

    class Inner:
        name, clones, default_voice_name = "fake", True, None

    synth = matcher_for_recordings(Inner(), [wav], "stats")
    assert synth.matcher.mode == "stats" and synth.matcher.n_frames > 100
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wav")
    with pytest.raises(AudioFileError, match=r"bad\.wav"):
        matcher_for_recordings(Inner(), [bad])
