"""Speaker conditioning from reference recordings (for `say` and `embed`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vcstream.audio.io import read_wav, resample
from vcstream.errors import NoVoiceError
from vcstream.synth.base import VoiceConditioning

ENCODER_SAMPLE_RATE_HZ = 16000
_BLOCK = 320  # 20 ms, the daemon's capture block: the same path as live input


@dataclass(frozen=True)
class ReferenceVoice:
    conditioning: VoiceConditioning
    voiced_seconds: float
    sources: list[str]


def embed_references(embedder, paths: list[str | Path]) -> ReferenceVoice:
    """Feed each recording through a fresh incremental embedder, as live capture would."""
    if not paths:
        raise NoVoiceError("no reference recordings given")
    recordings = []
    for path in paths:
        audio, sr = read_wav(path)
        recordings.append((audio, sr))
    return embed_recordings(embedder, recordings, [str(p) for p in paths])


def embed_recordings(
    embedder, recordings: list[tuple[np.ndarray, int]], names: list[str] | None = None
) -> ReferenceVoice:
    """``embed_references`` for audio already in memory: ``(samples, sample_rate)`` pairs."""
    names = names or [f"recording {i + 1}" for i in range(len(recordings))]
    if not recordings:
        raise NoVoiceError("no reference recordings given")
    embedder.reset()
    for audio, sr in recordings:
        audio = resample(audio, sr, ENCODER_SAMPLE_RATE_HZ)
        for start in range(0, len(audio), _BLOCK):
            embedder.process(audio[start : start + _BLOCK])
    embedder.flush()
    if embedder.embedding is None:
        raise NoVoiceError(
            f"no voice found in {', '.join(names)}: {embedder.voiced_seconds:.2f} s voiced, "
            "need at least 1.6 s of speech"
        )
    stats = embedder.pitch_stats
    mean, std = (None, None) if stats is None else (float(stats[0]), float(stats[1]))
    cond = VoiceConditioning(
        np.asarray(embedder.embedding, np.float32),
        mean,
        std,
        cepstral_std=recordings_cepstral_std(recordings),
    )
    return ReferenceVoice(cond, float(embedder.voiced_seconds), list(names))


def recordings_cepstral_std(recordings: list[tuple[np.ndarray, int]]) -> np.ndarray | None:
    """The spread of the recordings' spectral detail (``synth.variance.cepstral_std``),
    measured on their mels as the training corpus makes them (22050 Hz, silence trimmed,
    level normalised); None with too little loud audio."""
    from vcstream.audio.mel import mel_spectrogram
    from vcstream.corpus.features import clean_audio
    from vcstream.synth.variance import cepstral_std

    mels = []
    for audio, sr in recordings:
        try:
            x = clean_audio(audio, sr)
        except NoVoiceError:  # a silent recording: nothing to measure in it
            continue
        mels.append(mel_spectrogram(x))
    return cepstral_std(mels)
