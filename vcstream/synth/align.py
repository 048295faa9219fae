"""Learned alignment: the beta-binomial attention prior, monotonic alignment search (MAS)
and the two alignment losses of RAD-TTS / FastPitch 1.1.

The aligner in the model scores every (mel frame, phoneme) pair; adding the log prior keeps
early training near the diagonal. MAS turns the soft scores into a hard monotonic path (one
phoneme per frame, each phoneme at least one frame, no skips), whose column sums are the
phoneme durations the length regulator and the duration predictor train on.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

NEG_INF = -1e9


def beta_binomial_prior(n_text: int, n_mel: int, scaling: float = 1.0) -> torch.Tensor:
    """Prior ``[n_mel, n_text]``: frame ``i`` (1-based) attends to phoneme ``k`` with the
    beta-binomial pmf ``BB(k; n_text - 1, scaling * i, scaling * (n_mel + 1 - i))``.
    Each row sums to one and its mode moves from the first phoneme to the last."""
    if n_text < 1 or n_mel < 1:
        raise ValueError("prior needs at least one phoneme and one frame")
    n = float(n_text - 1)
    k = torch.arange(n_text, dtype=torch.float64)[None, :]
    i = torch.arange(1, n_mel + 1, dtype=torch.float64)[:, None]
    a, b = scaling * i, scaling * (n_mel + 1 - i)
    lg = torch.lgamma
    log_choose = lg(torch.tensor(n + 1)) - lg(k + 1) - lg(n - k + 1)
    log_beta_num = lg(k + a) + lg(n - k + b) - lg(n + a + b)
    log_beta_den = lg(a) + lg(b) - lg(a + b)
    return torch.exp(log_choose + log_beta_num - log_beta_den).float()


def maximum_path(
    log_p: np.ndarray | torch.Tensor,
    text_lens: np.ndarray | torch.Tensor | None = None,
    mel_lens: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """Most probable monotonic path through ``log_p [B, M, N]`` (or ``[M, N]``).

    Returns a 0/1 array of the same shape: frame ``m`` of item ``b`` is assigned to exactly
    one phoneme; the path starts at (0, 0), ends at (mel_len - 1, text_len - 1), and at each
    frame stays on its phoneme or moves to the next. Requires ``mel_len >= text_len``.
    Vectorised over the batch and the phonemes; one Python step per frame.
    """
    x = log_p.detach().float().cpu().numpy() if torch.is_tensor(log_p) else np.asarray(log_p)
    squeeze = x.ndim == 2
    if squeeze:
        x = x[None]
    b_size, m_max, n_max = x.shape
    tl = _lens(text_lens, b_size, n_max)
    ml = _lens(mel_lens, b_size, m_max)
    if np.any(ml < tl) or np.any(tl < 1):
        raise ValueError("monotonic alignment needs 1 <= text_len <= mel_len for every item")
    cols = np.arange(n_max)[None, :]
    valid_cols = cols < tl[:, None]
    x = np.where(valid_cols[:, None, :], x.astype(np.float64), NEG_INF)

    q = np.full((b_size, m_max, n_max), NEG_INF)
    q[:, 0, 0] = x[:, 0, 0]
    for m in range(1, m_max):
        prev = q[:, m - 1]
        shifted = np.concatenate([np.full((b_size, 1), NEG_INF), prev[:, :-1]], axis=1)
        q[:, m] = x[:, m] + np.maximum(prev, shifted)
        # A phoneme beyond the frame index cannot be reached yet.
        q[:, m] = np.where(cols > m, NEG_INF, q[:, m])

    path = np.zeros((b_size, m_max, n_max), dtype=np.float32)
    idx = tl - 1
    batch = np.arange(b_size)
    for m in range(m_max - 1, -1, -1):
        active = m < ml
        path[batch[active], m, idx[active]] = 1.0
        if m == 0:
            break
        stay = q[batch, m - 1, idx]
        move = q[batch, m - 1, np.maximum(idx - 1, 0)]
        go = active & (idx > 0) & ((idx == m) | (move > stay))
        idx = idx - go.astype(idx.dtype)
    return path[0] if squeeze else path


def _lens(lens: np.ndarray | torch.Tensor | None, b_size: int, full: int) -> np.ndarray:
    if lens is None:
        return np.full(b_size, full, dtype=np.int64)
    arr = lens.cpu().numpy() if torch.is_tensor(lens) else np.asarray(lens)
    return arr.astype(np.int64).reshape(b_size)


def durations_from_path(path: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Frames per phoneme ``[B, N]`` (column sums of a hard path ``[B, M, N]``)."""
    p = torch.as_tensor(path)
    return p.sum(dim=-2).long()


def forward_sum_loss(
    log_attn: torch.Tensor,
    text_lens: torch.Tensor,
    mel_lens: torch.Tensor,
    blank_logp: float = -1.0,
) -> torch.Tensor:
    """RAD-TTS's alignment loss: the likelihood, summed over all monotonic paths, that the
    frames spell the phoneme sequence in order; computed with CTC and a blank column.

    ``log_attn [B, M, N]`` are unnormalised attention scores (log prior already added).
    """
    b_size, _, n_max = log_attn.shape
    padded = F.pad(log_attn, (1, 0), value=blank_logp)
    col = torch.arange(n_max + 1, device=log_attn.device)[None, None, :]
    padded = padded.masked_fill(col > text_lens[:, None, None], NEG_INF)
    log_probs = F.log_softmax(padded.float(), dim=-1).transpose(0, 1)  # [M, B, N+1]
    targets = torch.arange(1, n_max + 1, device=log_attn.device).expand(b_size, n_max)
    return F.ctc_loss(
        log_probs, targets, mel_lens, text_lens, blank=0, reduction="mean", zero_infinity=True
    )


def bin_loss(hard: torch.Tensor, soft_log: torch.Tensor) -> torch.Tensor:
    """Pulls the soft attention towards the MAS path: ``-mean log soft`` on the path."""
    on_path = hard > 0
    return -soft_log.clamp(min=-1e4)[on_path].mean()
