"""Adaptation on a real person's recordings (a dev-split speaker of the real-voice data,
Debian hedgewars-data): the clips' own texts (their file names), the model's alignment, a
few seeded steps in float32; speech in the adapted voice is closer to that speaker's
held-out recordings.

Not Whisper's transcripts, nor bfloat16 where the CPU has it: with both the probe's Whisper
check (``adapt.probe.MAX_CER``) decided the outcome, and it differed between hosts (on one
with native bfloat16 80 steps were kept; on an AVX2 host, in float32, every candidate read
11.8-13.4 % CER and none was). Transcription and the check have their own tests
(``test_adapt_prepare``, ``test_adapt_tune``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vcstream.adapt import adapt
from vcstream.corpus import realvoice as rv
from vcstream.synth.base import SynthControls, VoiceConditioning

SPEAKER = "hedgewars/Default"  # dev split: tuning on it is allowed
SENTENCES = ("We should leave early if we want to catch the train.",)


@pytest.fixture(scope="module")
def models():
    from vcstream.corpus.features import FeatureExtractor
    from vcstream.synth.fastpitch import FastPitchSynthesizer
    from vcstream.vocoder.hifigan import HifiGanGenerator

    return (
        FastPitchSynthesizer(),
        FeatureExtractor(),
        HifiGanGenerator.from_checkpoint(),
    )


def _speak(synth, extractor, vocoder, voice: VoiceConditioning) -> np.ndarray:
    audio = []
    for text in SENTENCES:
        mel = torch.cat(list(synth.synthesize(extractor.phonemes(text), voice, SynthControls())), 1)
        with torch.inference_mode():
            audio.append(vocoder(mel[None]).reshape(-1).numpy())
    return np.concatenate(audio)


def test_adapting_to_a_real_speaker_moves_the_output_towards_their_other_recordings(models):
    synth, extractor, vocoder = models
    (speaker,) = rv.get_speakers([SPEAKER])
    assert speaker.split == "dev"
    data = rv.build_speaker_set(speaker, (6.0,), held_out_s=8.0)
    held_out = extractor.embedding(np.concatenate([s.audio for s in data.held_out]))
    segs = [s for s in data.references[6.0] if s.clip.text]
    refs = [(s.audio, rv.SAMPLE_RATE_HZ) for s in segs]
    # 80 steps (the plan's own are 160; CI time): measured, the probe's gain over zero-shot
    # 0.086 at 40, 0.142 at 80
    voice = adapt(
        synth, refs, transcripts=[s.clip.text for s in segs], seed=0, steps=80,
        extractor=extractor, precision="fp32",
    )  # fmt: skip
    assert voice.plan == "decoder-short" and 4.0 < voice.seconds <= 6.5  # under 8 s
    assert voice.transcripts and all(t.strip() for t in voice.transcripts)
    assert voice.cepstral_std is not None  # measured on the speech it was tuned on
    # kept by the probe: new sentences more like the recordings than zero-shot
    assert voice.selected_by == "similarity" and voice.steps in (40, 80)
    assert voice.probe_vocoder == "v1"  # no budget, no lite vocoder: V1 probes
    assert voice.probe_similarity >= voice.probe_similarity_before + 0.01
    zero_shot = VoiceConditioning(voice.embedding, voice.log_f0_mean, voice.log_f0_std)
    before = float(
        np.dot(extractor.embedding(_speak(synth, extractor, vocoder, zero_shot)), held_out)
    )
    after = float(
        np.dot(
            extractor.embedding(_speak(synth, extractor, vocoder, voice.conditioning())), held_out
        )
    )
    assert after > before + 0.03, (before, after)

    # The pitch path is the checkpoint's: the adaptation moved the spectral envelope of the
    # output, and much less its harmonic fine structure (fitting the whole mel smeared it,
    # and the output lost its voicing).
    from vcstream.adapt.tune import (
        ENVELOPE_COEFFS,
        envelope_coeffs_for,
        envelope_projection,
        split_mel,
    )

    # (a voice of about 360 Hz: 16 coefficients, where a low voice gets 24)
    coeffs = envelope_coeffs_for(np.exp(voice.log_f0_mean), ENVELOPE_COEFFS)
    assert coeffs == 16, coeffs
    lifter = envelope_projection(80, coeffs)
    phonemes = extractor.phonemes(SENTENCES[0])

    def mel(v: VoiceConditioning) -> torch.Tensor:
        return torch.cat(list(synth.synthesize(phonemes, v, SynthControls())), 1)[None]

    # The speaker's tempo came with it (a positive offset: slower than the checkpoint);
    # without it the frames line up with zero-shot's.
    offset = voice.prosody_offsets["duration"]
    assert offset != 0
    longer = mel(voice.conditioning()).shape[2] > mel(zero_shot).shape[2]
    assert longer == (offset > 0), (offset, longer)
    # (without the restored spread of spectral detail, which moves the fine structure on
    # purpose: synth.variance)
    decoder_only = dataclasses.replace(
        voice, params={k: v for k, v in voice.params.items() if not k.startswith("duration.")},
        key="", cepstral_std=None,
    )  # fmt: skip
    mels = [mel(zero_shot), mel(decoder_only.conditioning())]
    assert mels[0].shape == mels[1].shape
    (env0, fine0), (env1, fine1) = (split_mel(m, lifter) for m in mels)
    moved_envelope = float((env1 - env0).abs().mean())
    moved_fine = float((fine1 - fine0).abs().mean())
    # (measured: 0.13 of the envelope's move; the whole-mel plan "decoder-mel": 0.46)
    assert moved_fine < 0.25 * moved_envelope, (moved_fine, moved_envelope)
