"""The vocoder quality switch: ``full`` (HiFi-GAN V1), ``lite`` (ours, distilled), ``auto``.

``auto`` measures once, at start-up, how fast V1 streams here with the configured settings
(about a second of work on a slow CPU, a few milliseconds on a GPU) and takes ``lite`` when
V1's real-time factor is above ``[vocoder] auto_full_max_rtf``: V1 would not keep up in
real time with headroom for the synthesiser, the network and a second listener. It is the
default: the daemon's listeners hear real time, and on a plain CPU V1 often cannot give it
(an AVX2 EPYC: RTF 0.7-0.9, underruns at one stream). Output with no real-time deadline
(``say`` and ``embed`` write files) resolves ``auto`` to ``full`` without measuring.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch

from vcstream.audio.mel import HOP, N_MELS, SAMPLE_RATE_HZ, SILENCE_LOG_MEL
from vcstream.config import VocoderConfig
from vcstream.errors import InputError

log = logging.getLogger(__name__)

QUALITIES = ("full", "lite", "auto")
PROBE_SECONDS = 1.0  # audio vocoded to measure V1 (after a warm-up)


@dataclass(frozen=True)
class VocoderChoice:
    quality: str  # "full" or "lite": what runs
    requested: str  # what the configuration asked for
    reason: str  # why, for logs and status
    generator: torch.nn.Module
    full_rtf: float | None = None  # auto's measurement of V1, when made

    def status(self) -> dict:
        return {
            "quality": self.quality,
            "requested": self.requested,
            "reason": self.reason,
            **({"full_rtf": round(self.full_rtf, 4)} if self.full_rtf is not None else {}),
        }


def check_quality(quality: object) -> str:
    if quality not in QUALITIES:
        raise InputError(f"vocoder quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
    return str(quality)


def measure_full_rtf(generator: torch.nn.Module, cfg: VocoderConfig) -> float:
    """Real-time factor of V1 streaming ``PROBE_SECONDS`` of mel with these settings."""
    from vcstream.vocoder.streaming import StreamingVocoder

    vocoder = StreamingVocoder.from_config(generator, cfg, fast_cpu=cfg.cpu_fast)
    vocoder.warm_up()
    frames = round(PROBE_SECONDS * SAMPLE_RATE_HZ / HOP)
    mel = torch.full((N_MELS, frames), SILENCE_LOG_MEL)
    step = vocoder.chunk_frames
    t0 = time.perf_counter()
    for start in range(0, frames, step):
        vocoder.process(mel[:, start : start + step])
    vocoder.flush()
    if generator.parameters().__next__().device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (frames * HOP / SAMPLE_RATE_HZ)


def choose_vocoder(
    cfg: VocoderConfig, device: torch.device, *, realtime: bool = True
) -> VocoderChoice:
    """Load the generator that ``cfg.quality`` asks for (both, briefly, for ``auto``).
    ``realtime=False``: the audio goes to a file, so ``auto`` takes full."""
    from vcstream import weights
    from vcstream.vocoder.hifigan import HifiGanGenerator
    from vcstream.vocoder.lite import load_lite

    requested = check_quality(cfg.quality)

    def lite() -> torch.nn.Module:
        return load_lite(cfg.lite_checkpoint or None, device)

    if requested == "lite":
        return VocoderChoice("lite", requested, "configured", lite())
    full = HifiGanGenerator.from_checkpoint(weights.hifigan_checkpoint(cfg.checkpoint), device)
    if requested == "full":
        return VocoderChoice("full", requested, "configured", full)
    if not realtime:
        return VocoderChoice("full", requested, "output to a file, no real-time deadline", full)
    rtf = measure_full_rtf(full, cfg)
    limit = cfg.auto_full_max_rtf
    if rtf <= limit:
        reason = f"HiFi-GAN V1 streams at RTF {rtf:.3f} here, within {limit:.2f}: full"
        choice = VocoderChoice("full", requested, reason, full, rtf)
    else:
        reason = (
            f"HiFi-GAN V1 streams at RTF {rtf:.3f} here, above {limit:.2f} (no real-time "
            "headroom): lite"
        )
        choice = VocoderChoice("lite", requested, reason, lite(), rtf)
    log.info("vocoder quality auto: %s", reason)
    return choice
