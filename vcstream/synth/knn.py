"""Frame-level conversion of a synthesised mel toward a speaker's own frames, after kNN-VC
(Baas, van Niekerk & Kamper 2023, "Voice Conversion With Just Nearest Neighbors").

kNN-VC replaces every frame of the source by the mean of its k nearest frames of the target
speaker, found in a content space where frames of the same sound lie close whoever says
them (WavLM layer 6 there), and vocodes the result. It needs minutes of the target; with
seconds the neighbours of a frame are few and mostly of other sounds. We have no
self-supervised content model here, so the content space is the speaker-normalised
cepstrum of the log-mel itself: the DCT over mel bands of each frame, coefficients 1 to
``n_ceps`` (c0, the level, left out), each coefficient standardised with the mean and
spread of its own side (the reference frames on one side, the output sentence on the
other): the per-speaker normalisation removes most of the fixed spectral tilt and formant
offset between two voices, so that what is left to match is the sound being made.

Three conversions (``mode``):

* ``"frame"`` (kNN-VC proper): the output frame becomes the mean log-mel of its k
  neighbours, at the output frame's own level (c0). The neighbours' harmonics belong to
  other pitches: averaged, they blur, and the vocoder hears no clear pitch.
* ``"envelope"``: only the spectral envelope (cepstra 1..``n_ceps``) is taken from the
  neighbours; the fine structure above it (the harmonics of the synthesiser's own pitch
  contour) and the level stay the output's. Speaker timbre from the speaker's frames,
  pitch and timing from the synthesiser.

* ``"stats"``: no neighbours, the baseline the two are measured against: cepstra 1..``n_ceps``
  of the output sentence get the reference's mean and spread per coefficient (cepstral
  mean and variance transfer, a per-coefficient linear map), so every frame keeps its own
  place among the sentence's sounds and only the voice's average envelope moves.

``alpha`` blends the converted cepstra with the output's (1: fully converted). Frames more
than ``variance.SILENCE_DB`` below the sentence's loudest are left as they are, and
reference frames that quiet are not candidates. Matching is by cosine similarity, as in
kNN-VC.

Tried and not kept (session 9, dev speakers adapted from 30 s, GE2E through V1 / CER): a
content space of the synthesiser's own aligned encoder states (the reference frames
labelled by the model's alignment of their Whisper transcripts, the output's by its
predicted durations), alone, with these cepstra, or restricted to the same phoneme.
ktuberling/fr: adapted 0.715 (0 % CER), envelope conversions 0.683-0.710 at 56-65 % CER,
frame conversions (with or without an F0 term) 0.59-0.68 at 53-100 %; klettres/en: 0.720
against 0.656-0.708 at 21-51 %. With 30 s of words or letters most of a sentence's sounds
have no instance among the reference frames, and Whisper's English transcripts of other
languages give the alignment little to hold on to.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from vcstream.errors import InputError, NoVoiceError
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.synth.variance import dct_basis, loud_frames

MODES = ("envelope", "frame", "stats")
MIN_REFERENCE_FRAMES = 50


def _standardise(c: np.ndarray) -> np.ndarray:
    return (c - c.mean(axis=1, keepdims=True)) / (c.std(axis=1, keepdims=True) + 1e-6)


def check_settings(
    *, k: int = 4, n_ceps: int = 20, mode: str = "envelope", alpha: float = 1.0, n_mels: int = 80
) -> None:
    """``InputError`` for settings ``FrameMatcher`` refuses (before any frames are read)."""
    if mode not in MODES:
        raise InputError(f"kNN mode must be one of {MODES}, got {mode!r}")
    if k < 1:
        raise InputError(f"kNN k must be at least 1, got {k}")
    if not 1 <= n_ceps < n_mels:
        raise InputError(f"kNN cepstra must be 1 to {n_mels - 1}, got {n_ceps}")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"kNN alpha must be in [0, 1], got {alpha}")


class FrameMatcher:
    """The reference frames of one speaker, ready to convert mels toward them."""

    def __init__(
        self,
        reference_mels: Sequence[np.ndarray | torch.Tensor],
        *,
        k: int = 4,
        n_ceps: int = 20,
        mode: str = "envelope",
        alpha: float = 1.0,
    ) -> None:
        check_settings(k=k, n_ceps=n_ceps, mode=mode, alpha=alpha)
        mels = [np.asarray(torch.as_tensor(m).float().cpu(), np.float64) for m in reference_mels]
        if not mels:
            raise NoVoiceError("kNN conversion needs reference frames; none given")
        n_mels = mels[0].shape[0]
        check_settings(n_ceps=n_ceps, n_mels=n_mels)
        if any(m.ndim != 2 or m.shape[0] != n_mels for m in mels):
            raise InputError(f"kNN: want mels [{n_mels}, frames]")
        frames = np.concatenate([m[:, loud_frames(m)] for m in mels if m.shape[1]], axis=1)
        if frames.shape[1] < MIN_REFERENCE_FRAMES:
            raise NoVoiceError(
                f"kNN conversion needs at least {MIN_REFERENCE_FRAMES} voiced reference "
                f"frames, got {frames.shape[1]}"
            )
        self.k, self.n_ceps, self.mode, self.alpha = min(k, frames.shape[1]), n_ceps, mode, alpha
        self.dct = dct_basis(n_mels)
        self.ref_mel = frames  # [n_mels, R]
        self.ref_ceps = self.dct @ frames  # [n_mels, R]
        keys = _standardise(self.ref_ceps[1 : n_ceps + 1])
        self.keys = keys / (np.linalg.norm(keys, axis=0, keepdims=True) + 1e-9)

    @property
    def n_frames(self) -> int:
        return self.ref_mel.shape[1]

    def convert(self, mel: np.ndarray | torch.Tensor) -> torch.Tensor:
        """``mel [n_mels, T]`` converted toward the reference frames (float32 tensor on
        the input's device)."""
        t = torch.as_tensor(mel)
        x = np.asarray(t.detach().float().cpu(), np.float64)
        if x.ndim != 2 or x.shape[0] != self.ref_mel.shape[0]:
            raise InputError(f"kNN: want a mel [{self.ref_mel.shape[0]}, frames], got {x.shape}")
        out = x.copy()
        loud = loud_frames(x) if x.shape[1] else np.zeros(0, bool)
        if loud.sum() < 2:
            return t.float()
        src = x[:, loud]
        ceps = self.dct @ src
        if self.mode == "stats":
            env = slice(1, self.n_ceps + 1)
            ref = self.ref_ceps[env]
            c = ceps[env]
            z = (c - c.mean(1, keepdims=True)) / (c.std(1, keepdims=True) + 1e-6)
            target = z * ref.std(1, keepdims=True) + ref.mean(1, keepdims=True)
            new = ceps.copy()
            new[env] = c + self.alpha * (target - c)
        else:
            new = self._from_neighbours(ceps)
        out[:, loud] = self.dct.T @ new
        return torch.from_numpy(out.astype(np.float32)).to(t.device)

    def _from_neighbours(self, ceps: np.ndarray) -> np.ndarray:
        q = _standardise(ceps[1 : self.n_ceps + 1])
        q /= np.linalg.norm(q, axis=0, keepdims=True) + 1e-9
        sim = q.T @ self.keys  # [T', R]
        nearest = np.argpartition(-sim, self.k - 1, axis=1)[:, : self.k]
        if self.mode == "frame":
            target = self.ref_ceps[:, nearest].mean(axis=2)  # [n_mels, T']
            new = ceps + self.alpha * (target - ceps)
            new[0] = ceps[0]  # the output's own level
        else:
            env = slice(1, self.n_ceps + 1)
            target = self.ref_ceps[env][:, nearest].mean(axis=2)
            new = ceps.copy()
            new[env] = ceps[env] + self.alpha * (target - ceps[env])
        return new


class FrameMatchingSynthesizer:
    """A ``Synthesizer`` that converts another synthesiser's mel with a ``FrameMatcher``.

    The sentence's whole mel is converted at once (the normalisation is per sentence), so
    the first chunk waits for the inner synthesiser's last; FastPitch makes a sentence in
    one pass anyway.
    """

    clones = True

    def __init__(self, inner, matcher: FrameMatcher, chunk_frames: int = 32) -> None:
        if chunk_frames < 1:
            raise InputError(f"chunk_frames must be positive, got {chunk_frames}")
        self.inner = inner
        self.matcher = matcher
        self.chunk_frames = chunk_frames
        self.name = f"{inner.name}+knn"
        self.default_voice_name = inner.default_voice_name

    def synthesize(
        self, phonemes: Sequence[str], voice: VoiceConditioning, controls: SynthControls
    ) -> Iterator[torch.Tensor]:
        mel = torch.cat(list(self.inner.synthesize(phonemes, voice, controls)), dim=1)
        mel = self.matcher.convert(mel)
        for start in range(0, mel.shape[1], self.chunk_frames):
            yield mel[:, start : start + self.chunk_frames]


def matcher_for_recordings(inner, paths: Sequence, mode: str = "envelope", **options):
    """``inner`` wrapped with a ``FrameMatcher`` over the frames of WAV recordings (cleaned
    and level-normalised as the training corpus's recordings are)."""
    from vcstream.audio.io import read_wav
    from vcstream.audio.mel import mel_spectrogram
    from vcstream.corpus.features import clean_audio

    mels = []
    for path in paths:
        audio, sr = read_wav(path)
        mels.append(mel_spectrogram(clean_audio(audio, sr)).numpy())
    return FrameMatchingSynthesizer(inner, FrameMatcher(mels, mode=mode, **options))
