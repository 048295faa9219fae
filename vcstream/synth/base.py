"""The synthesiser contract shared by every backend."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class SynthControls:
    """Prosody controls; 1.0 / 0.0 mean 'as predicted'."""

    speed: float = 1.0
    pitch_shift_semitones: float = 0.0
    energy_scale: float = 1.0


@dataclass(frozen=True, eq=False)
class AdaptedParams:
    """Parameters fine-tuned to one speaker (``vcstream.adapt``): they replace the model's
    own parameters of the same names while that voice speaks, for that request only.

    ``checkpoint_id`` names the checkpoint they were tuned from; a synthesiser over any
    other checkpoint refuses them (another model's parameters would be a wrong voice, not
    an error one hears). ``key`` identifies the contents (a hash), for caching.
    """

    checkpoint_id: str
    params: Mapping[str, torch.Tensor]
    key: str


@dataclass(frozen=True)
class VoiceConditioning:
    """What a synthesiser may condition on: the GE2E embedding and live pitch statistics,
    and optionally parameters adapted to the voice and the spread of its spectral detail."""

    embedding: np.ndarray | None = None  # shape (256,), L2-normalised
    log_f0_mean: float | None = None  # natural log of Hz
    log_f0_std: float | None = None
    adapted: AdaptedParams | None = None
    # (variance.N_COEFFS,): standard deviations of the speaker's log-mel cepstra
    # variance.LOW..HIGH-1 (``synth.variance.cepstral_std``); None: the synthesiser's own
    cepstral_std: np.ndarray | None = None


@runtime_checkable
class Synthesizer(Protocol):
    """Phonemes (symbols of the espeak-ng IPA inventory) plus voice in, log-mel chunks out.

    Each yielded tensor is ``[80, n_frames]`` in the HiFi-GAN mel convention
    (``vcstream.audio.mel``), on the synthesiser's device. Concatenated, the chunks form the
    sentence's mel; a backend yields its first chunk as early as it can.
    """

    name: str
    clones: bool  # False for backends that ignore the speaker embedding
    # Spoken for a voice without an embedding (nothing heard yet); None: no such voice
    default_voice_name: str | None

    def synthesize(
        self,
        phonemes: Sequence[str],
        voice: VoiceConditioning,
        controls: SynthControls,
    ) -> Iterator[torch.Tensor]: ...
