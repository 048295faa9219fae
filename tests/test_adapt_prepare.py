"""How the speaker's recordings are grouped for Whisper, and which of its pieces are taken
(vcstream.adapt.prepare)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vcstream.adapt.prepare import (
    AVG_LOGPROB_FALLBACK,
    AVG_LOGPROB_MIN,
    GROUP_S,
    group_recordings,
    prepare,
)
from vcstream.audio.mel import SAMPLE_RATE_HZ
from vcstream.errors import NoVoiceError

SR = SAMPLE_RATE_HZ


def test_short_recordings_are_grouped_in_order_up_to_the_group_length():
    pause = int(0.4 * SR)
    lengths = [SR] * 20  # twenty 1 s clips
    groups = group_recordings(lengths, pause)
    assert [i for g in groups for i in g] == list(range(20))  # each once, in order
    for g in groups:
        assert sum(lengths[i] + pause for i in g) <= GROUP_S * SR
    # ... and no group could have taken the next clip too
    for g, nxt in itertools.pairwise(groups):
        assert sum(lengths[i] + pause for i in g) + lengths[nxt[0]] + pause > GROUP_S * SR


def test_a_recording_longer_than_a_group_stands_alone():
    lengths = [SR, int((GROUP_S + 5) * SR), SR, SR]
    assert group_recordings(lengths, 0) == [[0], [1], [2, 3]]


class _ScriptedWhisper:
    """Whisper at the edge: one segment per call, the whole stream, with the next of the
    given mean token log-probabilities (what prepare decides on is then known)."""

    def __init__(self, logprobs: list[float], text: str = "hello there, this is a test") -> None:
        self.logprobs = list(logprobs)
        self.text = text

    def segments(self, audio, sample_rate_hz, *, fallback=True, timestamps=True):
        from vcstream.asr import Segment

        return [
            Segment(0.0, len(audio) / sample_rate_hz, self.text, self.logprobs.pop(0), 0.1,
                    1.2)
        ]  # fmt: skip


@pytest.fixture(scope="module")
def five_second_recordings():
    """Two 5 s stretches of a dev speaker's real speech: Whisper hears them apart."""
    from vcstream.corpus import realvoice as rv
    from vcstream.corpus.features import FeatureExtractor

    (speaker,) = rv.get_speakers(["hedgewars/Default"])
    assert speaker.split == "dev"
    data = rv.build_speaker_set(speaker, (10.0,), held_out_s=1.0)
    speech = np.concatenate([s.audio for s in data.references[10.0]])
    n = 5 * rv.SAMPLE_RATE_HZ
    assert len(speech) >= 2 * n
    return [
        (speech[:n], rv.SAMPLE_RATE_HZ),
        (speech[n : 2 * n], rv.SAMPLE_RATE_HZ),
    ], FeatureExtractor()


def test_what_whisper_is_unsure_of_is_left_out_while_enough_is_sure(five_second_recordings):
    recordings, extractor = five_second_recordings
    p = prepare(recordings, None, extractor=extractor, transcriber=_ScriptedWhisper([-0.5, -1.2]))
    assert len(p.utterances) == 1 and p.seconds == pytest.approx(5.0, abs=0.3)
    assert any("unsure" in d and "-1.20" in d for d in p.dropped)


def test_with_too_little_sure_the_nearly_sure_pieces_are_taken_and_said(five_second_recordings):
    recordings, extractor = five_second_recordings
    assert AVG_LOGPROB_FALLBACK < -1.2 < AVG_LOGPROB_MIN
    p = prepare(recordings, None, extractor=extractor, transcriber=_ScriptedWhisper([-1.2, -1.6]))
    assert len(p.utterances) == 1 and p.seconds == pytest.approx(5.0, abs=0.3)
    assert any(f"down to log-prob {AVG_LOGPROB_FALLBACK}" in d for d in p.dropped)
    assert any("unsure" in d and "-1.60" in d for d in p.dropped)  # still left out


def test_with_nothing_nearly_sure_there_is_no_usable_speech(five_second_recordings):
    recordings, extractor = five_second_recordings
    with pytest.raises(NoVoiceError, match="no usable speech"):
        prepare(recordings, None, extractor=extractor, transcriber=_ScriptedWhisper([-1.6, -1.8]))


def test_a_nearly_sure_piece_with_too_few_sounds_for_its_length_is_left_out(
    five_second_recordings,
):
    recordings, extractor = five_second_recordings
    # two words for 5 s of speech: what Whisper wrote for a dev speaker of Danish words
    whisper = _ScriptedWhisper([-1.2, -1.6], text="You won!")
    with pytest.raises(NoVoiceError, match="sounds per second is too few"):
        prepare(recordings, None, extractor=extractor, transcriber=whisper)
    # ... while a sure one is taken whatever it spells
    p = prepare(
        recordings,
        None,
        extractor=extractor,
        transcriber=_ScriptedWhisper([-0.5, -0.5], text="You won!"),
    )
    assert len(p.utterances) == 2
