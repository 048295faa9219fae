"""How the speaker's recordings are grouped for Whisper (vcstream.adapt.prepare)."""

from __future__ import annotations

import itertools

from vcstream.adapt.prepare import GROUP_S, group_recordings
from vcstream.audio.mel import SAMPLE_RATE_HZ

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
