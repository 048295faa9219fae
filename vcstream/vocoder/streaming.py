"""Chunked, streaming vocoding: mel frames in as they come, finished audio out.

The generator is non-causal with a finite reach (+-12.7 frames for V1), so an output frame
is final once enough mel frames on both sides of it are known. Two methods:

* ``"window"`` (the constructor's default; the GPU path): each chunk of ``chunk_frames``
  frames is vocoded inside a window that adds ``left_context_frames`` before it (carried
  over from earlier input) and ``right_context_frames`` after it (lookahead: the chunk
  waits for them), and only the chunk's own samples are kept. Measured on speech, chunked
  vs whole-utterance output: 12 + 12 frames of context, -93 to -104 dB for chunks of 8 to
  64 frames; 11 + 12, -48 to -74 dB; 11 + 11, -37 to -62 dB; 10 + 10, -19 to -46 dB.
  Windows have fixed shapes; on CUDA the mel window and the audio staging buffer are
  preallocated on the GPU, with a pinned host buffer for the copy out.
* ``"stateful"`` (the CPU path, ``from_config``): every convolution keeps its own history
  (``vcstream.vocoder.stateful``), so no context is recomputed; output equals the
  whole-utterance output to float rounding (-99 dB) whatever the chunk size, and the
  context settings do not apply (the lookahead is the generator's own, 13 frames). On one
  CPU thread it costs what the whole-utterance pass costs, where 12 + 12 frames of window
  context cost 1.3x (48-frame chunks) to 2x (16-frame chunks) more.

``precision="mixed"`` runs the three heavy upsampling stages in bfloat16
(``HifiGanGenerator.mixed_precision``), about 1.6x faster on a CPU with native bfloat16
(AVX512-BF16, AMX). Its quality cost, measured on speech against float32: the waveform
differs by -22 to -32 dB (mostly phase), while the log-spectral distance to the input mel
changes by less than 0.01 dB. ``fast_cpu=True`` selects the reduced-quality CPU mode:
stateful + mixed.

The lite vocoder (``LiteVocoder``, quality ``"lite"``) streams only statefully, in float32,
on any device (``vcstream.vocoder.lite_stream``); its chunk sizes are the ``lite_*`` settings.

The first chunk of an utterance may be smaller (``first_chunk_frames``) so that audio
leaves early. With the stateful method the chunks after it grow by at most ``chunk_growth``
each up to ``chunk_frames``: a vocoder running at a real-time factor r needs r x the next
chunk's length to make it, while only what is already out plays, so a jump from a small
first chunk to a full one underruns whenever r > first / chunk (measured: the full path at
r 0.75 and the lite one with three daemons on two cores did). Chunks growing geometrically
by g never underrun while r <= 1 / g: V1 on a CPU (r 0.7-0.9) grows by 1.25 (16, 20, 25,
31, 32), the lite vocoder (r 0.04-0.2, many daemons sharing the cores) by 2 (4, 8, 16, 24):
each chunk costs a fixed overhead, and on a 1 s utterance 1.25 made the lite vocoder 1.6x
dearer than 2 did (61 against 44 ms per audio second, measured). Windows (the GPU path)
keep two fixed shapes. ``chunks`` yields each chunk's audio as soon as it is vocoded
(``process`` is the same, joined). Nothing is normalised per chunk. Over an utterance,
``process`` calls plus ``flush`` return exactly ``hop`` (256) samples per mel frame received.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from functools import cache

import numpy as np
import torch

from vcstream.audio.mel import N_MELS, SILENCE_LOG_MEL
from vcstream.config import VocoderConfig
from vcstream.errors import InputError
from vcstream.vocoder.hifigan import HifiGanGenerator
from vcstream.vocoder.lite import LiteVocoder
from vcstream.vocoder.lite_stream import StatefulLite
from vcstream.vocoder.stateful import StatefulGenerator

log = logging.getLogger(__name__)

METHODS = ("window", "stateful")
PRECISIONS = ("float32", "mixed")
_MAX_FRAMES = 4096  # per setting: far beyond any sensible chunk (47 s of audio)
_MAX_GROWTH = 64.0


def _frames(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"vocoder: {name} must be an integer number of mel frames, got {value!r}")
    if not minimum <= value <= _MAX_FRAMES:
        raise InputError(
            f"vocoder: {name} must be between {minimum} and {_MAX_FRAMES}, got {value}"
        )
    return value


def _growth(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"vocoder: chunk growth must be a number, got {value!r}")
    if not 1.0 < value <= _MAX_GROWTH:  # NaN fails this too
        raise InputError(
            f"vocoder: chunk growth must be above 1 and at most {_MAX_GROWTH:g} (the next "
            f"chunk's size over the last one's), got {value}"
        )
    return float(value)


@cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 dot products (without them bfloat16 is slower)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


class StreamingVocoder:
    """Stateful mel-to-audio stage: ``process`` (any number of frames), ``flush``, ``reset``."""

    def __init__(
        self,
        generator: HifiGanGenerator,
        *,
        chunk_frames: int = 32,
        left_context_frames: int = 12,
        right_context_frames: int = 12,
        first_chunk_frames: int | None = None,
        fast_cpu: bool = False,
        method: str | None = None,
        precision: str | None = None,
        chunk_growth: float = 1.25,
    ) -> None:
        """``fast_cpu`` picks the defaults ``method="stateful"`` and ``precision="mixed"``
        (``"float32"`` on a CPU without native bfloat16); otherwise ``"window"`` and
        ``"float32"``. ``chunk_growth``: with the stateful method, each chunk after the first
        is at most this many times the one before (and at least one frame more). Bad
        settings raise ``InputError``."""
        self.chunk_frames = _frames("chunk_frames", chunk_frames, 1)
        self.chunk_growth = _growth(chunk_growth)
        first = chunk_frames if first_chunk_frames is None else first_chunk_frames
        self.first_chunk_frames = _frames("first_chunk_frames", first, 1)
        if self.first_chunk_frames > self.chunk_frames:
            raise InputError(
                f"vocoder: first_chunk_frames ({first}) must not exceed chunk_frames "
                f"({chunk_frames}); it exists to make the first chunk smaller"
            )
        self.left_context_frames = _frames("left_context_frames", left_context_frames, 0)
        self.right_context_frames = _frames("right_context_frames", right_context_frames, 0)
        lite = isinstance(generator, LiteVocoder)
        if not lite and not isinstance(generator, HifiGanGenerator):
            raise InputError(
                "vocoder: expected a HifiGanGenerator or LiteVocoder, got "
                f"{type(generator).__name__}"
            )
        self.quality = "lite" if lite else "full"
        self.device = next(generator.parameters()).device
        self.hop = generator.hop

        if lite:
            # It has no mixed-precision twin, and its left reach (34 frames) would make
            # windows cost several times the chunk.
            if method not in (None, "stateful") or precision not in (None, "float32"):
                raise InputError("vocoder: the lite vocoder streams only statefully in float32")
            method, precision, fast_cpu = "stateful", "float32", False
        if method is None:
            method = "stateful" if fast_cpu else "window"
        if precision is None:
            precision = "float32"
            if fast_cpu:
                precision = "mixed" if cpu_has_native_bf16() else "float32"
                if precision == "float32":
                    log.info("vocoder: this CPU has no native bfloat16; fast mode runs float32")
        if method not in METHODS:
            raise InputError(f"vocoder: method must be one of {METHODS}, got {method!r}")
        if precision not in PRECISIONS:
            raise InputError(f"vocoder: precision must be one of {PRECISIONS}, got {precision!r}")
        if fast_cpu and self.device.type != "cpu":
            raise InputError(
                f"vocoder: fast_cpu is the CPU's reduced-quality mode, but the generator is "
                f"on {self.device}"
            )
        self.method = method
        self.precision = precision
        self.fast_cpu = bool(fast_cpu)
        self._generator = generator.mixed_precision() if precision == "mixed" else generator

        if method == "window":
            # The window buffer holds the left context followed by unvocoded frames; it
            # never needs more than one full window.
            self._capacity = self.left_context_frames + self.chunk_frames
            self._capacity += self.right_context_frames
            self._mel = torch.zeros(N_MELS, self._capacity, device=self.device)
            self._audio = torch.zeros(self._capacity * self.hop, device=self.device)
            self._host = (
                torch.zeros(self._capacity * self.hop, pin_memory=True)
                if self.device.type == "cuda"
                else None
            )
        else:
            self._stateful = StatefulLite(generator) if lite else StatefulGenerator(self._generator)
            self._pending: list[torch.Tensor] = []
        self.reset()

    @classmethod
    def from_config(
        cls, generator: HifiGanGenerator, cfg: VocoderConfig, *, fast_cpu: bool = True
    ) -> StreamingVocoder:
        """The stage for a ``VocoderConfig`` and the generator's device.

        On the CPU: ``cpu_chunk_frames``, the stateful method, and with ``fast_cpu`` the
        reduced-quality mixed precision (float32 on a CPU without native bfloat16).
        Elsewhere: ``chunk_frames`` and float32 windows with the configured context.
        The lite vocoder: ``lite_chunk_frames``, ``lite_first_chunk_frames`` and
        ``lite_chunk_growth``, statefully.
        """
        if isinstance(generator, LiteVocoder):
            return cls(
                generator,
                chunk_frames=cfg.lite_chunk_frames,
                first_chunk_frames=cfg.lite_first_chunk_frames,
                method="stateful",
                chunk_growth=cfg.lite_chunk_growth,
            )
        if next(generator.parameters()).device.type == "cpu":
            return cls(
                generator,
                chunk_frames=cfg.cpu_chunk_frames,
                left_context_frames=cfg.left_context_frames,
                right_context_frames=cfg.right_context_frames,
                first_chunk_frames=cfg.first_chunk_frames,
                fast_cpu=fast_cpu,
                method="stateful",
                chunk_growth=cfg.cpu_chunk_growth,
            )
        return cls(
            generator,
            chunk_frames=cfg.chunk_frames,
            left_context_frames=cfg.left_context_frames,
            right_context_frames=cfg.right_context_frames,
            first_chunk_frames=cfg.first_chunk_frames,
        )

    @property
    def lookahead_frames(self) -> int:
        """Frames that must follow a chunk before it is vocoded (beyond the chunk itself)."""
        if self.method == "window":
            return self.right_context_frames
        return -(-self._stateful.lookahead_samples // self.hop)

    @property
    def first_audio_frames(self) -> int:
        """Mel frames needed before the first audio comes out."""
        return self.first_chunk_frames + self.lookahead_frames

    def describe(self) -> dict:
        """Settings in effect, for logs and benchmarks."""
        return {
            "quality": self.quality,
            "method": self.method,
            "precision": self.precision,
            "device": str(self.device),
            "chunk_frames": self.chunk_frames,
            "first_chunk_frames": self.first_chunk_frames,
            "chunk_growth": self.chunk_growth if self.method == "stateful" else None,
            # the stateful method recomputes no context: it carries every layer's history
            "left_context_frames": self.left_context_frames if self.method == "window" else None,
            "lookahead_frames": self.lookahead_frames,
        }

    def warm_up(self) -> None:
        """Vocode a short utterance of silence and forget it.

        The first calls at new tensor shapes pay for kernel selection and allocation
        (measured: the first chunk 2x slower, and making the mixed-precision twin 0.14 s);
        call this once at start-up so the first request does not. The caches it fills are
        per process, so every later vocoder with the same settings benefits.
        """
        self.reset()
        sizes = self.chunk_schedule(64)  # every size of the ramp, then full chunks
        ramp = sizes[: sizes.index(self.chunk_frames)] if self.chunk_frames in sizes else sizes
        total = sum(ramp) + 2 * self.chunk_frames + self.lookahead_frames
        silence = torch.full((N_MELS, self.chunk_frames), SILENCE_LOG_MEL)
        for start in range(0, total, self.chunk_frames):
            self.process(silence[:, : min(self.chunk_frames, total - start)])
        self.flush()

    def reset(self) -> None:
        """Forget the current utterance (start of a new one, or barge-in)."""
        self._frames_in = 0
        self._samples_out = 0
        self._chunks_done = 0
        self._chunk = self.first_chunk_frames  # the next chunk's size
        if self.method == "window":
            self._filled = 0  # frames in the window buffer
            self._start = 0  # frames of left context at the head of the buffer
        else:
            self._stateful.reset()
            self._pending = []
            self._n_pending = 0

    def _grown(self, size: int) -> int:
        """The chunk after one of ``size`` frames."""
        if self.method == "window":
            return self.chunk_frames
        return min(self.chunk_frames, max(size + 1, math.floor(size * self.chunk_growth)))

    def _chunk_done(self) -> None:
        self._chunks_done += 1
        self._chunk = self._grown(self._chunk)

    def chunk_schedule(self, n: int) -> list[int]:
        """The sizes of the first ``n`` chunks of an utterance, in mel frames."""
        sizes = [self.first_chunk_frames]
        while len(sizes) < n:
            sizes.append(self._grown(sizes[-1]))
        return sizes[:n]

    def process(self, mel: torch.Tensor) -> np.ndarray:
        """Append ``[80, n]`` log-mel frames; return all audio that is final so far
        (float32, possibly empty)."""
        return self._join(list(self.chunks(mel)))

    def chunks(self, mel: torch.Tensor) -> Iterator[np.ndarray]:
        """Append ``[80, n]`` log-mel frames; an iterator over the audio of each chunk that
        becomes final, each yielded as soon as it is vocoded (float32). The mel is checked
        now (``InputError``); iterate to the end before the next call or ``flush``: the
        window method takes the frames in as its bounded buffer frees (stopping early is
        for abandoning the utterance, then ``reset``)."""
        mel = self._check_mel(mel)
        self._frames_in += mel.shape[1]
        if self.method == "window":
            return self._process_window(mel)
        if mel.shape[1]:
            self._pending.append(mel)
            self._n_pending += mel.shape[1]
        return self._process_stateful()

    def flush(self) -> np.ndarray:
        """Vocode the frames still held back (end of utterance), return them and reset."""
        with torch.inference_mode():
            if self.method == "window":
                rest = self._filled - self._start
                audio = self._vocode_window(rest) if rest > 0 else np.zeros(0, np.float32)
            else:
                audio = self._push(final=True)
        if self._samples_out != self._frames_in * self.hop:  # an invariant, not user input
            raise AssertionError(
                f"vocoder returned {self._samples_out} samples for {self._frames_in} frames"
            )
        self.reset()
        return audio

    # -- window method --------------------------------------------------------------

    def _process_window(self, mel: torch.Tensor) -> Iterator[np.ndarray]:
        n, done = mel.shape[1], 0
        while done < n:
            take = min(n - done, self._capacity - self._filled)
            self._mel[:, self._filled : self._filled + take].copy_(mel[:, done : done + take])
            self._filled += take
            done += take
            size = self._chunk
            while self._filled - self._start >= size + self.right_context_frames:
                with torch.inference_mode():
                    chunk = self._vocode_window(size)
                yield chunk
                size = self._chunk

    def _vocode_window(self, size: int) -> np.ndarray:
        """Vocode ``size`` frames after the left context; keep only their samples."""
        end = min(self._filled, self._start + size + self.right_context_frames)
        wave = self._generator(self._mel[:, :end].unsqueeze(0))[0]
        n = size * self.hop
        first = self._start * self.hop
        self._audio[:n].copy_(wave[first : first + n])
        if self._host is not None:
            self._host[:n].copy_(self._audio[:n])
            chunk = self._host[:n].numpy().copy()
        else:
            chunk = self._audio[:n].numpy().copy()
        # Keep the last left_context frames before the next chunk, and the frames after it.
        consumed = self._start + size
        keep_from = max(0, consumed - self.left_context_frames)
        if keep_from > 0:
            tail = self._mel[:, keep_from : self._filled].clone()
            self._mel[:, : tail.shape[1]].copy_(tail)
        self._filled -= keep_from
        self._start = consumed - keep_from
        self._chunk_done()
        self._samples_out += n
        return chunk

    # -- stateful method ------------------------------------------------------------

    def _process_stateful(self) -> Iterator[np.ndarray]:
        # The first push waits for its lookahead too, so that it yields a whole first chunk.
        need = self._chunk + (self.lookahead_frames if self._chunks_done == 0 else 0)
        while self._n_pending >= need:
            with torch.inference_mode():
                chunk = self._push(final=False, frames=need)
            yield chunk
            need = self._chunk

    def _push(self, *, final: bool, frames: int | None = None) -> np.ndarray:
        pending = torch.cat(self._pending, 1) if self._pending else None
        if pending is None:
            pending = torch.zeros(N_MELS, 0, device=self.device)
        frames = pending.shape[1] if frames is None else frames
        self._pending = [pending[:, frames:]] if frames < pending.shape[1] else []
        self._n_pending -= frames
        audio = self._stateful.push(pending[:, :frames].unsqueeze(0), final=final)
        self._chunk_done()
        self._samples_out += audio.shape[0]
        return audio.cpu().numpy()

    # -- input ----------------------------------------------------------------------

    def _check_mel(self, mel: torch.Tensor) -> torch.Tensor:
        if isinstance(mel, np.ndarray):
            mel = torch.from_numpy(mel)
        if not torch.is_tensor(mel):
            raise InputError(f"vocoder: mel must be a tensor, got {type(mel).__name__}")
        if mel.dim() != 2 or mel.shape[0] != N_MELS:
            raise InputError(
                f"vocoder: mel must have shape [{N_MELS}, frames], got {list(mel.shape)}"
            )
        if not mel.is_floating_point():
            raise InputError(f"vocoder: mel must be floating point, got {mel.dtype}")
        if not bool(torch.isfinite(mel).all()):
            raise InputError("vocoder: mel contains NaN or infinite values")
        return mel.to(self.device, torch.float32)

    @staticmethod
    def _join(parts: list[np.ndarray]) -> np.ndarray:
        if not parts:
            return np.zeros(0, np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
