"""Stateful streaming of the HiFi-GAN generator: every layer keeps its own history.

The windowed method (``StreamingVocoder`` with ``method="window"``) recomputes its left and
right context for every chunk; for V1 that context must be about 12 frames on each side,
which on a CPU costs 40-75 % extra. Here instead each convolution keeps the tail of its
input from the previous call, so every sample of every layer is computed exactly once, in
the same arithmetic as the whole-utterance forward pass. Output therefore matches the
whole-utterance output to float rounding, with no context settings to tune; the price is
a fixed lookahead (``HifiGanGenerator.lookahead_samples``, 12.7 frames for V1) and many
small operations per call, which suits a CPU better than a GPU.

Streams are index-aligned from the start of the utterance. A layer emits the outputs whose
inputs it has all seen; a residual sum waits until both of its inputs have reached a sample.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vcstream.vocoder.hifigan import LRELU_SLOPE, LRELU_SLOPE_POST, HifiGanGenerator, ResBlock1


def _empty(like: torch.Tensor, channels: int) -> torch.Tensor:
    return like.new_zeros(1, channels, 0)


class _Conv:
    """A same-padded ``Conv1d``: keeps the last ``span - 1`` inputs between calls."""

    def __init__(self, conv: nn.Conv1d) -> None:
        self.weight, self.bias = conv.weight, conv.bias
        self.dilation = conv.dilation[0]
        self.pad = conv.padding[0]
        self.span = (conv.kernel_size[0] - 1) * self.dilation + 1
        self.reset()

    def reset(self) -> None:
        # the utterance starts with the convolution's own zero padding
        self.buf = self.weight.new_zeros(1, self.weight.shape[1], self.pad)

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        buf = torch.cat((self.buf, x), 2) if x.shape[2] else self.buf
        if final:
            buf = F.pad(buf, (0, self.pad))
        n = buf.shape[2] - self.span + 1
        if n <= 0:
            self.buf = buf
            return _empty(buf, self.weight.shape[0])
        self.buf = buf[:, :, n:]
        return F.conv1d(buf, self.weight, self.bias, dilation=self.dilation)


class _ConvTranspose:
    """A ``ConvTranspose1d`` with padding ``(k - u) / 2``: keeps the inputs that still
    contribute to outputs not yet emitted (one, for the V1 shapes)."""

    def __init__(self, conv: nn.ConvTranspose1d) -> None:
        self.weight, self.bias = conv.weight, conv.bias
        self.stride = conv.stride[0]
        self.kernel = conv.kernel_size[0]
        self.crop = conv.padding[0]
        self.keep = -(-(self.kernel - self.stride) // self.stride)
        self.reset()

    def reset(self) -> None:
        self.hist = self.weight.new_zeros(1, self.weight.shape[0], 0)
        self.n_in = 0
        self.done = self.crop  # next output to emit, in uncropped coordinates

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        inp = torch.cat((self.hist, x), 2) if x.shape[2] else self.hist
        first = self.n_in - self.hist.shape[2]  # input index of inp[..., 0]
        self.n_in += x.shape[2]
        # Output o is complete once input o // stride has arrived; at the end, the crop
        # on the right is all that is left.
        end = self.n_in * self.stride + (self.crop if final else 0)
        self.hist = inp[:, :, max(0, inp.shape[2] - self.keep) :]
        if end <= self.done or inp.shape[2] == 0:
            return _empty(inp, self.weight.shape[1])
        full = F.conv_transpose1d(inp, self.weight, self.bias, stride=self.stride)
        out = full[:, :, self.done - first * self.stride : end - first * self.stride]
        self.done = end
        return out


class _Sum:
    """Adds index-aligned streams that arrive at different times."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.reset()

    def reset(self) -> None:
        self.bufs: list[torch.Tensor | None] = [None] * self.n

    def push(self, xs: list[torch.Tensor]) -> torch.Tensor:
        bufs = [
            x if b is None else torch.cat((b, x), 2) for b, x in zip(self.bufs, xs, strict=True)
        ]
        m = min(b.shape[2] for b in bufs)
        out = bufs[0][:, :, :m]
        for b in bufs[1:]:
            out = out + b[:, :, :m]
        self.bufs = [b[:, :, m:] for b in bufs]
        return out


class _ResBlock:
    def __init__(self, block: ResBlock1) -> None:
        self.c1 = [_Conv(c) for c in block.convs1]
        self.c2 = [_Conv(c) for c in block.convs2]
        self.sums = [_Sum(2) for _ in self.c1]

    def parts(self) -> list:
        return [*self.c1, *self.c2, *self.sums]

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        for c1, c2, add in zip(self.c1, self.c2, self.sums, strict=True):
            y = c1.push(F.leaky_relu(x, LRELU_SLOPE), final)
            y = c2.push(F.leaky_relu(y, LRELU_SLOPE), final)
            x = add.push([x, y])
        return x


class StatefulGenerator:
    """Push mel frames in any pieces; get back every audio sample that is final.

    Over one utterance, the concatenated output equals ``generator(mel)`` of the whole
    utterance, ``hop`` samples per frame, once ``push(..., final=True)`` has been called.
    """

    def __init__(self, generator: HifiGanGenerator) -> None:
        self.generator = generator
        self.hop = generator.hop
        self.lookahead_samples = generator.lookahead_samples()
        self.k = generator.num_kernels
        self.pre = _Conv(generator.conv_pre)
        self.ups = [_ConvTranspose(u) for u in generator.ups]
        self.blocks = [_ResBlock(b) for b in generator.resblocks]
        self.sums = [_Sum(self.k) for _ in self.ups]
        self.post = _Conv(generator.conv_post)
        self._parts = [self.pre, *self.ups, *self.sums, self.post]
        self._parts += [p for b in self.blocks for p in b.parts()]

    def reset(self) -> None:
        for part in self._parts:
            part.reset()

    def push(self, mel: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``mel [1, 80, n]`` (n may be 0) to float32 audio ``[m]``; ``final`` ends the
        utterance (and the next push starts a new one only after ``reset``)."""
        x = self.pre.push(mel.to(self.pre.weight.dtype), final)
        for i, up in enumerate(self.ups):
            x = up.push(F.leaky_relu(x.to(up.weight.dtype), LRELU_SLOPE), final)
            branches = [b.push(x, final) for b in self.blocks[i * self.k : (i + 1) * self.k]]
            x = self.sums[i].push(branches) / self.k
        x = self.post.push(F.leaky_relu(x.to(self.post.weight.dtype), LRELU_SLOPE_POST), final)
        return torch.tanh(x)[0, 0].float()
