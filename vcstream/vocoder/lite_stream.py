"""Stateful streaming of the lite vocoder: every layer carries its own history.

Like ``stateful.py`` for V1: each convolution keeps the tail of its input between calls, a
residual sum waits until both of its inputs reach a frame, and the inverse STFT keeps its
overlap-add accumulator. Every frame of every layer is computed once, so the concatenated
output equals the whole-utterance ``LiteVocoder.forward`` to float rounding, whatever the
pieces. A frame's audio is final once ``lookahead_frames`` more frames have arrived.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from vcstream.audio.mel import HOP
from vcstream.vocoder.lite import (
    FRAME_OFFSET,
    WSS_FLOOR,
    ConvNeXtBlock,
    LiteVocoder,
    overlap_add_raw,
)


class _Conv:
    """A ``Conv1d`` padded ``(left, right)``: keeps the last ``kernel - 1`` inputs."""

    def __init__(self, conv: torch.nn.Conv1d, pads: tuple[int, int]) -> None:
        self.conv = conv
        self.left, self.right = pads
        self.span = conv.kernel_size[0]
        self.reset()

    def reset(self) -> None:
        w = self.conv.weight
        channels = w.shape[1] * self.conv.groups
        self.buf = w.new_zeros(1, channels, self.left)  # the utterance's own zero padding

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        buf = torch.cat((self.buf, x), 2)
        if final:
            buf = F.pad(buf, (0, self.right))
        n = buf.shape[2] - self.span + 1
        if n <= 0:
            self.buf = buf
            return buf.new_zeros(1, self.conv.out_channels, 0)
        self.buf = buf[:, :, n:]
        return self.conv(buf)


class _Block:
    """A ConvNeXt block: its input is held until the convolution's output reaches it."""

    def __init__(self, block: ConvNeXtBlock) -> None:
        self.block = block
        self.conv = _Conv(block.dwconv, block.pads)
        self.reset()

    def reset(self) -> None:
        self.conv.reset()
        self.skip: torch.Tensor | None = None

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        h = self.conv.push(x, final)
        skip = x if self.skip is None else torch.cat((self.skip, x), 2)
        n = h.shape[2]
        self.skip = skip[:, :, n:]
        return skip[:, :, :n] + self.block.mlp(h)


class StatefulLite:
    """Push mel frames in any pieces; get back every audio sample that is final.

    Over one utterance, ``push`` calls ending with ``final=True`` return ``hop`` samples per
    frame, equal to ``model(mel)`` of the whole utterance to float rounding.
    """

    def __init__(self, model: LiteVocoder) -> None:
        self.model = model
        self.hop = HOP
        self.lookahead_frames = model.lookahead_frames
        self.lookahead_samples = self.lookahead_frames * HOP
        self.embed = _Conv(model.embed, model.embed_pads)
        self.blocks = [_Block(b) for b in model.blocks]
        self.reset()

    def reset(self) -> None:
        self.embed.reset()
        for b in self.blocks:
            b.reset()
        w = self.model.window
        self.acc = w.new_zeros(1, 0)  # overlap-add sums from padded sample self.base on
        self.wss = w.new_zeros(1, 0)
        self.base = 0  # padded sample index of acc[0] (padded = original + FRAME_OFFSET)
        self.frames = 0  # STFT frames added so far
        self.emitted = 0  # original samples returned so far

    def push(self, mel: torch.Tensor, final: bool = False) -> torch.Tensor:
        """``mel [1, 80, n]`` (n may be 0) to float32 audio ``[m]``; ``final`` ends the
        utterance (call ``reset`` before the next one)."""
        m = self.model
        x = m.frame_norm(self.embed.push(mel.float(), final), m.norm_in)
        for block in self.blocks:
            x = block.push(x, final)
        if x.shape[2]:
            self._add(m.frames(m.spectrum(x)))
        if final:
            return self._take(self.frames * HOP)
        # Padded samples below frames * HOP have every window they will ever get; hand out
        # whole hops of them.
        return self._take(max(0, (self.frames * HOP - FRAME_OFFSET) // HOP * HOP))

    def _add(self, frames: torch.Tensor) -> None:
        audio, wss = overlap_add_raw(frames, self.model.window)
        start = self.frames * HOP - self.base  # where these frames begin in acc
        need = start + audio.shape[1]
        if need > self.acc.shape[1]:
            self.acc = F.pad(self.acc, (0, need - self.acc.shape[1]))
            self.wss = F.pad(self.wss, (0, need - self.wss.shape[1]))
        self.acc[:, start:need] += audio
        self.wss[:, start:need] += wss
        self.frames += frames.shape[2]

    def _take(self, end: int) -> torch.Tensor:
        """Original samples ``emitted .. end``, normalised; drop them from the accumulator."""
        lo = self.emitted + FRAME_OFFSET - self.base
        hi = end + FRAME_OFFSET - self.base
        if end <= self.emitted:
            return self.acc.new_zeros(0)
        out = self.acc[0, lo:hi] / self.wss[0, lo:hi].clamp(min=WSS_FLOOR)
        self.acc, self.wss = self.acc[:, hi:], self.wss[:, hi:]
        self.base += hi
        self.emitted = end
        return out
