"""Monotonic alignment search, the attention prior and the alignment losses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vcstream.synth.align import (
    beta_binomial_prior,
    bin_loss,
    durations_from_path,
    forward_sum_loss,
    maximum_path,
)


def _brute_force_best(logp: np.ndarray) -> tuple[float, np.ndarray]:
    """Best monotonic path by enumerating where each phoneme starts."""
    m, n = logp.shape
    best, best_path = -np.inf, None
    for starts in itertools.combinations(range(1, m), n - 1):
        bounds = [0, *starts, m]
        path = np.zeros((m, n), dtype=np.float32)
        for j in range(n):
            path[bounds[j] : bounds[j + 1], j] = 1
        score = float((logp * path).sum())
        if score > best:
            best, best_path = score, path
    return best, best_path


def test_mas_on_a_toy_matrix_gives_the_known_path() -> None:
    p = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],
            [0.6, 0.4, 0.0, 0.0],
            [0.1, 0.8, 0.1, 0.0],
            [0.1, 0.8, 0.1, 0.0],
            [0.0, 0.1, 0.5, 0.4],
            [0.0, 0.0, 0.2, 0.8],
        ]
    )
    path = maximum_path(np.log(p + 1e-6))
    expected = np.array([0, 0, 1, 1, 2, 3])
    assert path.shape == p.shape
    np.testing.assert_array_equal(path.argmax(1), expected)
    np.testing.assert_array_equal(path.sum(1), np.ones(6))


def test_mas_forces_every_phoneme_to_get_a_frame() -> None:
    # Every frame prefers phoneme 0, yet the path must still end on the last phoneme.
    logp = np.log(np.array([[0.97, 0.01, 0.01, 0.01]] * 5))
    path = maximum_path(logp)
    np.testing.assert_array_equal(path.sum(0), [2, 1, 1, 1])
    np.testing.assert_array_equal(path.argmax(1), [0, 0, 1, 2, 3])


def test_mas_matches_brute_force_on_random_matrices() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(1, 5))
        m = int(rng.integers(n, 9))
        logp = rng.normal(size=(m, n))
        best, _ = _brute_force_best(logp)
        path = maximum_path(logp)
        assert float((logp * path).sum()) == pytest.approx(best)
        # monotonic: the phoneme index never decreases and moves by at most one
        steps = np.diff(path.argmax(1))
        assert set(np.unique(steps)) <= {0, 1}


def test_mas_batched_with_padding_equals_one_by_one() -> None:
    rng = np.random.default_rng(1)
    lens = [(3, 7), (5, 5), (2, 9)]  # (text, mel)
    n_max, m_max = 5, 9
    batch = rng.normal(size=(3, m_max, n_max))
    paths = maximum_path(
        torch.from_numpy(batch),
        torch.tensor([t for t, _ in lens]),
        torch.tensor([m for _, m in lens]),
    )
    for b, (t, m) in enumerate(lens):
        alone = maximum_path(batch[b, :m, :t])
        np.testing.assert_array_equal(paths[b, :m, :t], alone)
        assert paths[b, m:].sum() == 0 and paths[b, :, t:].sum() == 0
    durations = durations_from_path(paths)
    assert durations.sum(1).tolist() == [m for _, m in lens]


def test_mas_rejects_more_phonemes_than_frames() -> None:
    with pytest.raises(ValueError):
        maximum_path(np.zeros((3, 4)))


def test_beta_binomial_prior_is_a_distribution_moving_along_the_diagonal() -> None:
    prior = beta_binomial_prior(7, 30)
    assert prior.shape == (30, 7)
    torch.testing.assert_close(prior.sum(1), torch.ones(30), atol=1e-5, rtol=0)
    modes = prior.argmax(1)
    assert modes[0] == 0 and modes[-1] == 6
    assert bool((modes[1:] >= modes[:-1]).all())
    # One phoneme: all mass on it.
    torch.testing.assert_close(beta_binomial_prior(1, 4), torch.ones(4, 1))


def test_forward_sum_loss_prefers_monotonic_attention() -> None:
    m, n = 12, 4
    diag = torch.full((m, n), -8.0)
    for i in range(m):
        diag[i, i * n // m] = 0.0
    anti = torch.flip(diag, dims=[1])
    lens_t, lens_m = torch.tensor([n]), torch.tensor([m])
    good = forward_sum_loss(diag[None], lens_t, lens_m)
    bad = forward_sum_loss(anti[None], lens_t, lens_m)
    assert float(good) < float(bad) - 1.0
    # Gradients flow to the scores.
    scores = diag.clone().requires_grad_(True)
    forward_sum_loss(scores[None], lens_t, lens_m).backward()
    assert scores.grad is not None and float(scores.grad.abs().sum()) > 0


def test_bin_loss_is_small_when_soft_attention_agrees_with_the_path() -> None:
    hard = torch.eye(4)[None]
    sharp = torch.log(torch.eye(4) * 0.97 + 0.01)[None]
    flat = torch.log(torch.full((4, 4), 0.25))[None]
    assert float(bin_loss(hard, sharp)) < float(bin_loss(hard, flat))
