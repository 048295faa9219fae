"""An adapted voice: the fine-tuned parameters, the conditioning they were tuned with,
and how they were made; and its JSON form for voice profiles (tagged with the checkpoint,
checked on reading)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vcstream.errors import InputError
from vcstream.synth.base import AdaptedParams, VoiceConditioning
from vcstream.synth.variance import check_cepstral_std

FORMAT = "vcstream-adapted"
VERSION = 1


def params_key(params: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(params):
        h.update(name.encode())
        h.update(params[name].detach().to(torch.float16).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class AdaptedVoice:
    """What ``adapt`` returns; ``conditioning()`` speaks with it through any pipeline."""

    params: dict[str, torch.Tensor]  # parameter name -> adapted value (float32)
    embedding: np.ndarray  # (256,) GE2E embedding of the recordings
    log_f0_mean: float | None
    log_f0_std: float | None
    checkpoint_id: str  # checkpoint the parameters belong to (FastPitchSynthesizer's)
    plan: str  # which parameters were tuned (see vcstream.adapt.tune.PLANS)
    seconds: float  # speech used (after trimming and leaving out unsure pieces)
    utterances: int
    steps: int  # optimiser steps of the kept parameters
    held_out_loss_before: float  # mel loss on held-out frames, zero-shot
    held_out_loss: float  # ... with the kept parameters
    wall_s: float  # the whole adaptation: transcription, features, tuning
    transcripts: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    # GE2E cosine of speech synthesised from new sentences to the recordings' embedding,
    # zero-shot and adapted; None when no vocoder was given to measure it.
    similarity_before: float | None = None
    similarity: float | None = None
    # What chose the kept parameters: "similarity" (the vocoded probe's GE2E cosine to the
    # recordings, ``adapt.probe``) or "held-out loss"; the probe's vocoder ("v1" or
    # "lite", ``probe.choose_probe_vocoder``; None without a probe) and its figures.
    selected_by: str = "held-out loss"
    probe_vocoder: str | None = None
    probe_similarity_before: float | None = None
    probe_similarity: float | None = None
    # The speaker's tempo taken with the parameters (``Tuner.prosody_offsets``): "duration"
    # in log(1 + frames) per symbol, added to the duration predictor's (0.69: twice as slow).
    prosody_offsets: dict[str, float] = field(default_factory=dict)
    # The spread of the speaker's spectral detail, measured on the recordings used
    # (``synth.variance``): restored in what the voice speaks. None: the synthesiser's own.
    cepstral_std: np.ndarray | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            self.key = params_key(self.params)

    @property
    def n_parameters(self) -> int:
        return sum(int(v.numel()) for v in self.params.values())

    def adapted_params(self) -> AdaptedParams:
        return AdaptedParams(self.checkpoint_id, self.params, self.key)

    def conditioning(self) -> VoiceConditioning:
        return VoiceConditioning(
            np.asarray(self.embedding, np.float32),
            self.log_f0_mean,
            self.log_f0_std,
            self.adapted_params(),
            self.cepstral_std,
        )

    def metadata(self) -> dict[str, Any]:
        """Everything but the parameters and the embedding (for status, events, reports)."""
        return {
            "checkpoint": self.checkpoint_id,
            "plan": self.plan,
            "parameters": self.n_parameters,
            "seconds": round(self.seconds, 2),
            "utterances": self.utterances,
            "steps": self.steps,
            "held_out_loss_before": round(self.held_out_loss_before, 4),
            "held_out_loss": round(self.held_out_loss, 4),
            "wall_s": round(self.wall_s, 2),
            "similarity_before": _round(self.similarity_before),
            "similarity": _round(self.similarity),
            "selected_by": self.selected_by,
            "probe_vocoder": self.probe_vocoder,
            "probe_similarity_before": _round(self.probe_similarity_before),
            "probe_similarity": _round(self.probe_similarity),
            "prosody_offsets": {k: round(float(v), 4) for k, v in self.prosody_offsets.items()},
            "transcripts": list(self.transcripts),
            "dropped": list(self.dropped),
        }

    # ---- stored form ---------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """JSON-ready form: parameters as float16 bytes (base64), with a digest of them."""
        params = {}
        for name in sorted(self.params):
            arr = self.params[name].detach().to(torch.float16).cpu().numpy()
            params[name] = {
                "shape": list(arr.shape),
                "float16": base64.b64encode(arr.tobytes()).decode("ascii"),
            }
        return {
            "format": FORMAT,
            "version": VERSION,
            **self.metadata(),
            "key": self.key,
            "embedding": [float(x) for x in self.embedding],
            "log_f0_mean": self.log_f0_mean,
            "log_f0_std": self.log_f0_std,
            "cepstral_std": None
            if self.cepstral_std is None
            else [round(float(x), 5) for x in self.cepstral_std],
            "params": params,
        }

    @classmethod
    def from_json(cls, data: Any) -> AdaptedVoice:
        """Read ``to_json``'s form back; anything missing, damaged or altered is an
        ``InputError`` (never parameters that are not the ones written)."""
        try:
            if data.get("format") != FORMAT or data.get("version") != VERSION:
                raise ValueError(f"not {FORMAT} version {VERSION}")
            params = {}
            for name, p in data["params"].items():
                raw = base64.b64decode(p["float16"], validate=True)
                arr = np.frombuffer(raw, dtype=np.float16).reshape(p["shape"])
                if not np.all(np.isfinite(arr)):
                    raise ValueError(f"parameter {name} holds non-finite values")
                params[name] = torch.from_numpy(arr.astype(np.float32))
            emb = np.asarray(data["embedding"], dtype=np.float32)
            if emb.shape != (256,) or not np.all(np.isfinite(emb)):
                raise ValueError("embedding must be 256 finite numbers")
            prosody = {str(k): float(v) for k, v in data.get("prosody_offsets", {}).items()}
            if not all(np.isfinite(v) for v in prosody.values()):
                raise ValueError("prosody offsets must be finite numbers")
            spread = data.get("cepstral_std")
            if spread is not None:
                spread = check_cepstral_std(spread)
            key = str(data["key"])
            if params_key(params) != key:
                raise ValueError("its parameters do not match their digest (altered or torn)")
            return cls(
                params=params,
                embedding=emb,
                log_f0_mean=data["log_f0_mean"],
                log_f0_std=data["log_f0_std"],
                checkpoint_id=str(data["checkpoint"]),
                plan=str(data["plan"]),
                seconds=float(data["seconds"]),
                utterances=int(data["utterances"]),
                steps=int(data["steps"]),
                held_out_loss_before=float(data["held_out_loss_before"]),
                held_out_loss=float(data["held_out_loss"]),
                wall_s=float(data["wall_s"]),
                transcripts=list(data.get("transcripts", [])),
                dropped=list(data.get("dropped", [])),
                similarity_before=data.get("similarity_before"),
                similarity=data.get("similarity"),
                selected_by=str(data.get("selected_by", "held-out loss")),
                probe_vocoder=_optional_str(data.get("probe_vocoder")),
                probe_similarity_before=data.get("probe_similarity_before"),
                probe_similarity=data.get("probe_similarity"),
                prosody_offsets=prosody,
                cepstral_std=spread,
                key=key,
            )
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise InputError(f"adapted parameters are unreadable: {err}") from err


def _round(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _optional_str(x: object) -> str | None:
    if x is not None and not isinstance(x, str):
        raise ValueError(f"expected a string or null, got {type(x).__name__}")
    return x
