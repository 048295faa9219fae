"""The lite vocoder: a small frame-rate model of our own, distilled from HiFi-GAN V1.

Vocos-style (Siuzdenko et al. 2023): the network never runs at the audio rate. A stack of
ConvNeXt-1D blocks works on the 80-band log-mel at its own rate (one frame per 256
samples) and predicts, per frame, the log-magnitude and phase of a 1024-point STFT; an
inverse STFT (Hann window, hop 256, overlap-add) makes the waveform. It takes exactly the
mel of ``vcstream.audio.mel`` and gives 256 samples per frame, like V1, at a few percent of
V1's multiply-adds.

The convolutions are padded mostly on the left (``right_pad`` frames of lookahead each), so
that the model needs few future frames: ``lookahead_frames`` in all, the inverse STFT's 2
included. ``vcstream.vocoder.lite_stream`` streams it with every layer's history carried.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from vcstream import weights
from vcstream.audio.mel import HOP, N_MELS
from vcstream.errors import ModelMissingError

N_FFT = 1024
N_BINS = N_FFT // 2 + 1
# Frame t of the mel is centred on sample t * HOP + HOP / 2, so its STFT window starts
# (N_FFT - HOP) / 2 samples before the frame's own HOP samples.
FRAME_OFFSET = (N_FFT - HOP) // 2
# Output samples of one frame depend on the next ISTFT_LOOKAHEAD frames' windows.
ISTFT_LOOKAHEAD = -(-(N_FFT - HOP - FRAME_OFFSET) // HOP)
MAX_LOG_MAG = 6.0  # exp(6) = 403: far above any speech STFT bin, keeps early training finite
CHECKPOINT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "vocoder_lite.pt"
TEACHER = "hifigan-v1-universal"


@dataclass(frozen=True)
class LiteConfig:
    dim: int = 256
    intermediate: int = 768
    layers: int = 6
    kernel: int = 7
    right_pad: int = 1  # lookahead frames of each ConvNeXt block's depthwise convolution
    embed_kernel: int = 7
    embed_right_pad: int = 2

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LiteConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ModelMissingError(f"lite vocoder config has unknown keys {sorted(unknown)}")
        return cls(**{k: int(v) for k, v in data.items()})


class ConvNeXtBlock(nn.Module):
    """Depthwise convolution, LayerNorm, pointwise MLP, layer scale, residual."""

    def __init__(self, cfg: LiteConfig) -> None:
        super().__init__()
        self.pads = (cfg.kernel - 1 - cfg.right_pad, cfg.right_pad)
        self.dwconv = nn.Conv1d(cfg.dim, cfg.dim, cfg.kernel, groups=cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.pw1 = nn.Linear(cfg.dim, cfg.intermediate)
        self.pw2 = nn.Linear(cfg.intermediate, cfg.dim)
        self.gamma = nn.Parameter(torch.full((cfg.dim,), 1.0 / cfg.layers))

    def mlp(self, h: torch.Tensor) -> torch.Tensor:
        """The per-frame part, on the convolution's output ``[B, dim, T]``."""
        y = self.pw2(F.gelu(self.pw1(self.norm(h.transpose(1, 2)))))
        return (y * self.gamma).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.dwconv(F.pad(x, self.pads)))


class LiteVocoder(nn.Module):
    """Log-mel ``[B, 80, T]`` (or ``[80, T]``) to audio ``[B, T * 256]`` (or ``[T * 256]``)."""

    def __init__(self, config: LiteConfig | None = None) -> None:
        super().__init__()
        cfg = config or LiteConfig()
        if not 0 <= cfg.right_pad < cfg.kernel or not 0 <= cfg.embed_right_pad < cfg.embed_kernel:
            raise ModelMissingError(f"lite vocoder config {cfg}: padding outside the kernel")
        self.config = cfg
        self.hop = HOP
        self.embed_pads = (cfg.embed_kernel - 1 - cfg.embed_right_pad, cfg.embed_right_pad)
        self.embed = nn.Conv1d(N_MELS, cfg.dim, cfg.embed_kernel)
        self.norm_in = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg) for _ in range(cfg.layers))
        self.norm_out = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, 2 * N_BINS)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    @property
    def lookahead_frames(self) -> int:
        """Mel frames after a frame that its audio depends on."""
        cfg = self.config
        return cfg.embed_right_pad + cfg.layers * cfg.right_pad + ISTFT_LOOKAHEAD

    def frame_norm(self, x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
        return norm(x.transpose(1, 2)).transpose(1, 2)

    def spectrum(self, h: torch.Tensor) -> torch.Tensor:
        """Final features ``[B, dim, T]`` to complex STFT frames ``[B, 513, T]``."""
        out = self.head(self.norm_out(h.transpose(1, 2))).transpose(1, 2).float()
        log_mag, phase = out[:, :N_BINS], out[:, N_BINS:]
        mag = torch.exp(log_mag.clamp(max=MAX_LOG_MAG))
        return torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))

    def frames(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex STFT frames to windowed time frames ``[B, N_FFT, T]``."""
        return torch.fft.irfft(spec, n=N_FFT, dim=1) * self.window[:, None]

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.frame_norm(self.embed(F.pad(mel, self.embed_pads)), self.norm_in)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        unbatched = mel.dim() == 2
        x = mel.unsqueeze(0) if unbatched else mel
        frames = self.frames(self.spectrum(self.features(x.float())))
        audio = overlap_add(frames, self.window)
        return audio.squeeze(0) if unbatched else audio


def overlap_add(frames: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Windowed frames ``[B, N_FFT, T]`` to ``[B, T * HOP]`` samples, divided by the sum of
    squared windows that reached each sample (exact at the utterance's edges too)."""
    audio, wss = overlap_add_raw(frames, window)
    t = frames.shape[2]
    audio = audio / wss.clamp(min=WSS_FLOOR)
    return audio[:, FRAME_OFFSET : FRAME_OFFSET + t * HOP]


WSS_FLOOR = 1e-3
_SEGMENTS = N_FFT // HOP


def overlap_add_raw(
    frames: torch.Tensor, window: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Overlap-add of ``[B, N_FFT, T]`` frames, and of their squared windows: ``[B, L]`` and
    ``[1, L]`` with ``L = (T + 3) * HOP``, sample 0 being the first frame's first sample.

    A frame spans 4 hops: hop block ``j`` of the output sums quarter ``q`` of frame
    ``j - q``, so four shifted additions do it (``F.fold`` is 5-10x slower on a CPU)."""
    b, _, t = frames.shape
    quarters = frames.reshape(b, _SEGMENTS, HOP, t)
    w2 = window.pow(2).reshape(_SEGMENTS, HOP, 1).expand(_SEGMENTS, HOP, t)
    out = sum(F.pad(quarters[:, q], (q, _SEGMENTS - 1 - q)) for q in range(_SEGMENTS))
    wss = sum(F.pad(w2[q], (q, _SEGMENTS - 1 - q)) for q in range(_SEGMENTS))
    return out.transpose(1, 2).reshape(b, -1), wss.transpose(0, 1).reshape(1, -1)


def checkpoint_payload(model: LiteVocoder, step: int, *, half: bool = True) -> dict[str, Any]:
    """What ``load_lite`` reads: float16 weights (the file stays under 10 MB)."""
    state = {k: (v.half() if half else v).detach().cpu() for k, v in model.state_dict().items()}
    return {
        "version": CHECKPOINT_VERSION,
        "kind": "vcstream-lite-vocoder",
        "config": asdict(model.config),
        "model": state,
        "step": int(step),
        "teacher": TEACHER,
    }


def load_lite(path: str | Path | None = None, device: str | torch.device = "cpu") -> LiteVocoder:
    """The lite vocoder of a checkpoint (default: the shipped one), strictly, in ``eval``."""
    p = Path(path) if path is not None else DEFAULT_CHECKPOINT
    ckpt = weights.read_checkpoint(
        p,
        "lite vocoder checkpoint",
        "the shipped one is vcstream/assets/vocoder_lite.pt; train one with "
        "`vcstream train-vocoder` and export it with --export",
    )
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "vcstream-lite-vocoder":
        raise ModelMissingError(f"{p} is not a lite vocoder checkpoint (no kind marker)")
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ModelMissingError(
            f"{p}: lite vocoder checkpoint version {ckpt.get('version')}, this code reads "
            f"{CHECKPOINT_VERSION}"
        )
    if not isinstance(ckpt.get("config"), dict) or not isinstance(ckpt.get("model"), dict):
        raise ModelMissingError(f"{p}: lite vocoder checkpoint has no config or model")
    model = LiteVocoder(LiteConfig.from_dict(ckpt["config"]))
    try:
        model.load_state_dict({k: v.float() for k, v in ckpt["model"].items()}, strict=True)
    except (RuntimeError, AttributeError) as err:
        first = str(err).splitlines()[0]
        raise ModelMissingError(f"{p} does not fit the lite vocoder: {first}") from err
    model.step = int(ckpt.get("step", 0))
    return model.to(device).eval()
