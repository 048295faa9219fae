"""Batch speaker embeddings: partial windows of 160 mel frames, L2-normalised mean.

Two slicings of an utterance into partials:

* ``embed_utterance``: Resemblyzer's ``VoiceEncoder.embed_utterance`` (partials every
  1/rate seconds, rate 1.3; a last, zero-padded partial is kept when at least
  ``min_coverage`` of it holds audio). Volume is normalised over the whole utterance first,
  as resemblyzer's ``preprocess_wav`` does (its webrtcvad silence trimming is not
  reproduced; run ``vcstream.encoder.vad.voiced_audio`` first to drop silences).
* ``embed_stream``: the incremental embedder's slicing, computed in one go: partials of
  ``partial_frames`` start every ``step_frames`` frames of the stream framing
  (``frontend.stream_mel``), each partial volume-normalised on its own, because a live
  stream has no "whole utterance" to measure. ``IncrementalEmbedder`` fed the same audio
  in any blocks gives the same result.

Level: the pretrained GE2E reads power mel and is far from level-invariant (the same
recording 10 dB louder or quieter moves the embedding to a cosine of 0.87-0.96), and
resemblyzer's increase-only normalisation leaves anything louder than -30 dBFS as it is.
A live embedding must not depend on the performer's microphone gain, so the stream path
scales every partial, up or down, to ``STREAM_TARGET_DBFS`` RMS over its (voiced)
samples. -22 dBFS is the level of the corpus audio whose embeddings the synthesiser
is trained on (``vcstream.corpus.features``: -22 dBFS RMS over the non-silent frames);
keep the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcstream.encoder.frontend import (
    HOP,
    N_MELS,
    SAMPLE_RATE_HZ,
    normalize_volume,
    stream_mel,
    volume_gain,
    wav_to_mel,
)
from vcstream.encoder.ge2e import SpeakerEncoder
from vcstream.errors import InputError, NoVoiceError

PARTIAL_FRAMES = 160  # 1.6 s: the GE2E training length
STEP_FRAMES = 80  # 0.8 s: the incremental embedder's step
# A stream shorter than one partial gets a zero-padded one at its end (``final=True`` /
# ``flush()``) when it fills at least this share of it, as resemblyzer's last partial.
MIN_COVERAGE = 0.75
STREAM_TARGET_DBFS = -22.0


@dataclass(frozen=True)
class Embedding:
    embedding: np.ndarray  # (256,) float32, L2-normalised mean of the partials
    partials: np.ndarray  # (n, 256) float32
    starts: list[int]  # first mel frame of each partial


def l2_normalize(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def _check_audio(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise InputError(f"speaker encoder wants mono 1-D audio at 16 kHz, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("speaker encoder input holds NaN or infinite samples")
    return x


# ---- Resemblyzer's slicing ------------------------------------------------------------


def resemblyzer_partial_starts(
    n_samples: int, rate: float = 1.3, min_coverage: float = MIN_COVERAGE
) -> list[int]:
    """First mel frame of each partial, as ``VoiceEncoder.compute_partial_slices`` picks."""
    if not 0.0 < min_coverage <= 1.0:
        raise InputError(f"min_coverage must be in (0, 1], got {min_coverage}")
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = round(SAMPLE_RATE_HZ / rate / HOP)
    if not 0 < step <= PARTIAL_FRAMES:
        raise InputError(f"partial rate {rate}/s is outside what 1.6 s partials allow")
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    last = starts[-1] * HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def embed_utterance(
    encoder: SpeakerEncoder,
    audio_16k: np.ndarray,
    *,
    rate: float = 1.3,
    min_coverage: float = MIN_COVERAGE,
    normalize: bool = True,
) -> Embedding:
    """Resemblyzer's utterance embedding of 16 kHz audio (volume-normalised unless told)."""
    x = _check_audio(audio_16k)
    if x.size == 0:
        raise NoVoiceError("no audio to embed")
    if normalize:
        x = normalize_volume(x)
    starts = resemblyzer_partial_starts(x.size, rate, min_coverage)
    # Resemblyzer pads the waveform (not the mel) to the end of the last partial.
    end = (starts[-1] + PARTIAL_FRAMES) * HOP
    if end >= x.size:
        x = np.pad(x, (0, end - x.size))
    mel = wav_to_mel(x)
    mels = np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
    partials = encoder.embed_partials(mels)
    return Embedding(l2_normalize(partials.mean(axis=0)), partials, starts)


# ---- the streaming slicing --------------------------------------------------------------


def stream_partial_starts(
    n_frames: int,
    partial_frames: int = PARTIAL_FRAMES,
    step_frames: int = STEP_FRAMES,
    *,
    final: bool = False,
) -> list[int]:
    """Partial starts over ``n_frames`` stream frames; ``final`` adds the end-of-input one.

    A start below 0 (only with ``final``, for a stream shorter than one partial) means
    the partial is zero-padded in front.
    """
    starts = list(range(0, n_frames - partial_frames + 1, step_frames))
    if final:
        last = starts[-1] if starts else None
        extra = final_partial_start(n_frames, last, partial_frames, step_frames)
        if extra is not None:
            starts.append(extra)
    return starts


def final_partial_start(
    n_frames: int,
    last_start: int | None,
    partial_frames: int = PARTIAL_FRAMES,
    step_frames: int = STEP_FRAMES,
) -> int | None:
    """Start of the end-aligned partial added at end of input, or None when not warranted.

    Warranted when at least half a step of frames is not yet covered by any partial, or,
    with no partial yet, when the stream fills ``MIN_COVERAGE`` of one.
    """
    if last_start is None:
        return n_frames - partial_frames if n_frames >= MIN_COVERAGE * partial_frames else None
    if n_frames - (last_start + partial_frames) < step_frames / 2:
        return None
    return n_frames - partial_frames


def partial_mels(
    mel: np.ndarray, energy: np.ndarray, start: int, partial_frames: int = PARTIAL_FRAMES
) -> np.ndarray:
    """One volume-normalised partial ``[partial_frames, 40]`` of stream frames.

    ``mel[j]`` / ``energy[j]`` are frame ``start + j``' values, for the frames that exist
    (a negative ``start`` means missing frames in front, filled with silence). The gain
    brings the partial's own samples to ``STREAM_TARGET_DBFS``, up or down; power mel
    scales with its square.
    """
    pad = max(0, -start)
    m = np.asarray(mel[: partial_frames - pad], dtype=np.float32)
    e = np.asarray(energy[: partial_frames - pad], dtype=np.float64)
    rms = float(np.sqrt(e.sum() / max(1, e.size * HOP)))
    gain = volume_gain(rms, STREAM_TARGET_DBFS, increase_only=False)
    out = np.zeros((partial_frames, N_MELS), np.float32)
    out[pad : pad + m.shape[0]] = m * np.float32(gain * gain)
    return out


def embed_stream(
    encoder: SpeakerEncoder,
    voiced_16k: np.ndarray,
    *,
    partial_frames: int = PARTIAL_FRAMES,
    step_frames: int = STEP_FRAMES,
    final: bool = False,
) -> Embedding | None:
    """The incremental embedder's result for this voiced audio, fed as one stream.

    ``final=True`` matches a ``flush()`` at the end. None when the audio is too short
    for a single partial.
    """
    x = _check_audio(voiced_16k)
    mel, energy = stream_mel(x)
    starts = stream_partial_starts(mel.shape[0], partial_frames, step_frames, final=final)
    if not starts:
        return None
    mels = np.stack(
        [partial_mels(mel[max(0, s) :], energy[max(0, s) :], s, partial_frames) for s in starts]
    )
    partials = encoder.embed_partials(mels)
    return Embedding(l2_normalize(partials.astype(np.float64).sum(axis=0)), partials, starts)
