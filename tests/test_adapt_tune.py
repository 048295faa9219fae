"""The tuner's schedule: warm-up of the rate, held-out evaluations, the wall-clock deadline
(vcstream.adapt.tune), on a few seconds of a dev-split real speaker with given transcripts."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest
import torch

from vcstream.adapt import tune
from vcstream.adapt.prepare import prepare
from vcstream.corpus import realvoice as rv

SPEAKER = "hedgewars/Default"  # dev split: tuning on it is allowed


@pytest.fixture(scope="module")
def setup():
    from vcstream.corpus.features import FeatureExtractor
    from vcstream.synth.fastpitch import FastPitchSynthesizer

    (speaker,) = rv.get_speakers([SPEAKER])
    assert speaker.split == "dev"
    data = rv.build_speaker_set(speaker, (3.0,), held_out_s=1.0)
    segs = [s for s in data.references[3.0] if s.clip.text]
    prepared = prepare(
        [(s.audio, rv.SAMPLE_RATE_HZ) for s in segs],
        [s.clip.text for s in segs],
        extractor=FeatureExtractor(),
    )
    synth = FastPitchSynthesizer()
    return synth, prepared


def _tuner(setup, **plan_changes) -> tune.Tuner:
    synth, prepared = setup
    plan = dataclasses.replace(tune.PLANS["decoder"], **plan_changes)
    table = {s: i for i, s in enumerate(synth.symbols)}
    return tune.Tuner(
        synth.model,
        table,
        prepared.utterances,
        prepared.embedding,
        prepared.log_f0,
        plan,
        seed=0,
        precision="fp32",
    )


def test_the_rate_rises_over_the_warm_up_steps():
    plan = dataclasses.replace(tune.PLANS["decoder"], lr=1e-4, warmup_steps=4)
    assert [plan.rate(k) for k in (1, 2, 4, 5, 100)] == pytest.approx(
        [0.25e-4, 0.5e-4, 1e-4, 1e-4, 1e-4]
    )
    assert dataclasses.replace(plan, warmup_steps=0).rate(1) == 1e-4


def test_held_out_frames_are_evaluated_every_few_steps_and_after_the_last(setup):
    tuner = _tuner(setup, warmup_steps=2 * tune.EVAL_EVERY)
    result = tuner.run(max_steps=tune.EVAL_EVERY + 1)
    assert [k for k, _ in result.evaluations] == [0, tune.EVAL_EVERY, tune.EVAL_EVERY + 1]
    # the steps ran at the plan's rate, still warming up
    assert tuner.optim.param_groups[0]["lr"] == pytest.approx(tuner.plan.rate(tune.EVAL_EVERY + 1))


def test_a_deadline_already_past_tunes_nothing_and_keeps_the_checkpoint(setup):
    result = _tuner(setup).run(max_steps=50, deadline=time.monotonic() - 1.0)
    assert result.steps == 0 and result.params == {}
    assert [k for k, _ in result.evaluations] == [0]
    assert result.held_out == result.held_out_before


class _ScriptedScore:
    """A score that rises to a peak at step ``peak`` and falls after it: what the tuner
    keeps, and when it stops, is then known in advance."""

    def __init__(self, tuner: tune.Tuner, peak: int, gain: float = 0.1) -> None:
        self.tuner, self.peak, self.gain = tuner, peak, gain
        self.snapshots: dict[int, list] = {}

    def __call__(self, model) -> float:
        k = self.tuner.steps_done
        self.snapshots[k] = [p.detach().clone() for p in self.tuner.trainable]
        return 0.5 + self.gain * (1.0 - abs(k - self.peak) / self.peak)


def test_with_a_scorer_the_best_scoring_parameters_are_kept_and_patience_stops_it(
    setup, monkeypatch
):
    monkeypatch.setattr(tune, "SCORE_EVERY", 1)  # the schedule, in fewer steps
    monkeypatch.setattr(tune, "SCORE_PATIENCE_EVALS", 2)
    tuner = _tuner(setup, warmup_steps=0)
    every, patience = tune.SCORE_EVERY, tune.SCORE_PATIENCE_EVALS
    score = _ScriptedScore(tuner, peak=2 * every)
    result = tuner.run(max_steps=20 * every, scorer=score)
    # scored before tuning, with the prosody offsets alone, and every SCORE_EVERY steps,
    # stopping `patience` after the peak
    assert [k for k, _ in result.evaluations] == [
        0,
        *(every * i for i in range(0, 2 + patience + 1)),
    ]
    assert result.steps == 2 * every
    assert result.score == pytest.approx(0.6) and result.score_before == pytest.approx(0.5)
    kept = score.snapshots[2 * every]
    for name, value in zip(tuner.names, kept, strict=True):
        assert torch.equal(result.params[name], value.float())
    # the held-out loss reported is that of the kept parameters, not the last step's
    assert result.held_out == pytest.approx(_loaded(setup, result.params).held_out_loss())


def test_with_a_scorer_too_little_gain_keeps_the_checkpoint(setup, monkeypatch):
    monkeypatch.setattr(tune, "SCORE_EVERY", 1)
    tuner = _tuner(setup, warmup_steps=0)
    score = _ScriptedScore(tuner, peak=tune.SCORE_EVERY, gain=tune.MIN_SIMILARITY_GAIN / 2)
    result = tuner.run(max_steps=3 * tune.SCORE_EVERY, scorer=score)
    assert result.params == {} and result.steps == 0
    assert result.held_out == result.held_out_before


def _teacher_forced_residual(synth, prepared) -> float:
    """The mean duration residual from the checkpoint's own teacher-forced pass
    over all of the utterances at once (not the tuner's per-batch cache)."""
    table = {s: i for i, s in enumerate(synth.symbols)}
    t = tune._targets(prepared.utterances, table, prepared.embedding, prepared.log_f0)
    synth.model.eval()
    with torch.no_grad():
        out = synth.model(t)
    mask = out["text_mask"]
    dur = (torch.log1p(out["durations"].float()) - out["log_dur_pred"])[mask].mean()
    return float(dur)


def _slowed(prepared, factor: int):
    """The same speaker ``factor`` times as slow: every mel and F0 frame repeated."""
    from vcstream.adapt.prepare import Utterance

    utts = [
        Utterance(u.text, u.phonemes, u.mel.repeat(factor, axis=1), u.f0_hz.repeat(factor),
                  u.audio, u.seconds * factor)
        for u in prepared.utterances
    ]  # fmt: skip
    return dataclasses.replace(prepared, utterances=utts)


def _accepted_run(tuner: tune.Tuner) -> tune.TuneResult:
    """Two steps, kept: a scripted score that peaks after them."""
    result = tuner.run(max_steps=2, scorer=_ScriptedScore(tuner, peak=2))
    assert result.params, "the scripted score should have kept the tuned parameters"
    return result


def test_the_tempo_offset_is_the_speakers_mean_residual_and_follows_its_tempo(setup):
    synth, prepared = setup
    tuner = _tuner(setup)
    assert tuner.prosody == {
        "duration": pytest.approx(_teacher_forced_residual(synth, prepared), abs=0.02)
    }
    slow = _tuner((synth, _slowed(prepared, 2)))
    # Twice as slow: log(1 + 2d) - log(1 + d) is log 2 for long symbols, less for short
    # ones (0 for none); measured 0.26 on these recordings.
    assert 0.15 < slow.prosody["duration"] - tuner.prosody["duration"] <= math.log(2)
    result = _accepted_run(tuner)
    assert result.prosody == tuner.prosody
    own = dict(synth.model.named_parameters())
    for predictor, offset in tuner.prosody.items():
        name = f"{predictor}.out.bias"
        assert result.params[name] == pytest.approx(own[name].detach() + offset, abs=1e-5)


def test_an_adapted_voice_with_a_slower_speaker_speaks_a_new_sentence_slower(setup):
    from vcstream.adapt.voice import AdaptedVoice
    from vcstream.synth.base import SynthControls, VoiceConditioning

    synth, prepared = setup
    lengths = []
    for factor in (1, 2):
        tuner = _tuner((synth, _slowed(prepared, factor)))
        params = _accepted_run(tuner).params
        voice = AdaptedVoice(
            params=params, embedding=prepared.embedding, log_f0_mean=prepared.log_f0[0],
            log_f0_std=prepared.log_f0[1], checkpoint_id=synth.checkpoint_id, plan="decoder",
            seconds=1.0, utterances=1, steps=1, held_out_loss_before=0.0, held_out_loss=0.0,
            wall_s=0.0,
        )  # fmt: skip
        phonemes = list("ðə kæt sæt ɔn ðə mæt")
        cond: VoiceConditioning = voice.conditioning()
        mel = torch.cat(list(synth.synthesize(phonemes, cond, SynthControls())), dim=1)
        lengths.append(mel.shape[1])
    assert lengths[1] > 1.15 * lengths[0], lengths


def _loaded(setup, params) -> tune.Tuner:
    other = _tuner(setup)
    with torch.no_grad():
        for name, p in other.model.named_parameters():
            if name in params:
                p.copy_(params[name])
    return other


def test_the_probe_scores_a_model_by_how_like_the_speaker_it_sounds(setup):
    from vcstream.adapt.probe import ProbeScorer
    from vcstream.corpus.features import FeatureExtractor
    from vcstream.vocoder.lite import load_lite

    synth, prepared = setup
    table = {s: i for i, s in enumerate(synth.symbols)}
    scorer = ProbeScorer(
        load_lite(), FeatureExtractor(), table, prepared.embedding, prepared.log_f0,
        sentences=("A short probe sentence.",),
    )  # fmt: skip
    first = scorer(synth.model)
    assert -1.0 <= first <= 1.0
    assert scorer(synth.model) == pytest.approx(first, abs=1e-6)  # deterministic
    assert not synth.model.training  # left as it was found
    # without its speaker conditioning the model speaks in no one's voice in particular
    plain = _loaded(setup, {n: torch.zeros_like(p) for n, p in synth.model.named_parameters()
                            if n.startswith("speaker.")})  # fmt: skip
    assert scorer(plain.model) < first - 0.01


def test_the_decoder_hears_each_frames_pitch_movement_and_nothing_else_changes(setup):
    tuner = _tuner(setup, frame_pitch=True)
    model = tuner.model
    batches = [tuner._batch(idx) for idx in tuner.train_batches + tuner.held_batches]
    b = max(batches, key=lambda b: int((b.targets.voiced & b.mel_mask).sum()))
    dev = b.pitch_deviation
    assert dev is not None and dev.shape == b.targets.log_f0.shape
    voiced = b.targets.voiced & b.mel_mask
    assert torch.all(dev[~voiced] == 0)  # unvoiced and padding frames: no movement
    # a voiced frame: its log F0 less its symbol's, in the pitch embedding's units
    from vcstream.synth.fastpitch import regulate_length

    sym, _ = regulate_length(b.abs_log_f0[..., None], b.durations, dev.shape[1])
    want = (b.targets.log_f0 - sym[..., 0]).clamp(-math.log(2), math.log(2))
    want = torch.where(voiced, want, 0.0) / model.cfg.norm.log_f0_std
    assert torch.allclose(dev, want, atol=1e-5)
    assert float(dev[voiced].abs().max()) > 0.01  # real speech moves within its symbols
    # an octave error of the tracker moves it at most an octave
    lf0 = b.targets.log_f0 + math.log(4.0) * voiced
    far = model.frame_pitch_deviation(lf0, voiced, b.abs_log_f0, b.durations)
    assert float(far.abs().max()) <= math.log(2) / model.cfg.norm.log_f0_std + 1e-5
    # zero movement is the decoder without it; some movement changes the frames it hears
    x, spk = b.decoder_input
    m = b.mel_target.shape[2]
    with torch.no_grad():
        plain, _ = model._decode(x, b.durations, spk, m)
        still, _ = model._decode(x, b.durations, spk, m, torch.zeros_like(dev))
        moving, _ = model._decode(x, b.durations, spk, m, dev)
    assert torch.allclose(plain, still, atol=1e-6)
    assert float((moving - plain).abs().max()) > 1e-3
    # plans without it leave the decoder as it was
    assert _tuner(setup, frame_pitch=False)._batch(tuner.train_batches[0]).pitch_deviation is None


def test_the_probe_never_keeps_a_model_whisper_cannot_read(setup):
    from vcstream.adapt.probe import MAX_CER, UNUSABLE, ProbeScorer
    from vcstream.asr import Transcriber
    from vcstream.corpus.features import FeatureExtractor
    from vcstream.synth.fastpitch import frame_ids
    from vcstream.vocoder.lite import load_lite

    synth, prepared = setup
    table = {s: i for i, s in enumerate(synth.symbols)}
    vocoder, extractor = load_lite(), FeatureExtractor()
    text = "Please bring me a cup of tea."
    # a decoder that says nothing (a flat mel, a hum, whatever the conditioning) ...
    mute = _loaded(setup, {n: torch.zeros_like(p) for n, p in synth.model.named_parameters()
                           if n.startswith("to_mel.")})  # fmt: skip
    with torch.inference_mode():
        ids = torch.tensor([frame_ids(extractor.phonemes(text), table)])
        mel = mute.model.infer(ids, torch.from_numpy(prepared.embedding)[None])
        hum = extractor.embedding(vocoder(mel[None]).reshape(-1).numpy())
    # ... scored against its own hum's embedding: the most similar model there could be
    scorer = ProbeScorer(
        vocoder, extractor, table, hum, prepared.log_f0, sentences=(text,),
        transcriber=Transcriber(),
    )  # fmt: skip
    first = scorer(synth.model)  # the checkpoint's own: the CER allowed after it
    assert first > UNUSABLE and scorer.last_cer is not None
    assert scorer.allowed_cer == max(MAX_CER, scorer.last_cer)
    assert scorer(mute.model) == UNUSABLE  # closer to the target than anything, no words
    assert scorer.last_cer > scorer.allowed_cer
    # a model no better than the best so far could not be kept: Whisper is not asked
    assert scorer(synth.model) == pytest.approx(first, abs=1e-6)
    assert scorer.last_cer is None
