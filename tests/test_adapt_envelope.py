"""The envelope / fine-structure split of the adaptation loss (vcstream.adapt.tune)."""

from __future__ import annotations

import math

import pytest
import torch

from vcstream.adapt.tune import envelope_projection, split_mel


def test_the_projection_is_an_orthogonal_projector_onto_the_low_coefficients():
    p = envelope_projection(80, 24)
    assert torch.allclose(p, p.T, atol=1e-6)
    assert torch.allclose(p @ p, p, atol=1e-5)
    assert abs(float(torch.trace(p)) - 24.0) < 1e-3  # rank: the coefficients kept


def test_a_smooth_envelope_stays_whole_and_a_harmonic_ripple_goes_to_the_fine_part():
    bands = torch.arange(80, dtype=torch.float32)
    envelope = -4.0 + 2.0 * torch.cos(math.pi * bands / 80.0) - 0.02 * bands
    ripple = 0.8 * torch.cos(2 * math.pi * bands / 3.0)  # a peak every 3 bands
    mel = (envelope + ripple)[None, :, None].repeat(2, 1, 5)
    env, fine = split_mel(mel, envelope_projection(80, 24))
    assert torch.allclose(env + fine, mel, atol=1e-5)
    # The envelope is recovered to within a small edge error; the ripple lands in ``fine``.
    assert float((env[0, :, 0] - envelope).abs().mean()) < 0.1
    assert float(torch.corrcoef(torch.stack([fine[0, :, 0], ripple]))[0, 1]) > 0.95


@pytest.mark.parametrize("coeffs", [0, 80])
def test_coefficient_counts_outside_the_band_count_are_refused(coeffs):
    with pytest.raises(ValueError, match="envelope coefficients"):
        envelope_projection(80, coeffs)


def _ripple_left_in_envelope(f0_hz: float, coeffs: int) -> float:
    """Of a harmonic tone's log-mel (flat spectrum, F0 ``f0_hz``), how much of the
    band-to-band ripple of the linear bands (under 1 kHz) the envelope keeps."""
    import numpy as np

    from vcstream.audio.mel import SAMPLE_RATE_HZ, mel_spectrogram

    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    tone = sum(np.sin(2 * np.pi * k * f0_hz * t) for k in range(1, int(8000 / f0_hz))) / 10
    mel = mel_spectrogram(tone.astype(np.float32)).mean(1)
    env = envelope_projection(80, coeffs) @ mel

    def ripple(x: torch.Tensor) -> float:
        return float(np.diff(x.numpy()[:27], 2).std())

    return ripple(env) / ripple(mel)


@pytest.mark.parametrize("f0_hz", [120.0, 200.0, 290.0, 360.0, 430.0])
def test_the_envelope_order_follows_the_voice_so_its_harmonics_stay_out(f0_hz):
    from vcstream.adapt.tune import ENVELOPE_COEFFS, envelope_coeffs_for

    coeffs = envelope_coeffs_for(f0_hz, ENVELOPE_COEFFS)
    assert 8 <= coeffs <= ENVELOPE_COEFFS
    # (measured: 0.07-0.23 of the ripple, where 24 coefficients keep 0.73-0.77 of a
    # 290-360 Hz voice's)
    assert _ripple_left_in_envelope(f0_hz, coeffs) < 0.3
    if f0_hz >= 290.0:
        assert coeffs < ENVELOPE_COEFFS
        assert _ripple_left_in_envelope(f0_hz, ENVELOPE_COEFFS) > 0.4


def test_a_lower_voice_never_gets_fewer_envelope_coefficients():
    from vcstream.adapt.tune import envelope_coeffs_for

    got = [envelope_coeffs_for(f, 24) for f in range(60, 1000, 10)]
    assert got == sorted(got, reverse=True) and got[0] == 24 and got[-1] == 8
    assert envelope_coeffs_for(500.0, 4) == 4  # never more than the plan's own
