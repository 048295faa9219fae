"""Distillation pairs for the lite vocoder: (log-mel, HiFi-GAN V1's waveform for that mel).

The target is what the universal V1 generator makes of a mel, so any mel source works. Two
sources, so the lite vocoder learns both real-speech mels and what it will be fed in use:

* ``r``: mels of speech rendered here by the corpus voices (Piper, flite, festival), each
  utterance by one voice, half of them pitch/formant-shifted (``corpus.variants``);
* ``s``: mels our FastPitch synthesiser predicts for another sentence in the voice of that
  rendered utterance (its GE2E embedding and log-F0 statistics), at a random speed and pitch
  shift.

Each pair is one ``ID.npz`` (``mel`` float16 ``[80, T]``, ``audio`` float16 ``[T * 256]``),
written atomically, so an interrupted run resumes where it stopped. No recordings of real
people are used (none of the benchmark or reserved packages).
"""

from __future__ import annotations

import logging
import os
import random
import time
from pathlib import Path

import numpy as np

from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ

log = logging.getLogger(__name__)

MIN_FRAMES = 48  # shorter than a training segment: not worth keeping


def save_pair(path: Path, mel: np.ndarray, audio: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, mel=mel.astype(np.float16), audio=audio.astype(np.float16))
    os.replace(tmp, path)


def load_pair(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as z:
        mel, audio = z["mel"].astype(np.float32), z["audio"].astype(np.float32)
    if mel.ndim != 2 or audio.shape != (mel.shape[1] * HOP,):
        raise ValueError(f"{path}: mel {mel.shape} and audio {audio.shape} do not match")
    return mel, audio


def pair_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.npz") if not p.name.endswith(".tmp.npz"))


class PairMaker:
    """Loads the voices, G2P, speaker encoder, FastPitch and V1 once; then one pair per call."""

    def __init__(self, out: Path, seed: int = 0) -> None:
        import torch

        from vcstream.corpus import texts
        from vcstream.corpus.features import FeatureExtractor
        from vcstream.corpus.voices import available_voices
        from vcstream.synth.fastpitch import FastPitchSynthesizer
        from vcstream.vocoder import load_vocoder

        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.torch = torch
        self.voices = [name for name, why in available_voices().items() if not why]
        if not self.voices:
            raise RuntimeError("no corpus voice can render here: install flite or festival")
        log.info("lite data: voices %s", ", ".join(self.voices))
        self.sentences = texts.fortune_sentences()
        self.features = FeatureExtractor()
        self.synth = FastPitchSynthesizer(chunk_frames=1 << 20)
        self.v1 = load_vocoder("universal")
        self._loaded: dict = {}
        self.seed = seed

    def _voice(self, name: str):
        from vcstream.corpus.voices import load_voice

        if name not in self._loaded:
            self._loaded[name] = load_voice(name)
        return self._loaded[name]

    def vocode(self, mel: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.v1(self.torch.from_numpy(mel)).numpy()

    def make(self, i: int) -> int:
        """Pairs ``{i:05d}r`` and ``{i:05d}s``; returns how many were written now."""
        from vcstream.audio.pitch import estimate_f0
        from vcstream.corpus.features import clean_audio, normalize_level
        from vcstream.corpus.variants import apply_variant, default_variants
        from vcstream.corpus.voices import VOICES
        from vcstream.synth.base import SynthControls, VoiceConditioning
        from vcstream.synth.fastpitch import log_f0_statistics

        r_path, s_path = self.out / f"{i:05d}r.npz", self.out / f"{i:05d}s.npz"
        if r_path.exists() and s_path.exists():
            return 0
        rng = random.Random(self.seed * 1_000_003 + i)
        name = self.voices[i % len(self.voices)]
        text = rng.choice(self.sentences)
        audio, sr = self._voice(name).render(text)
        x = clean_audio(audio, sr)
        if rng.random() < 0.6:
            variant = rng.choice(default_variants(VOICES[name][0].sex)[1:])
            x = normalize_level(apply_variant(x, SAMPLE_RATE_HZ, variant))
        x = x * rng.uniform(0.5, 1.2)  # levels vary in use too
        feats = self.features.audio_features(x)
        written = 0
        if feats.mel.shape[1] >= MIN_FRAMES and not r_path.exists():
            save_pair(r_path, feats.mel, self.vocode(feats.mel))
            written += 1
        f0, voiced = estimate_f0(x, SAMPLE_RATE_HZ, HOP, 60.0, 500.0)
        stats = log_f0_statistics(np.where(voiced, f0, 0.0))
        voice = VoiceConditioning(feats.embedding, *(stats or (None, None)))
        controls = SynthControls(
            speed=rng.uniform(0.85, 1.2), pitch_shift_semitones=rng.uniform(-3.0, 3.0)
        )
        phonemes = self.features.phonemes(rng.choice(self.sentences))
        mel = next(iter(self.synth.synthesize(phonemes, voice, controls)))
        mel = mel.detach().cpu().float().numpy()
        if mel.shape[1] >= MIN_FRAMES and not s_path.exists():
            save_pair(s_path, mel, self.vocode(mel))
            written += 1
        return written


def make_pairs(out: Path, count: int, seed: int = 0) -> int:
    """Make pair sets ``0 .. count - 1`` that are not there yet (resumable)."""
    from vcstream.errors import VcstreamError

    maker = PairMaker(out, seed)
    t0, made = time.monotonic(), 0
    for i in range(count):
        try:
            made += maker.make(i)
        except (VcstreamError, RuntimeError) as err:
            log.warning("lite data: item %d skipped: %s", i, err)
        if i % 10 == 9:
            log.info(
                "lite data: %d/%d sets, %d pairs made in %.0f s",
                i + 1,
                count,
                made,
                time.monotonic() - t0,
            )
    return made
