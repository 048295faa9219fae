"""The GE2E speaker encoder network and its checkpoint loader.

Architecture of Real-Time-Voice-Cloning's encoder (and Resemblyzer's copy of it): a
3-layer LSTM over 40-band power mel frames, 256 hidden units; the last layer's final
hidden state goes through Linear 256->256 and ReLU and is L2-normalised.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from vcstream.encoder.frontend import N_MELS
from vcstream.errors import DeviceUnavailableError, ModelMissingError
from vcstream.weights import read_checkpoint, speaker_encoder_checkpoint

HIDDEN = 256
EMBEDDING_SIZE = 256
LAYERS = 3
# Parameters of the GE2E training loss (the similarity matrix's scale and offset), stored in
# RTVC checkpoints beside the network; inference does not use them.
TRAINING_ONLY_KEYS = frozenset({"similarity_weight", "similarity_bias"})


class SpeakerEncoder(nn.Module):
    """Mel partials ``[B, T, 40]`` to L2-normalised embeddings ``[B, 256]``."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, EMBEDDING_SIZE)
        self.relu = nn.ReLU()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    @property
    def device(self) -> torch.device:
        return self.linear.weight.device

    def embed_partials(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings ``[B, 256]`` (float32, numpy) of mel partials ``[B, T, 40]``."""
        x = torch.as_tensor(np.ascontiguousarray(mels, dtype=np.float32), device=self.device)
        with torch.inference_mode():
            return self(x).cpu().numpy()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> SpeakerEncoder:
        """Load RTVC's ``encoder.pt`` / Resemblyzer's ``pretrained.pt``, or a bare state dict.

        ``path=None`` reads ``pretrained.pt`` from the installed ``resemblyzer`` wheel.
        The checkpoint format is ``{"step", "model_state", "optimizer_state"}``; only the
        GE2E loss parameters are dropped, every other key must match exactly.
        """
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise DeviceUnavailableError(f"speaker encoder: device {dev} requested, CUDA is absent")
        p = speaker_encoder_checkpoint() if path is None else Path(path)
        ckpt = read_checkpoint(
            p,
            "speaker-encoder checkpoint",
            "the default comes from `pip install --no-deps resemblyzer==0.1.4`",
        )
        state = ckpt.get("model_state", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
            raise ModelMissingError(
                f"speaker-encoder checkpoint {p} holds no state dict "
                "(expected RTVC's {'model_state': ...} or a bare state dict)"
            )
        state = {k: v for k, v in state.items() if k not in TRAINING_ONLY_KEYS}
        model = cls()
        missing, unexpected = _key_mismatch(model.state_dict().keys(), state.keys())
        if missing or unexpected:
            raise ModelMissingError(
                f"speaker-encoder checkpoint {p} does not fit the GE2E network: "
                f"missing {missing[:4]}, unexpected {unexpected[:4]}"
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:  # shapes differ
            raise ModelMissingError(
                f"speaker-encoder checkpoint {p} does not fit the GE2E network "
                f"({str(err).strip().splitlines()[-1].strip()})"
            ) from err
        return model.to(dev).eval()


def _key_mismatch(expected, found) -> tuple[list[str], list[str]]:
    exp, got = set(expected), set(found)
    return sorted(exp - got), sorted(got - exp)
