"""The tuner's schedule: warm-up of the rate, held-out evaluations, the wall-clock deadline
(vcstream.adapt.tune), on a few seconds of a dev-split real speaker with given transcripts."""

from __future__ import annotations

import dataclasses
import time

import pytest

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
