"""Composition root: resolves the device once and builds every stage from the config.

Model loading happens here and only here (map_location, strict, eval, weight norm
removed, inference mode inside the stages).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from vcstream.config import Config
from vcstream.errors import DeviceUnavailableError, InputError
from vcstream.metrics import Metrics
from vcstream.pipeline import SpeechPipeline
from vcstream.voices import VoiceStore

log = logging.getLogger(__name__)

SYNTH_SAMPLE_RATE_HZ = 22050


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; asking for CUDA without it is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(
                "CUDA requested but not available (torch has no usable GPU here): "
                "use --device cpu or --device auto"
            )
        return torch.device("cuda")
    raise InputError(f"unknown device {name!r}: use auto, cpu or cuda")


@dataclass
class Runtime:
    """Every loaded model, shared by the CLI commands and the daemon."""

    cfg: Config
    device: torch.device
    encoder: object  # vcstream.encoder.ge2e.SpeakerEncoder
    frontend: object  # vcstream.text.g2p.TextFrontEnd
    synthesizer: object  # a vcstream.synth.base.Synthesizer
    generator: object  # HifiGanGenerator (quality full) or LiteVocoder (quality lite)
    metrics: Metrics
    vocoder_choice: object = None  # vcstream.vocoder.quality.VocoderChoice: which, and why

    @property
    def vocoder_status(self) -> dict:
        """``status.vocoder``: the quality that runs, what was asked for, and why."""
        if self.vocoder_choice is None:
            return {"quality": "full", "requested": "full", "reason": "configured"}
        return self.vocoder_choice.status()

    @property
    def encoder_name(self) -> str:
        return "ge2e-resemblyzer-0.1.4"

    def new_embedder(self):
        from vcstream.encoder.incremental import IncrementalEmbedder

        return IncrementalEmbedder(self.encoder, self.cfg.embedder)

    def new_vocoder(self):
        from vcstream.vocoder.streaming import StreamingVocoder

        return StreamingVocoder.from_config(
            self.generator, self.cfg.vocoder, fast_cpu=self.cfg.vocoder.cpu_fast
        )

    def new_pipeline(self) -> SpeechPipeline:
        return SpeechPipeline(
            self.frontend,
            self.synthesizer,
            self.new_vocoder(),
            sample_rate_hz=SYNTH_SAMPLE_RATE_HZ,
            max_text_chars=self.cfg.synth.max_text_chars,
            metrics=self.metrics,
        )

    def voice_store(self) -> VoiceStore:
        return VoiceStore(self.cfg.voices.dir or None)


def build_synthesizer(cfg: Config, device: torch.device):
    name = cfg.synth.backend
    if name == "piper":
        from vcstream.synth.piper_backend import PiperSynthesizer

        return PiperSynthesizer(threads=cfg.device.cpu_threads)
    if name == "fastpitch":
        # Ours; speaker-conditioned. Without its checkpoint (vcstream/assets/fastpitch.pt)
        # this raises ModelMissingError saying how to train one.
        from vcstream.synth.fastpitch import FastPitchSynthesizer

        return FastPitchSynthesizer(device=device, restore_spread=cfg.synth.restore_spread)
    raise InputError(f"unknown synthesiser backend {name!r} (available: piper, fastpitch)")


def build_runtime(
    cfg: Config, *, device: str | None = None, frontend=None, realtime: bool = True
) -> Runtime:
    """Every model, loaded once on the resolved device. ``realtime=False`` for output with
    no real-time deadline (files): ``[vocoder] quality = "auto"`` then takes full."""
    from vcstream import weights
    from vcstream.encoder.ge2e import SpeakerEncoder
    from vcstream.text.g2p import TextFrontEnd
    from vcstream.vocoder.quality import choose_vocoder

    dev = resolve_device(device or cfg.device.compute)
    if dev.type == "cpu" and cfg.device.cpu_threads > 0:
        torch.set_num_threads(cfg.device.cpu_threads)
    encoder = SpeakerEncoder.from_checkpoint(weights.speaker_encoder_checkpoint(), dev)
    choice = choose_vocoder(cfg.vocoder, dev, realtime=realtime)
    runtime = Runtime(
        cfg=cfg,
        device=dev,
        encoder=encoder,
        frontend=frontend or TextFrontEnd(),
        synthesizer=build_synthesizer(cfg, dev),
        generator=choice.generator,
        metrics=Metrics(),
        vocoder_choice=choice,
    )
    # The first call of a fresh generator is about twice as slow: pay it at load, not on
    # the first request.
    runtime.new_vocoder().warm_up()
    log.info(
        "models loaded on %s; synthesiser %s; vocoder %s (%s)",
        dev,
        cfg.synth.backend,
        choice.quality,
        choice.reason,
    )
    return runtime
