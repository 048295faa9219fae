"""The live speaker embedder: a voice estimate that improves while the performer talks.

Microphone blocks (16 kHz float32, any size) pass the voice-activity gate; the voiced
samples form one continuous stream whose GE2E mel frames are computed as they complete
(``frontend.StreamingMel``). Every ``partial_step_seconds`` of voiced audio (0.8 s) a new
partial window of ``partial_seconds`` (1.6 s, 160 frames) is complete; it is
volume-normalised on its own (to ``embed.STREAM_TARGET_DBFS``, up or down, so the
microphone gain does not change the voice), run through the LSTM and added to a running
sum whose L2-normalised value is the current embedding. The result after any sequence of blocks is
``embed.embed_stream`` of the concatenated voiced audio (``final=True`` after ``flush``).

``convergence`` is the cosine between the last two estimates: it climbs towards 1 as new
partials stop moving the mean. Running pitch statistics ride along: the median of
natural-log F0 over voiced frames (YIN on the same voiced stream) and its spread (1.4826 x
the median absolute deviation), the statistics the synthesiser was trained on, kept in a
bounded histogram (``audio.pitch.LogF0Histogram``); and the spread of the voice's spectral
detail over its latest 30 s (``synth.variance.SpreadMeter``), which the synthesiser restores.

Model calls happen inside ``process`` (one 160-frame LSTM pass per 0.8 s of voice), so
``process`` belongs on the embedder thread, never on the sound-device callback. A lock
makes ``freeze``/``reset``/property reads from control threads safe against a
``process`` in progress.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vcstream.audio.pitch import LogF0Histogram, StreamingF0
from vcstream.config import EmbedderConfig
from vcstream.encoder.embed import final_partial_start, l2_normalize, partial_mels
from vcstream.encoder.frontend import HOP, N_MELS, SAMPLE_RATE_HZ, StreamingMel
from vcstream.encoder.ge2e import EMBEDDING_SIZE, SpeakerEncoder
from vcstream.encoder.vad import VoiceActivityGate, level_dbfs
from vcstream.errors import InputError
from vcstream.synth.variance import SpreadMeter

FRAMES_PER_SECOND = SAMPLE_RATE_HZ // HOP
MIN_PITCH_FRAMES = 20  # voiced F0 frames (0.2 s) before pitch statistics are reported
PITCH_BATCH_FRAMES = 10  # F0 runs on 100 ms at a time: cheaper than per 20 ms block


@dataclass(frozen=True)
class EmbeddingUpdate:
    """What changed when new partials were added."""

    embedding: np.ndarray  # (256,) float32, the running estimate, L2-normalised
    partial: np.ndarray  # (256,) float32, the newest partial's embedding
    n_partials: int
    voiced_seconds: float
    convergence: float | None  # cosine between the last two estimates


class IncrementalEmbedder:
    """``process(block)`` in, an ``EmbeddingUpdate`` out whenever the estimate changes."""

    def __init__(self, encoder: SpeakerEncoder, cfg: EmbedderConfig | None = None) -> None:
        cfg = cfg or EmbedderConfig()
        self.partial_frames = round(cfg.partial_seconds * FRAMES_PER_SECOND)
        self.step_frames = round(cfg.partial_step_seconds * FRAMES_PER_SECOND)
        if self.partial_frames < 1 or not 1 <= self.step_frames <= self.partial_frames:
            raise InputError(
                "embedder: need partial_seconds >= 0.01 and 0.01 <= partial_step_seconds "
                f"<= partial_seconds, got {cfg.partial_seconds} and {cfg.partial_step_seconds}"
            )
        if cfg.auto_freeze_seconds < 0:
            raise InputError("embedder: auto_freeze_seconds must be >= 0")
        self.auto_freeze_seconds = float(cfg.auto_freeze_seconds)
        self.encoder = encoder
        self._vad = VoiceActivityGate(cfg)
        self._mel = StreamingMel()
        self._f0 = StreamingF0(SAMPLE_RATE_HZ, HOP, min_frames=PITCH_BATCH_FRAMES)
        self._pitch = LogF0Histogram()
        self._spread = SpreadMeter(SAMPLE_RATE_HZ)
        self._lock = threading.RLock()
        self.level_dbfs = -120.0  # of the latest block, for meters
        self.voice_active = False  # gate state at the end of the latest block
        # Called with each run of voiced samples the estimate takes in (the daemon keeps
        # them for adaptation, vcstream.adapt.live); must be cheap: it runs under the lock.
        self.voiced_tap: Callable[[np.ndarray], None] | None = None
        self.reset()

    # ---- control ----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the voice (embedding, partials, pitch) and the gate's state; unfreeze."""
        with self._lock:
            self._vad.reset()
            self._new_segment()
            self._sum = np.zeros(EMBEDDING_SIZE, np.float64)
            self._n_partials = 0
            self._estimate: np.ndarray | None = None
            self._convergence: float | None = None
            self._voiced_samples = 0
            self._pitch.reset()
            self._spread.reset()
            self._frozen = False
            self.voice_active = False

    def warm_up(self) -> None:
        """One-off costs of the first voice paid now, outside the lock (call it on the
        embedder's thread before feeding it): the spread meter's resampler compiles in
        about 1 s, and inside ``process`` it held up every reader of the estimate, the
        synthesis thread's conditioning among them."""
        self._spread.warm_up()

    def freeze(self) -> None:
        """Stop updating: voiced audio is ignored (meters still work) until ``unfreeze``."""
        with self._lock:
            self._frozen = True

    def unfreeze(self) -> None:
        with self._lock:
            self._frozen = False

    # ---- audio ------------------------------------------------------------------------
    def process(self, block_16k: np.ndarray) -> EmbeddingUpdate | None:
        """Feed a block of 16 kHz mono float audio; an update when new partials were added."""
        x = np.asarray(block_16k, dtype=np.float32)
        if x.ndim != 1:
            raise InputError(f"embedder wants mono 1-D audio at 16 kHz, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise InputError("embedder input holds NaN or infinite samples")
        with self._lock:
            if x.size:
                self.level_dbfs = level_dbfs(x)
            voiced = self._vad.process(x)
            self.voice_active = self._vad.active
            if self._frozen or voiced.size == 0:
                return None
            if self.voiced_tap is not None:
                self.voiced_tap(voiced)
            return self._consume(voiced)

    def flush(self) -> EmbeddingUpdate | None:
        """End of input: add a last partial over the uncovered tail when there is enough.

        The voiced stream then ends; audio fed afterwards starts a new stream (its frames
        are not joined to this one's). Matches ``embed_stream(..., final=True)``.
        """
        with self._lock:
            self._vad.flush()
            update = None
            if not self._frozen:
                start = final_partial_start(
                    self._n_frames, self._last_start, self.partial_frames, self.step_frames
                )
                if start is not None:
                    update = self._add_partials([start])
            self._new_segment()
            return update

    # ---- state ------------------------------------------------------------------------
    @property
    def embedding(self) -> np.ndarray | None:
        """The current estimate (256,), L2-normalised; None before the first partial."""
        est = self._estimate
        return None if est is None else est.copy()

    @property
    def voiced_seconds(self) -> float:
        return self._voiced_samples / SAMPLE_RATE_HZ

    @property
    def n_partials(self) -> int:
        return self._n_partials

    @property
    def convergence(self) -> float | None:
        return self._convergence

    @property
    def frozen(self) -> bool:
        return self._frozen

    @property
    def noise_floor_dbfs(self) -> float | None:
        return self._vad.noise_floor_dbfs

    @property
    def pitch_stats(self) -> tuple[float, float] | None:
        """(median, 1.4826 x median absolute deviation) of natural-log F0 over voiced
        frames, as ``VoiceConditioning`` takes them; None before 0.2 s of pitch."""
        with self._lock:
            if self._pitch.count < MIN_PITCH_FRAMES:
                return None
            return self._pitch.statistics()

    @property
    def cepstral_std(self) -> np.ndarray | None:
        """The voice's spread of spectral detail (``synth.variance``); None before enough
        loud voiced frames."""
        with self._lock:
            return self._spread.cepstral_std

    # ---- internals --------------------------------------------------------------------
    def _new_segment(self) -> None:
        self._mel.reset()
        self._f0.reset()
        self._frames = np.zeros((0, N_MELS), np.float32)  # stream frames from _base on
        self._energy = np.zeros(0, np.float64)
        self._base = 0
        self._n_frames = 0
        self._next_start = 0
        self._last_start: int | None = None

    def _consume(self, voiced: np.ndarray) -> EmbeddingUpdate | None:
        self._voiced_samples += voiced.size
        f0, is_voiced = self._f0.process(voiced)
        self._pitch.add(f0[is_voiced])
        self._spread.feed(voiced)
        mel, energy = self._mel.process(voiced)
        if mel.shape[0]:
            self._frames = np.concatenate((self._frames, mel))
            self._energy = np.concatenate((self._energy, energy))
            self._n_frames += mel.shape[0]
        starts = []
        while self._next_start + self.partial_frames <= self._n_frames:
            starts.append(self._next_start)
            self._last_start = self._next_start
            self._next_start += self.step_frames
        update = self._add_partials(starts) if starts else None
        # Keep what a later partial may read, including flush's end-aligned one.
        keep_from = max(0, min(self._next_start, self._n_frames - self.partial_frames))
        if keep_from > self._base:
            self._frames = self._frames[keep_from - self._base :]
            self._energy = self._energy[keep_from - self._base :]
            self._base = keep_from
        if self.auto_freeze_seconds > 0 and self.voiced_seconds >= self.auto_freeze_seconds:
            self._frozen = True
        return update

    def _add_partials(self, starts: list[int]) -> EmbeddingUpdate:
        mels = np.stack(
            [
                partial_mels(
                    self._frames[max(0, s) - self._base :],
                    self._energy[max(0, s) - self._base :],
                    s,
                    self.partial_frames,
                )
                for s in starts
            ]
        )
        partials = self.encoder.embed_partials(mels)
        previous = None
        for p in partials:
            previous = self._estimate
            self._sum += p
            self._n_partials += 1
            self._estimate = l2_normalize(self._sum)
        if previous is not None:
            cos = float(np.dot(previous.astype(np.float64), self._estimate.astype(np.float64)))
            self._convergence = min(1.0, max(-1.0, cos))
        return EmbeddingUpdate(
            self._estimate.copy(),
            partials[-1].copy(),
            self._n_partials,
            self.voiced_seconds,
            self._convergence,
        )
