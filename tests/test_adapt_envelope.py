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
