"""Which vocoder probes the tuning (vcstream.adapt.probe.choose_probe_vocoder): HiFi-GAN V1,
unless probes through it would take too much of the time left on this machine; the
choice is reported and kept with the voice."""

from __future__ import annotations

import pytest
import torch

from vcstream.adapt import probe
from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ


class _TimedVocoder(torch.nn.Module):
    """Silence, taking ``cost`` seconds of the given clock per second of audio."""

    def __init__(self, clock: list[float], cost: float) -> None:
        super().__init__()
        self.clock, self.cost = clock, cost

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        n = mel.shape[-1] * HOP
        self.clock[0] += self.cost * n / SAMPLE_RATE_HZ
        return torch.zeros(mel.shape[0], 1, n)


@pytest.fixture
def clock(monkeypatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(probe, "clock", lambda: now[0])
    return now


def test_the_cost_is_wall_time_per_second_of_audio_measured_once_per_vocoder(clock):
    slow = _TimedVocoder(clock, 2.0)
    assert probe.vocoder_cost(slow) == pytest.approx(2.0)
    before = clock[0]
    assert probe.vocoder_cost(slow) == pytest.approx(2.0)
    assert clock[0] == before  # not run again
    assert probe.vocoder_cost(_TimedVocoder(clock, 0.5)) == pytest.approx(0.5)


def test_lite_probes_only_where_v1_would_take_more_than_its_share_of_the_time_left(clock):
    lite = _TimedVocoder(clock, 0.05)
    for cost in (0.5, 2.0):
        v1 = _TimedVocoder(clock, cost)
        planned = probe.PROBES_PLANNED * probe.PROBE_AUDIO_S * cost
        enough = planned / probe.PROBE_SHARE  # the time left at which V1 just fits
        assert probe.choose_probe_vocoder(v1, lite, 1.1 * enough) == (v1, "v1")
        assert probe.choose_probe_vocoder(v1, lite, 0.9 * enough) == (lite, "lite")
        # without a budget, or without a lite vocoder to fall back on: V1
        assert probe.choose_probe_vocoder(v1, lite, None) == (v1, "v1")
        assert probe.choose_probe_vocoder(v1, None, 0.0) == (v1, "v1")
    # the figures of the docstring: V1 at 2.0 s per second of audio leaves the 60 s budget
    # (55 s after preparing the speech) to lite, at 0.5 s to V1
    assert probe.choose_probe_vocoder(_TimedVocoder(clock, 2.0), lite, 55.0)[1] == "lite"
    assert probe.choose_probe_vocoder(_TimedVocoder(clock, 0.5), lite, 55.0)[1] == "v1"


def test_an_adaptation_says_which_vocoder_probed_and_the_voice_keeps_it(monkeypatch):
    from vcstream.adapt import adapt
    from vcstream.adapt.voice import AdaptedVoice
    from vcstream.corpus import realvoice as rv
    from vcstream.corpus.features import FeatureExtractor
    from vcstream.errors import InputError
    from vcstream.synth.fastpitch import FastPitchSynthesizer
    from vcstream.vocoder.hifigan import HifiGanGenerator
    from vcstream.vocoder.lite import load_lite

    (speaker,) = rv.get_speakers(["hedgewars/Default"])  # dev split
    data = rv.build_speaker_set(speaker, (3.0,), held_out_s=1.0)
    segs = [s for s in data.references[3.0] if s.clip.text]
    recordings = [(s.audio, rv.SAMPLE_RATE_HZ) for s in segs]
    texts = [s.clip.text for s in segs]
    synth, extractor = FastPitchSynthesizer(), FeatureExtractor()
    v1, lite = HifiGanGenerator.from_checkpoint(), load_lite()
    monkeypatch.setattr(probe, "PROBE_SHARE", 0.0)  # any cost is too much: lite probes
    stages = []
    voice = adapt(
        synth, recordings, transcripts=texts, steps=1, max_wall_s=600.0, extractor=extractor,
        probe_vocoder=v1, lite_probe_vocoder=lite,
        progress=lambda stage, fraction, info: stages.append((stage, info)),
    )  # fmt: skip
    assert ("probe", {"vocoder": "lite"}) in stages
    assert voice.selected_by == "similarity" and voice.probe_vocoder == "lite"
    assert voice.metadata()["probe_vocoder"] == "lite"
    assert AdaptedVoice.from_json(voice.to_json()).probe_vocoder == "lite"
    held = adapt(
        synth, recordings, transcripts=texts, steps=1, extractor=extractor,
        selection="held-out loss",
    )  # fmt: skip
    assert held.probe_vocoder is None  # no probe
    damaged = {**voice.to_json(), "probe_vocoder": 5}
    with pytest.raises(InputError, match=r"expected a string"):
        AdaptedVoice.from_json(damaged)
