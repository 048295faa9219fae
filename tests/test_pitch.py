"""YIN F0 estimator: accuracy on known signals, voicing, frame alignment, streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vcstream.audio.io import read_wav
from vcstream.audio.mel import mel_spectrogram
from vcstream.audio.pitch import LogF0Histogram, StreamingF0, estimate_f0
from vcstream.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures"


def harmonic(f0_hz: np.ndarray | float, sample_rate_hz: int, seconds: float) -> np.ndarray:
    """A voice-like tone: three harmonics, instantaneous F0 given per sample or constant."""
    n = int(sample_rate_hz * seconds)
    inst = np.broadcast_to(np.asarray(f0_hz, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(inst) / sample_rate_hz
    return (0.3 * np.sin(phase) + 0.15 * np.sin(2 * phase) + 0.08 * np.sin(3 * phase)).astype(
        np.float32
    )


@pytest.mark.parametrize(("sr", "hop"), [(22050, 256), (16000, 160)])
@pytest.mark.parametrize("f0", [65.0, 110.0, 220.0, 440.0, 580.0])
def test_constant_tones(sr: int, hop: int, f0: float) -> None:
    est, voiced = estimate_f0(harmonic(f0, sr, 1.0), sr, hop)
    inner = slice(5, -5)  # frames whose span sees the zero padding are allowed to differ
    assert voiced[inner].all()
    assert np.max(np.abs(est[inner] / f0 - 1)) < 0.005


def test_silence_and_noise_are_unvoiced() -> None:
    sr = 22050
    f0, voiced = estimate_f0(np.zeros(sr, np.float32), sr, 256)
    assert not voiced.any() and not f0.any()
    noise = np.random.default_rng(0).standard_normal(sr).astype(np.float32) * 0.1
    _, voiced = estimate_f0(noise, sr, 256)
    assert voiced.mean() < 0.02


@pytest.mark.parametrize("n", [0, 255, 256, 1000, 1024, 22050, 22050 * 2 + 131])
def test_frames_align_with_hifigan_mel(n: int) -> None:
    audio = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 0.1
    f0, voiced = estimate_f0(audio, 22050, 256)
    assert f0.shape == voiced.shape == (n // 256,)
    if n > 384:  # the mel's reflect padding needs more samples than its pad
        assert mel_spectrogram(audio).shape[-1] == n // 256


@pytest.mark.parametrize(("sr", "hop"), [(22050, 256), (16000, 160)])
def test_frame_i_measures_around_sample_i_hop_plus_half(sr: int, hop: int) -> None:
    # A glide 100 -> 250 Hz: the estimate of frame i must match the F0 at its centre
    # i * hop + hop / 2, and clearly not the F0 one hop earlier or later.
    seconds = 2.0
    inst = np.linspace(100.0, 250.0, int(sr * seconds), endpoint=False)
    est, voiced = estimate_f0(harmonic(inst, sr, seconds), sr, hop)
    centres = np.arange(est.size) * hop + hop // 2
    keep = voiced & (centres > 0.2 * sr) & (centres < inst.size - 0.2 * sr)

    def bias(shift: int) -> float:
        truth = inst[np.clip(centres + shift, 0, inst.size - 1)]
        return float(np.mean(np.log(est[keep] / truth[keep])))

    assert keep.sum() > 100
    assert abs(bias(0)) < 0.001
    assert abs(bias(hop)) > 0.003 and abs(bias(-hop)) > 0.003


def test_speech_fixtures_pitch_ranges() -> None:
    joe, sr = read_wav(FIXTURES / "speech_joe.wav")
    slt, _ = read_wav(FIXTURES / "speech_slt.wav")
    f_joe, v_joe = estimate_f0(joe, sr, 160)
    f_slt, v_slt = estimate_f0(slt, sr, 160)
    assert v_joe.mean() > 0.15 and v_slt.mean() > 0.4
    mean_joe = np.exp(np.mean(np.log(f_joe[v_joe])))
    mean_slt = np.exp(np.mean(np.log(f_slt[v_slt])))
    assert 80 < mean_joe < 120  # a low male voice
    assert 145 < mean_slt < 190  # a female voice
    # Steady read speech: log-F0 spread well under an octave.
    assert np.std(np.log(f_slt[v_slt])) < 0.15


@pytest.mark.parametrize("min_frames", [1, 10])
def test_streaming_equals_batch_prefix(min_frames: int) -> None:
    audio, sr = read_wav(FIXTURES / "speech_slt.wav")
    batch_f0, batch_v = estimate_f0(audio, sr, 160)
    tracker = StreamingF0(sr, 160, min_frames=min_frames)
    rng = np.random.default_rng(3)
    parts, pos = [], 0
    while pos < audio.size:
        n = int(rng.integers(1, 900))
        parts.append(tracker.process(audio[pos : pos + n]))
        pos += n
    f0 = np.concatenate([p[0] for p in parts])
    voiced = np.concatenate([p[1] for p in parts])
    # Only the last few frames (their span would reach past the end, or they wait for
    # min_frames) are withheld.
    assert batch_f0.size - 10 - min_frames < f0.size <= batch_f0.size
    np.testing.assert_allclose(f0, batch_f0[: f0.size], rtol=1e-6)
    np.testing.assert_array_equal(voiced, batch_v[: f0.size])


def test_bad_arguments() -> None:
    with pytest.raises(InputError):
        estimate_f0(np.zeros((2, 100)), 16000, 160)
    with pytest.raises(InputError):
        estimate_f0(np.zeros(100), 16000, 0)
    with pytest.raises(InputError):
        estimate_f0(np.zeros(100), 16000, 160, fmin_hz=500, fmax_hz=100)


# -- robust statistics of a stream (the live voice's pitch conditioning) ------------------


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(40.0, 1100.0), st.just(0.0), st.just(float("nan"))),
        min_size=10,
        max_size=400,
    ),
    st.integers(1, 5),
)
def test_histogram_statistics_match_the_exact_ones(f0: list[float], pieces: int) -> None:
    """Added in any pieces, the histogram gives the median and MAD-based spread of every
    voiced frame (``log_f0_statistics``, the training's) to within a bin; NaN and unvoiced
    frames count for nothing."""
    from vcstream.synth.fastpitch import MIN_LOG_F0_STD, log_f0_statistics

    values = np.asarray(f0)
    hist = LogF0Histogram()
    for part in np.array_split(values, pieces):
        hist.add(part)
    voiced = np.nan_to_num(values, nan=0.0)
    assert hist.count == int((voiced > 0).sum())
    exact = log_f0_statistics(voiced)
    got = hist.statistics()
    if exact is None:  # fewer than 10 voiced frames
        assert (got is None) == (hist.count == 0)
        return
    assert got[0] == pytest.approx(exact[0], abs=LogF0Histogram.BIN)
    assert max(got[1], MIN_LOG_F0_STD) == pytest.approx(exact[1], abs=2 * LogF0Histogram.BIN)


def test_histogram_is_robust_to_octave_errors_and_resets() -> None:
    """A fifth of the frames an octave down (a tracker's error on a creaky voice) moves a
    mean by 2.4 semitones and quadruples a standard deviation; the median moves by 0.3."""
    rng = np.random.default_rng(0)
    f0 = 200.0 * np.exp(0.05 * rng.standard_normal(1000))
    f0[::5] /= 2.0
    hist = LogF0Histogram()
    hist.add(f0)
    centre, spread = hist.statistics()
    semitones = 12 / np.log(2)
    assert abs(centre - np.log(200.0)) * semitones < 0.5
    assert abs(np.log(f0).mean() - np.log(200.0)) * semitones > 2.0
    assert 0.04 < spread < 0.1 < 0.25 < np.log(f0).std()  # the true pitch's, not the errors
    hist.add(np.array([5000.0, 1.0]))  # outside the range: counted at its edges
    assert hist.count == 1002
    hist.reset()
    assert hist.count == 0 and hist.statistics() is None
