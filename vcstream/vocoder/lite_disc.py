"""Discriminators and GAN losses for the lite vocoder's adversarial training.

Two families, as in HiFi-GAN and Vocos/UnivNet, at a width a 2-core CPU can afford (they
only exist at training time; the shipped checkpoint holds the generator alone):

* multi-period (``PERIODS``): the waveform folded into ``[T / p, p]`` and judged by 2-D
  convolutions along time only, so each sees every p-th sample: periodic structure,
  i.e. the harmonics' phase coherence that the regression losses barely constrain;
* multi-resolution (``RESOLUTIONS``): the power-law compressed STFT magnitude judged by
  2-D convolutions over time and frequency: smearing, buzz and noise in the spectrum.

Least-squares GAN losses (real towards 1, generated towards 0) and L1 feature matching
on every layer's activations, each averaged over the discriminators so that the weights
in ``lite_train`` do not depend on how many there are.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

PERIODS = (2, 3, 5, 7, 11)
PERIOD_CHANNELS = (16, 32, 64, 64)
RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
RESOLUTION_CHANNELS = 16
COMPRESS = 0.3
LEAK = 0.1

# One discriminator's verdict: per-patch scores [B, N] and every layer's activations.
Verdict = tuple[torch.Tensor, list[torch.Tensor]]


def _conv_stack(convs: nn.ModuleList, post: nn.Module, h: torch.Tensor) -> Verdict:
    """Leaky-ReLU convolutions, then the score layer; every layer's output is a feature."""
    feats = []
    for conv in convs:
        h = F.leaky_relu(conv(h), LEAK)
        feats.append(h)
    h = post(h)
    feats.append(h)
    return h.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: tuple[int, ...] = PERIOD_CHANNELS) -> None:
        super().__init__()
        self.period = period
        widths = (1, *channels)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), padding=(2, 0)))
            for a, b in itertools.pairwise(widths)
        )
        self.convs.append(
            weight_norm(nn.Conv2d(channels[-1], channels[-1], (5, 1), padding=(2, 0)))
        )
        self.post = weight_norm(nn.Conv2d(channels[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> Verdict:
        b, n = x.shape
        rest = -n % self.period
        if rest:
            x = F.pad(x, (0, rest), mode="reflect")
        h = x.view(b, 1, -1, self.period)
        return _conv_stack(self.convs, self.post, h)


class ResolutionDiscriminator(nn.Module):
    def __init__(self, n_fft: int, hop: int, channels: int = RESOLUTION_CHANNELS) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # frequency is halved four times, from the first layer on: a wide view along it
        # at a third of the cost of UnivNet's full-resolution first layers on a CPU
        self.convs = nn.ModuleList(
            [
                *(
                    weight_norm(nn.Conv2d(a, channels, (3, 9), (1, 2), padding=(1, 4)))
                    for a in (1, channels, channels, channels)
                ),
                weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
            ]
        )
        self.post = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> Verdict:
        spec = torch.stft(x, self.n_fft, self.hop, window=self.window, return_complex=True)
        # the floor keeps the compression's gradient finite in digital silence
        h = spec.abs().clamp(min=1e-4).pow(COMPRESS).transpose(1, 2).unsqueeze(1)
        return _conv_stack(self.convs, self.post, h)


class Discriminators(nn.Module):
    """All of them: audio ``[B, L]`` to one verdict per discriminator."""

    def __init__(self) -> None:
        super().__init__()
        self.discs = nn.ModuleList(
            [PeriodDiscriminator(p) for p in PERIODS]
            + [ResolutionDiscriminator(n, h) for n, h in RESOLUTIONS]
        )

    def forward(self, x: torch.Tensor) -> list[Verdict]:
        return [d(x) for d in self.discs]


def discriminator_loss(real: list[Verdict], fake: list[Verdict]) -> torch.Tensor:
    """Least squares: real verdicts towards 1, generated ones towards 0."""
    terms = [
        torch.mean((1 - r) ** 2) + torch.mean(f**2)
        for (r, _), (f, _) in zip(real, fake, strict=True)
    ]
    return torch.stack(terms).mean()


def generator_loss(fake: list[Verdict]) -> torch.Tensor:
    """Least squares: the generator wants its verdicts at 1."""
    return torch.stack([torch.mean((1 - f) ** 2) for f, _ in fake]).mean()


def feature_matching_loss(real: list[Verdict], fake: list[Verdict]) -> torch.Tensor:
    """L1 between the activations the discriminators show for V1's audio and for ours."""
    terms = [
        torch.stack([F.l1_loss(b, a.detach()) for a, b in zip(fr, ff, strict=True)]).mean()
        for (_, fr), (_, ff) in zip(real, fake, strict=True)
    ]
    return torch.stack(terms).mean()
