"""The real-voice data: speakers found in the Debian packages, references of the asked
lengths, held-out clips never in a reference, the dev/test split, nothing read from outside the
packages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vcstream.corpus import realvoice as rv
from vcstream.errors import InputError, NoVoiceError

pytestmark = pytest.mark.skipif(
    not (rv.HEDGEWARS.is_dir() and rv.KTUBERLING.is_dir() and rv.FESTVOX_RU.is_dir()),
    reason="Debian packages hedgewars-data, ktuberling-data and festvox-ru are needed",
)


@pytest.fixture(scope="module")
def speakers() -> list[rv.RealSpeaker]:
    return rv.find_speakers()


def test_finds_speakers_of_every_source_with_texts(speakers) -> None:
    by_source = {s.source for s in speakers}
    assert {"festvox-ru", "ktuberling", "hedgewars"} <= by_source
    names = {s.name for s in speakers}
    assert {"festvox-ru/nsh", "hedgewars/British", "ktuberling/en"} <= names
    assert not {"ktuberling/sr@latin", "ktuberling/sr"} & names  # copies, 10 s in all
    ru = next(s for s in speakers if s.name == "festvox-ru/nsh")
    assert len(ru.clips) > 500 and all(c.text_exact and c.text for c in ru.clips)
    assert "+" not in ru.clips[0].text  # the voice's stress marks are not text
    en = next(s for s in speakers if s.name == "ktuberling/en")
    assert {c.text for c in en.clips} >= {"camel", "ball"}  # "egypt_camel" -> "camel"


def test_split_is_disjoint_and_covers_every_speaker(speakers) -> None:
    dev = {s.name for s in rv.find_speakers("dev")}
    test = {s.name for s in rv.find_speakers("test")}
    assert dev and test and not dev & test
    assert dev | test == {s.name for s in speakers}
    assert test <= rv.TEST_SPEAKERS
    with pytest.raises(InputError, match="split"):
        rv.find_speakers("train")


def test_references_have_the_asked_lengths_and_never_hold_a_held_out_clip() -> None:
    (spk,) = rv.get_speakers(["hedgewars/British"])
    ss = rv.build_speaker_set(spk, (3.0, 10.0), held_out_s=6.0)
    assert ss.lengths == [3.0, 10.0]
    held = {s.clip.path for s in ss.held_out}
    assert sum(s.seconds for s in ss.held_out) >= 6.0
    for length, segs in ss.references.items():
        assert sum(s.seconds for s in segs) == pytest.approx(length, abs=1 / rv.SAMPLE_RATE_HZ)
        assert not held & {s.clip.path for s in segs}
        assert all(s.audio.dtype == np.float32 and np.abs(s.audio).max() <= 1.0 for s in segs)
    # nested: the 3 s reference is the start of the 10 s one
    short, long_ = ss.references[3.0], ss.references[10.0]
    assert [s.clip.path for s in short] == [s.clip.path for s in long_[: len(short)]]
    assert np.array_equal(short[0].audio, long_[0].audio[: len(short[0].audio)])
    # deterministic
    again = rv.build_speaker_set(spk, (3.0, 10.0), held_out_s=6.0)
    assert [s.clip.path for s in again.references[10.0]] == [s.clip.path for s in long_]


def test_long_reader_is_decoded_only_as_far_as_needed_and_offers_60_s() -> None:
    (spk,) = rv.get_speakers(["festvox-ru/nsh"])
    ss = rv.build_speaker_set(spk, (3.0, 60.0), held_out_s=8.0)
    assert ss.lengths == [3.0, 60.0]
    used = {s.clip.path for s in ss.held_out} | {s.clip.path for s in ss.references[60.0]}
    assert len(used) < 30  # of 620 recordings


def test_too_little_audio_is_a_clear_error_and_lengths_beyond_it_are_left_out() -> None:
    (spk,) = rv.get_speakers(["hedgewars/Default_ru"])  # about 36 s
    ss = rv.build_speaker_set(spk, (3.0, 10.0, 60.0), held_out_s=10.0)
    assert ss.lengths == [3.0, 10.0]
    (cs,) = rv.get_speakers(["klettres/cs"])  # its syllables do not decode
    with pytest.raises(NoVoiceError, match="needs 30 s held out"):
        rv.build_speaker_set(cs, (3.0,), held_out_s=30.0)
    with pytest.raises(InputError, match="unknown real-voice speaker"):
        rv.get_speakers(["hedgewars/Nobody"])


def test_decode_reads_ogg_and_wav_clips_only_from_the_sources_and_refuses_broken_files(
    tmp_path: Path,
) -> None:
    ogg = rv.decode(rv.HEDGEWARS / "British" / "Hello.ogg")
    wav = rv.decode(rv.FESTVOX_RU / "wav" / "ru_0001.wav")
    assert ogg.ndim == wav.ndim == 1 and len(ogg) > 0.3 * rv.SAMPLE_RATE_HZ
    assert len(wav) == pytest.approx(16.08 * rv.SAMPLE_RATE_HZ, rel=0.01)  # 16 kHz -> 22050
    outside = tmp_path / "elsewhere.wav"
    outside.write_bytes(b"RIFF")  # refused before it is opened
    with pytest.raises(InputError, match="not a recording of the real-voice benchmark"):
        rv.load_clip(rv.Clip(outside, "elsewhere", False))
    link = tmp_path / "Hello.ogg"  # a link into a source is read as the file it names ...
    link.symlink_to(rv.HEDGEWARS / "British" / "Hello.ogg")
    assert rv.check_in_sources(link) == (rv.HEDGEWARS / "British" / "Hello.ogg").resolve()
    sneaky = rv.HEDGEWARS / "British" / ".." / ".." / ".." / ".." / ".."
    with pytest.raises(InputError, match="not a recording"):  # ... and a path out of one is not
        rv.check_in_sources(sneaky / "elsewhere.wav")
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS" + b"\0" * 100)
    from vcstream.errors import AudioFileError

    with pytest.raises(AudioFileError, match=r"broken\.ogg"):
        rv.decode(broken)
