"""The training objective: mel reconstruction, variance predictors, alignment."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vcstream.synth.align import bin_loss, forward_sum_loss


@dataclass
class LossWeights:
    mel: float = 1.0
    duration: float = 0.1
    pitch: float = 0.1
    energy: float = 0.1
    align: float = 1.0
    binarize: float = 1.0  # reached after ``bin_warmup_steps``
    speaker_f0: float = 0.1
    bin_start_step: int = 1000
    bin_warmup_steps: int = 2000


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.float()
    return ((pred - target) ** 2 * m).sum() / m.sum().clamp(min=1)


def compute_losses(
    out: dict[str, torch.Tensor],
    text_lens: torch.Tensor,
    mel_lens: torch.Tensor,
    speaker_log_f0: torch.Tensor,
    weights: LossWeights,
    step: int,
    log_f0_scale: float,
) -> dict[str, torch.Tensor]:
    """Named losses plus ``total``; every entry is a scalar tensor. ``log_f0_scale`` (the
    model's global log-F0 spread) puts the speaker-statistics loss in normalised units."""
    mel_mask = out["mel_mask"][:, None, :].expand_as(out["mel_target"])
    text_mask = out["text_mask"]
    mel = masked_mse(out["mel_pred"], out["mel_target"], mel_mask)
    log_dur_target = torch.log1p(out["durations"].float())
    duration = masked_mse(out["log_dur_pred"], log_dur_target, text_mask)
    pitch = masked_mse(out["pitch_pred"], out["pitch_target"], text_mask)
    energy = masked_mse(out["energy_pred"], out["energy_target"], text_mask)
    align = forward_sum_loss(out["attn_logp"], text_lens, mel_lens)
    binarize = bin_loss(out["attn_hard"], torch.log(out["attn_soft"].clamp(min=1e-12)))
    pred = out["speaker_log_f0_pred"]
    speaker_f0 = F.mse_loss(pred / log_f0_scale, speaker_log_f0 / log_f0_scale)
    ramp = min(1.0, max(0.0, (step - weights.bin_start_step) / max(1, weights.bin_warmup_steps)))
    total = (
        weights.mel * mel
        + weights.duration * duration
        + weights.pitch * pitch
        + weights.energy * energy
        + weights.align * align
        + weights.binarize * ramp * binarize
        + weights.speaker_f0 * speaker_f0
    )
    return {
        "total": total,
        "mel": mel,
        "duration": duration,
        "pitch": pitch,
        "energy": energy,
        "align": align,
        "binarize": binarize,
        "speaker_f0": speaker_f0,
    }
