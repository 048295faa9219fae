"""Per-utterance training features, shared by the corpus builder and the trainer:
cleaned 22050 Hz audio, HiFi-GAN log-mel, YIN F0 on the mel frames, GE2E embedding,
espeak-ng phonemes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vcstream.audio.io import resample
from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ, mel_spectrogram
from vcstream.errors import NoVoiceError

F0_MIN_HZ = 55.0
F0_MAX_HZ = 620.0
TRIM_DB = 40.0  # frames this far below the loudest frame count as leading/trailing silence
TRIM_MARGIN_S = 0.08
TARGET_RMS_DBFS = -22.0  # over the frames that are not silence
PEAK_LIMIT = 0.97


@dataclass(frozen=True)
class AudioFeatures:
    mel: np.ndarray  # [80, T] float32, natural-log mel
    f0_hz: np.ndarray  # [T] float32, 0 where unvoiced
    embedding: np.ndarray  # [256] float32, L2-normalised


def _frame_db(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // HOP
    frames = audio[: n * HOP].reshape(n, HOP).astype(np.float64)
    return 10 * np.log10((frames**2).mean(axis=1) + 1e-12)


def clean_audio(audio: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Resample to 22050 Hz, trim leading and trailing silence, normalise the level."""
    x = resample(np.asarray(audio, dtype=np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
    db = _frame_db(x)
    if db.size == 0 or db.max() < -80:
        raise NoVoiceError("rendered audio is silent")
    loud = np.flatnonzero(db > db.max() - TRIM_DB)
    margin = int(TRIM_MARGIN_S * SAMPLE_RATE_HZ)
    start = max(0, loud[0] * HOP - margin)
    end = min(len(x), (loud[-1] + 1) * HOP + margin)
    return normalize_level(x[start:end])


def normalize_level(audio: np.ndarray) -> np.ndarray:
    """Scale to ``TARGET_RMS_DBFS`` over the non-silent frames (peak limited), then quantise
    to 16 bits so that features computed here equal those of the written WAV."""
    x = np.asarray(audio, dtype=np.float32)
    db = _frame_db(x)
    if db.size == 0 or db.max() < -80:
        raise NoVoiceError("audio is silent")
    active = db[db > db.max() - TRIM_DB]
    rms_db = 10 * np.log10(np.mean(10 ** (active / 10)))
    x = x * 10 ** ((TARGET_RMS_DBFS - rms_db) / 20)
    peak = float(np.abs(x).max())
    if peak > PEAK_LIMIT:
        x = x * (PEAK_LIMIT / peak)
    return (np.round(x * 32767.0) / 32767.0).astype(np.float32)


class FeatureExtractor:
    """Loads the speaker encoder and the G2P once; then cheap per utterance."""

    def __init__(self, device: str = "cpu", encoder=None) -> None:
        """``encoder``: an already loaded ``SpeakerEncoder`` to share (else one is loaded)."""
        from vcstream.encoder.ge2e import SpeakerEncoder
        from vcstream.text.g2p import EspeakG2P

        self.encoder = encoder or SpeakerEncoder.from_checkpoint(device=device)
        self.g2p = EspeakG2P()

    def phonemes(self, text: str) -> list[str]:
        from vcstream.text.normalize import normalize_text

        return self.g2p.phonemize(normalize_text(text))

    def embedding(self, audio_22k: np.ndarray) -> np.ndarray:
        from vcstream.encoder.embed import embed_utterance

        x16 = resample(audio_22k, SAMPLE_RATE_HZ, 16000)
        return embed_utterance(self.encoder, x16).embedding.astype(np.float32)

    def audio_features(self, audio_22k: np.ndarray) -> AudioFeatures:
        from vcstream.audio.pitch import estimate_f0

        mel = mel_spectrogram(audio_22k).numpy().astype(np.float32)
        f0, voiced = estimate_f0(audio_22k, SAMPLE_RATE_HZ, HOP, F0_MIN_HZ, F0_MAX_HZ)
        f0 = fit_frames(np.where(voiced, f0, 0.0).astype(np.float32), mel.shape[1])
        return AudioFeatures(mel, f0, self.embedding(audio_22k))


def fit_frames(x: np.ndarray, n: int) -> np.ndarray:
    """Pad (edge) or cut a per-frame array to ``n`` frames (framings may differ by one)."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)), mode="edge" if len(x) else "constant")
