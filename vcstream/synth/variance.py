"""The speaker's spectral detail, restored in the synthesiser's output: global-variance
compensation (Toda & Tokuda 2007, "A speech parameter generation algorithm considering
global variance for HMM-based speech synthesis").

A decoder trained on a squared error predicts the mean of what it may hear: its mels are
over-smoothed, the fine spectral detail of a real voice (how sharp its harmonics and
formant peaks stand, what lies between them) averaged away. That detail belongs to the
voice, and adaptation cannot give it back: the decoder plans fit only the spectral
envelope (``adapt.tune``) and hold the rest to the checkpoint's own output, because
fitting the whole mel smeared the harmonics. So the spread of that detail is measured on
the speaker's own recordings and restored in every sentence: the DCT over mel bands of each
frame (the cepstrum of the log-mel), coefficients ``LOW`` to ``HIGH - 1``, each rescaled
about the sentence's own mean so that its standard deviation over the sentence's loud
frames is the speaker's (``cepstral_std``). The envelope (coefficients below ``LOW``: the
formants, what the words are) and each frame's place among the sentence's sounds stay the
synthesiser's. It is a linear map per coefficient and per sentence: FastPitch makes the
whole sentence in one pass, so nothing waits for it.

Chosen on dev speakers (GE2E cosine of new sentences through V1, to the speaker's other
recordings; Whisper CER), adapted from 30 s: ktuberling/fr 0.716 -> 0.775, klettres/en
0.720 -> 0.754, CER 0 % before and after; zero-shot from 10 s, ktuberling/fr 0.556 ->
0.639. The speaker's gains came out 1.5-5 (the checkpoint's mels are that much smoother
than a real voice's). Coefficients 16 to 79 gave about half as much (0.741, 0.745), 4 to 79
more on one speaker and less on the other; up to 79 instead of 39 the same (0.779, 0.752),
so the highest ones, the ripple between adjacent bands where a recording's noise lies, are
left alone. Taking the detail itself from the speaker's frames (nearest frames by F0 and
envelope, kNN-style) instead of only its spread lowered the cosine (0.682-0.695) and raised
the CER (3-11 %). What it gives differs from voice to voice: in ``bench --clone --split
dev`` (rows with and without it) ktuberling/fr adapted from 10 / 30 s 0.672 -> 0.729 /
0.741 -> 0.783, klettres/en 0.716 -> 0.732 / 0.720 -> 0.755, ktuberling/ca 0.781 -> 0.766 /
0.790 -> 0.784; zero-shot over five more dev speakers 0.615 -> 0.622 / 0.613 -> 0.627
(klettres/de +0.05 from 10 s, hedgewars/Pirate -0.015).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vcstream.errors import InputError

LOW, HIGH = 8, 40  # the cepstral coefficients rescaled: [LOW, HIGH)
N_COEFFS = HIGH - LOW
SILENCE_DB = 40.0  # frames this far below a mel's loudest are neither measured nor changed
MIN_SPEAKER_FRAMES = 50  # loud frames (0.6 s) before a speaker's spread is measured
MIN_SENTENCE_FRAMES = 10  # a sentence with fewer loud frames is left as it is
MAX_GAIN = 4.0  # a coefficient is scaled by at most this, up or down
_LOG_TO_DB = 20.0 / np.log(10.0)  # the mel is natural log of magnitude


def dct_basis(n: int) -> np.ndarray:
    """Orthonormal DCT-II ``[n, n]`` over mel bands: ``c = D @ x``, ``x = D.T @ c``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi / n * (i + 0.5) * k) * np.sqrt(2.0 / n)
    d[0] /= np.sqrt(2.0)
    return d


def loud_frames(mel: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Frames within ``SILENCE_DB`` of the loudest (by mean log-mel): ``[T]`` booleans."""
    return _loud_levels(frame_levels_db(mel))


def frame_levels_db(mel: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Each frame's level in dB: its mean log-mel (natural log of magnitude)."""
    return mel.mean(0) * _LOG_TO_DB


def _loud_levels(level_db: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    return level_db > level_db.max() - SILENCE_DB


def cepstral_std(mels: Sequence[np.ndarray | torch.Tensor]) -> np.ndarray | None:
    """The speaker's spread ``(N_COEFFS,)`` of cepstral coefficients ``LOW..HIGH-1`` over
    the loud frames of their log-mels (``[n_mels, T]`` each, the HiFi-GAN convention of
    ``audio.mel``); None with fewer than ``MIN_SPEAKER_FRAMES`` loud frames in all."""
    frames = []
    for m in mels:
        x = np.asarray(torch.as_tensor(m).float().cpu(), np.float64)
        if x.ndim != 2 or x.shape[0] <= HIGH:
            raise InputError(f"want log-mels [n_mels > {HIGH}, frames], got {x.shape}")
        if x.shape[1]:
            frames.append(x[:, loud_frames(x)])
    if not frames or sum(f.shape[1] for f in frames) < MIN_SPEAKER_FRAMES:
        return None
    ceps = dct_basis(frames[0].shape[0])[LOW:HIGH] @ np.concatenate(frames, axis=1)
    return ceps.std(axis=1).astype(np.float32)


def check_cepstral_std(values) -> np.ndarray:
    """``values`` as a valid spread (``N_COEFFS`` finite positive numbers), else
    ``InputError``: it reaches the synthesiser from stored profiles."""
    try:
        x = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise InputError(f"cepstral spread must be {N_COEFFS} numbers: {err}") from err
    if x.shape != (N_COEFFS,) or not np.all(np.isfinite(x)) or not np.all(x > 0):
        raise InputError(f"cepstral spread must be {N_COEFFS} finite positive numbers")
    return x


class SpreadRestorer:
    """Rescales a sentence's cepstral detail to a speaker's spread (on the mel's device)."""

    def __init__(self) -> None:
        self._basis: dict[tuple[int, torch.device], torch.Tensor] = {}

    def _dct(self, n: int, device: torch.device) -> torch.Tensor:
        d = self._basis.get((n, device))
        if d is None:
            d = torch.from_numpy(dct_basis(n)).float().to(device)
            self._basis[(n, device)] = d
        return d

    def __call__(self, mel: torch.Tensor, speaker_std: np.ndarray) -> torch.Tensor:
        """``mel [n_mels, T]`` with coefficients ``LOW..HIGH-1`` of its loud frames
        rescaled about their mean to ``speaker_std`` (gains within ``MAX_GAIN``)."""
        if mel.ndim != 2 or mel.shape[0] <= HIGH:
            raise InputError(f"want a log-mel [n_mels > {HIGH}, frames], got {tuple(mel.shape)}")
        target = torch.as_tensor(check_cepstral_std(speaker_std), device=mel.device)
        x = mel.float()
        loud = loud_frames(x)
        if int(loud.sum()) < MIN_SENTENCE_FRAMES:
            return mel
        d = self._dct(x.shape[0], x.device)[LOW:HIGH]  # [N_COEFFS, n_mels]
        frames = x[:, loud]
        c = d @ frames
        mean = c.mean(dim=1, keepdim=True)
        gain = (target[:, None] / (c.std(dim=1, keepdim=True, correction=0) + 1e-6)).clamp(
            1.0 / MAX_GAIN, MAX_GAIN
        )
        # Only the detail moves: add back the change of those coefficients alone.
        out = x.clone()
        out[:, loud] = frames + d.T @ ((c - mean) * (gain - 1.0))
        return out.to(mel.dtype)


class SpreadMeter:
    """The spread of a live voice's spectral detail, over its latest ``window_s`` of
    voiced audio: ``feed`` voiced samples (16 kHz, as the live embedder hears them), read
    ``cepstral_std``. The audio is turned into mel frames once, a piece of ``piece_s`` at a
    time (about 18 ms of work per second of voice, nearly all of it resampling, on the
    embedder's thread), and only the frames' levels and detail coefficients are kept
    (bounded: ``window_s`` of frames)."""

    def __init__(
        self, sample_rate_hz: int = 16000, window_s: float = 30.0, piece_s: float = 1.0
    ) -> None:
        from collections import deque

        from vcstream.audio.mel import HOP, N_MELS, SAMPLE_RATE_HZ

        self.sample_rate_hz = sample_rate_hz
        self._piece = max(1, round(piece_s * sample_rate_hz))
        frames = max(1, round(window_s * SAMPLE_RATE_HZ / HOP))
        self._levels: deque[float] = deque(maxlen=frames)
        self._ceps: deque[np.ndarray] = deque(maxlen=frames)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._dct = dct_basis(N_MELS)[LOW:HIGH]
        self._cached: np.ndarray | None = None
        self._dirty = False

    def reset(self) -> None:
        self._levels.clear()
        self._ceps.clear()
        self._pending, self._pending_n = [], 0
        self._cached, self._dirty = None, False

    def warm_up(self) -> None:
        """Compile the resampler now (about 1 s, once per process): the first measurement
        would pay it on the embedder's thread, under its lock."""
        from vcstream.audio.io import resample
        from vcstream.audio.mel import SAMPLE_RATE_HZ

        resample(np.zeros(160, np.float32), self.sample_rate_hz, SAMPLE_RATE_HZ)

    def feed(self, voiced: np.ndarray) -> None:
        if voiced.size == 0:
            return
        self._pending.append(np.asarray(voiced, np.float32))
        self._pending_n += voiced.size
        if self._pending_n >= self._piece:
            self._measure(np.concatenate(self._pending))
            self._pending, self._pending_n = [], 0

    def _measure(self, audio: np.ndarray) -> None:
        from vcstream.audio.io import resample
        from vcstream.audio.mel import SAMPLE_RATE_HZ, mel_spectrogram

        mel = mel_spectrogram(resample(audio, self.sample_rate_hz, SAMPLE_RATE_HZ)).numpy()
        mel = mel.astype(np.float64)
        self._levels.extend(frame_levels_db(mel).tolist())
        self._ceps.extend((self._dct @ mel).T)
        self._dirty = True

    @property
    def cepstral_std(self) -> np.ndarray | None:
        """As ``cepstral_std`` of the window's mels; None before ``MIN_SPEAKER_FRAMES``
        loud frames."""
        if self._dirty:
            self._dirty = False
            levels = np.fromiter(self._levels, np.float64, len(self._levels))
            loud = _loud_levels(levels)
            self._cached = None
            if int(loud.sum()) >= MIN_SPEAKER_FRAMES:
                ceps = np.stack(list(self._ceps))[loud]
                self._cached = ceps.std(axis=0).astype(np.float32)
        return None if self._cached is None else self._cached.copy()
