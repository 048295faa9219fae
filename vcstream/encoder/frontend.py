"""The speaker encoder's 16 kHz front end: GE2E power mel frames, batch and streaming.

The pretrained GE2E encoder (Resemblyzer / Real-Time-Voice-Cloning) reads 40-band *power*
mel frames (not log) of 16 kHz audio: 25 ms Hann window (400 samples, periodic), 10 ms hop
(160), n_fft 400, librosa's Slaney filterbank over 0-8000 Hz. Resemblyzer computes them
with ``librosa.feature.melspectrogram`` at its defaults, i.e. ``center=True``: frame ``i``
is centred on sample ``i * 160`` and the signal is padded by 200 samples on both sides.
librosa >= 0.10 pads with zeros (``pad_mode="constant"``), which is what resemblyzer
produces today and what the reference fixture was made with; older librosa reflected.

Two framings share one frame kernel:

* ``wav_to_mel``: resemblyzer's, with padding on both sides (``1 + N // 160`` frames).
* ``StreamingMel`` / ``stream_mel``: the same frames, but the right edge is never padded:
  only frames whose whole window has arrived are produced, so a stream fed in any blocks
  yields exactly the frames of the batch call on the concatenated audio.

Volume normalisation follows resemblyzer's preprocessing: scale to -30 dBFS RMS, never
down (``increase_only``).
"""

from __future__ import annotations

import numpy as np

from vcstream.audio.filters import mel_filterbank

SAMPLE_RATE_HZ = 16000
N_FFT = 400
WIN = 400
HOP = 160
N_MELS = 40
PAD = N_FFT // 2  # centre padding: frame i is centred on sample i * HOP
TARGET_DBFS = -30.0

_WINDOW = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WIN) / WIN)).astype(np.float64)
_MEL_BASIS = mel_filterbank(SAMPLE_RATE_HZ, N_FFT, N_MELS).astype(np.float64)


def volume_gain(rms: float, target_dbfs: float = TARGET_DBFS, increase_only: bool = True) -> float:
    """Linear gain that brings a signal of this RMS to ``target_dbfs`` (1.0 for silence)."""
    if not np.isfinite(rms) or rms <= 0.0:
        return 1.0
    change_db = target_dbfs - 20.0 * np.log10(rms)
    if increase_only and change_db < 0.0:
        return 1.0
    return float(10.0 ** (change_db / 20.0))


def normalize_volume(
    audio: np.ndarray, target_dbfs: float = TARGET_DBFS, increase_only: bool = True
) -> np.ndarray:
    """Resemblyzer's ``normalize_volume`` (whole-signal RMS); silence is returned unchanged."""
    x = np.asarray(audio, dtype=np.float32)
    if x.size == 0:
        return x
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    gain = volume_gain(rms, target_dbfs, increase_only)
    return x if gain == 1.0 else (x * np.float32(gain)).astype(np.float32)


def mel_frames(padded: np.ndarray, n_frames: int) -> np.ndarray:
    """Power mel ``[n_frames, 40]`` of windows ``padded[i*HOP : i*HOP + WIN]``."""
    if n_frames <= 0:
        return np.zeros((0, N_MELS), np.float32)
    x = np.asarray(padded, dtype=np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(x[: (n_frames - 1) * HOP + WIN], WIN)[::HOP]
    spec = np.fft.rfft(windows * _WINDOW, n=N_FFT, axis=1)
    power = spec.real**2 + spec.imag**2
    return (power @ _MEL_BASIS.T).astype(np.float32)


def wav_to_mel(audio: np.ndarray) -> np.ndarray:
    """Resemblyzer's ``wav_to_mel_spectrogram``: ``[1 + N // 160, 40]``, zero-padded centre."""
    x = np.asarray(audio, dtype=np.float32)
    return mel_frames(np.pad(x, (PAD, PAD)), 1 + x.size // HOP)


def n_stream_frames(n_samples: int) -> int:
    """Frames of ``stream_mel`` for this many samples: windows that end inside the audio."""
    return max(0, (n_samples + PAD - WIN) // HOP + 1)


def stream_mel(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mel frames of a stream (left edge padded, right edge not) and their hop energies.

    Returns ``(mel [T, 40], energy [T])`` where ``energy[i]`` is the sum of squares of
    samples ``[i * HOP, (i + 1) * HOP)``; partial windows use it for volume normalisation.
    """
    x = np.asarray(audio, dtype=np.float32)
    n = n_stream_frames(x.size)
    mel = mel_frames(np.pad(x, (PAD, 0)), n)
    return mel, hop_energies(x, n)


def hop_energies(audio: np.ndarray, n_frames: int) -> np.ndarray:
    x = np.asarray(audio[: n_frames * HOP], dtype=np.float64)
    return np.square(x).reshape(n_frames, HOP).sum(axis=1)


class StreamingMel:
    """``stream_mel`` computed incrementally: feed blocks of any size, get the new frames."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(PAD, np.float32)  # left padding, then unconsumed samples
        self._frames_out = 0
        self.n_samples = 0

    def process(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New ``(mel [k, 40], energy [k])`` made complete by ``block``."""
        x = np.asarray(block, dtype=np.float32)
        self.n_samples += x.size
        buf = np.concatenate((self._buf, x)) if x.size else self._buf
        k = max(0, (buf.size - WIN) // HOP + 1)
        if k == 0:
            self._buf = buf
            return np.zeros((0, N_MELS), np.float32), np.zeros(0)
        mel = mel_frames(buf, k)
        # Hop chunk j of the stream starts PAD samples into the window of frame j.
        energy = hop_energies(buf[PAD:], k)
        self._frames_out += k
        self._buf = buf[k * HOP :]
        return mel, energy
