"""An energy-based voice-activity gate with an adaptive noise floor, for the live embedder.

Why energy and not a trained VAD: the embedder only needs to keep silence and steady room
noise out of the speaker estimate; a gate that is cheap, deterministic, block-size
independent and has no extra dependency does that (webrtcvad, which resemblyzer uses, is a
C extension we do not ship).

How it decides, on consecutive 10 ms frames (160 samples at 16 kHz), whatever the block
sizes it is fed:

* level: frame RMS in dBFS (floored at -120).
* noise floor: follows the level down at once and rises towards it exponentially with a
  ``NOISE_RISE_SECONDS`` time constant, so it tracks the quiet between words and adapts
  to louder rooms within seconds, while a sentence barely lifts it. It starts at the
  first frame's level.
* a frame is voice when its level is at least ``vad_threshold_db`` above the noise floor
  and above the absolute floor ``vad_floor_dbfs`` (so a quiet room is never voice).
* hangover: the gate stays open ``vad_hangover_ms`` after the last voice frame, which
  keeps weak consonants and word endings.

The gate has no look-ahead: the decision for a frame depends only on frames up to it.
Samples past the last whole frame wait for the next block; ``flush`` drops them.
"""

from __future__ import annotations

import math

import numpy as np

from vcstream.config import EmbedderConfig
from vcstream.errors import InputError

SAMPLE_RATE_HZ = 16000
FRAME_SAMPLES = 160  # 10 ms
NOISE_RISE_SECONDS = 3.0
MIN_DBFS = -120.0


def level_dbfs(audio: np.ndarray) -> float:
    """RMS level in dBFS, floored at -120 (also for empty input)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.size == 0:
        return MIN_DBFS
    return max(MIN_DBFS, 10.0 * math.log10(float(np.mean(x * x)) + 1e-30))


class VoiceActivityGate:
    """``process(block)`` returns the samples of the block's voiced 10 ms frames."""

    def __init__(self, cfg: EmbedderConfig | None = None) -> None:
        cfg = cfg or EmbedderConfig()
        if cfg.vad_threshold_db < 0 or cfg.vad_hangover_ms < 0:
            raise InputError("embedder: vad_threshold_db and vad_hangover_ms must be >= 0")
        self.threshold_db = float(cfg.vad_threshold_db)
        self.floor_dbfs = float(cfg.vad_floor_dbfs)
        self.hangover_frames = round(cfg.vad_hangover_ms * SAMPLE_RATE_HZ / 1000 / FRAME_SAMPLES)
        self._rise = 1.0 - math.exp(-FRAME_SAMPLES / SAMPLE_RATE_HZ / NOISE_RISE_SECONDS)
        self.reset()

    def reset(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self.noise_floor_dbfs: float | None = None
        self._since_voice = self.hangover_frames + 1  # frames since the last voice frame
        self.active = False  # gate state after the last frame
        self.frames_seen = 0
        self.frames_voiced = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        """Voiced samples among the whole frames completed by ``block`` (in order)."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim != 1:
            raise InputError(f"voice gate wants mono 1-D audio, got shape {x.shape}")
        buf = np.concatenate((self._pending, x)) if self._pending.size else x
        n = buf.size // FRAME_SAMPLES
        self._pending = buf[n * FRAME_SAMPLES :].copy()
        if n == 0:
            return np.zeros(0, np.float32)
        frames = buf[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        mask = self.decide(frames)
        return frames[mask].reshape(-1)

    def decide(self, frames: np.ndarray) -> np.ndarray:
        """Gate decision per frame of ``[n, 160]``, updating the state."""
        power = np.mean(np.square(frames, dtype=np.float64), axis=1)
        levels = np.maximum(MIN_DBFS, 10.0 * np.log10(power + 1e-30))
        mask = np.zeros(levels.size, bool)
        # A per-frame recursion (the floor feeds back), cheap at 100 frames per second.
        floor, since = self.noise_floor_dbfs, self._since_voice
        for i, lev in enumerate(levels.tolist()):
            if floor is None or lev < floor:
                floor = lev
            else:
                floor += (lev - floor) * self._rise
            if lev >= floor + self.threshold_db and lev > self.floor_dbfs:
                since = 0
            else:
                since += 1
            mask[i] = since <= self.hangover_frames
        self.noise_floor_dbfs, self._since_voice = floor, since
        self.active = bool(mask[-1])
        self.frames_seen += levels.size
        self.frames_voiced += int(mask.sum())
        return mask

    def flush(self) -> np.ndarray:
        """End of input: the samples short of a whole frame are dropped."""
        self._pending = np.zeros(0, np.float32)
        return np.zeros(0, np.float32)


def voiced_audio(audio_16k: np.ndarray, cfg: EmbedderConfig | None = None) -> np.ndarray:
    """The samples a fresh gate marks voiced in this audio (batch use: reference files)."""
    return VoiceActivityGate(cfg).process(audio_16k)
