"""The corpus builder: sentences, voices, pitch/formant variants, and a small real build.

Needs the Debian packages flite, festival, festvox-us-slt-hts, festvox-kallpc16k,
festvox-kdlpc16k and fortunes (``make install-test`` installs them as root).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vcstream.audio.io import read_wav
from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ
from vcstream.audio.pitch import estimate_f0
from vcstream.corpus import build, texts, voices
from vcstream.corpus.features import clean_audio
from vcstream.corpus.variants import default_variants, pitch_formant_shift
from vcstream.errors import InputError, ModelMissingError
from vcstream.text.phonemes import parse_phonemes

needs_flite = pytest.mark.skipif(
    shutil.which("flite") is None, reason="Debian package flite not installed"
)
SENTENCE = "Any fool can paint a picture, but it takes a wise person to be able to sell it."


# --- sentences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "A lifetime isn't nearly long enough to figure out what it's all about.",
        "Why is it that we rejoice at a birth and grieve at a funeral?",
        'He said "never" and left.',
    ],
)
def test_clean_sentences_pass(raw: str) -> None:
    out = texts.clean_sentence(raw)
    assert out is not None and '"' not in out and out[-1] in ".!?"


@pytest.mark.parametrize(
    "raw",
    [
        "Call 555 1234 now.",  # digits: each engine reads them its own way
        "The UNIX way is best.",  # acronym
        "Ask Mr. Smith about it.",  # abbreviation
        "too short",  # no capital, no end mark
        "Wait... what?",  # ellipsis
        "Hmm, okay then.",  # vowel-less word
        "Send mail to root@localhost today.",  # symbols
        "Word " * 30 + "end.",  # too long
    ],
)
def test_unspeakable_sentences_are_rejected(raw: str) -> None:
    assert texts.clean_sentence(raw) is None


@pytest.mark.skipif(not texts.FORTUNES_DIR.is_dir(), reason="Debian package fortunes missing")
def test_fortunes_give_over_5000_distinct_clean_sentences() -> None:
    sentences = texts.fortune_sentences()
    assert len(sentences) >= 5000
    keys = {" ".join(s.lower().split()) for s in sentences}
    assert len(keys) == len(sentences)
    assert all(texts.clean_sentence(s) == s for s in sentences[:500])
    chosen = texts.choose(sentences, 50, seed=3)
    assert chosen == texts.choose(sentences, 50, seed=3) and len(set(chosen)) == 50


def test_missing_fortunes_name_the_package(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="apt-get install fortunes"):
        texts.fortune_sentences(tmp_path / "nothing")


def test_sentence_file_is_filtered_and_deduplicated(tmp_path: Path) -> None:
    f = tmp_path / "s.txt"
    f.write_text("# comment\nThe cat sat down.\nthe cat sat down\nThe cat sat down!\nIt costs 5.\n")
    assert texts.file_sentences(f) == ["The cat sat down."]


# --- voices ------------------------------------------------------------------------------


@needs_flite
@pytest.mark.parametrize("name", voices.voice_names())
def test_every_voice_renders_speech(name: str) -> None:
    try:
        voice = voices.load_voice(name)
    except ModelMissingError as err:  # only a missing package may stop a voice
        pytest.fail(f"{name}: {err}")
    audio, sr = voice.render("The quick brown fox jumps over the lazy dog.")
    assert sr in (16000, 22050, 32000)
    seconds = len(audio) / sr
    assert 1.0 < seconds < 6.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01


def test_missing_tools_name_the_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(voices.shutil, "which", lambda _: None)
    with pytest.raises(ModelMissingError, match="apt-get install flite"):
        voices.load_voice("flite_slt")
    with pytest.raises(ModelMissingError, match="apt-get install festival"):
        voices.load_voice("festival_kal")
    monkeypatch.undo()
    monkeypatch.setattr(voices, "FESTIVAL_VOICES_DIR", tmp_path)
    if shutil.which("text2wave"):
        with pytest.raises(ModelMissingError, match="apt-get install festvox-us-slt-hts"):
            voices.load_voice("festival_slt_hts")
    with pytest.raises(InputError, match="unknown voice"):
        voices.load_voice("nobody")


# --- variants ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def awb_speech() -> np.ndarray:
    if shutil.which("flite") is None:
        pytest.skip("Debian package flite not installed")
    audio, sr = voices.load_voice("flite_awb").render(SENTENCE)
    return clean_audio(audio, sr)


def _long_term_envelope(x: np.ndarray) -> np.ndarray:
    spec = torch.stft(
        torch.from_numpy(x), 1024, 256, window=torch.hann_window(1024), return_complex=True
    ).abs()
    energy = (spec**2).sum(0)
    log_mag = torch.log(spec[:, energy > energy.max() * 1e-3] + 1e-7)
    cep = torch.fft.irfft(log_mag, n=1024, dim=0)
    cep[25:-24] = 0
    return torch.fft.rfft(cep, dim=0).real.mean(1).numpy()


def _estimated_warp(x: np.ndarray, y: np.ndarray) -> float:
    f = np.fft.rfftfreq(1024, 1 / SAMPLE_RATE_HZ)
    ex, ey = _long_term_envelope(x), _long_term_envelope(y)
    band = (f > 300) & (f < 5000)
    factors = np.arange(0.8, 1.25, 0.01)
    scores = [np.corrcoef(np.interp(f / q, f, ex)[band], ey[band])[0, 1] for q in factors]
    return float(factors[int(np.argmax(scores))])


@pytest.mark.parametrize(("semitones", "formant"), [(3.0, 1.0), (-3.0, 0.94), (6.0, 1.12)])
def test_pitch_shift_moves_f0_by_the_asked_ratio(awb_speech, semitones, formant) -> None:
    y = pitch_formant_shift(awb_speech, SAMPLE_RATE_HZ, semitones, formant)
    assert len(y) == len(awb_speech)
    f0_x, v_x = estimate_f0(awb_speech, SAMPLE_RATE_HZ, HOP, 55, 620)
    f0_y, v_y = estimate_f0(y, SAMPLE_RATE_HZ, HOP, 55, 620)
    both = v_x & v_y
    assert both.sum() > 30
    ratio = float(np.median(f0_y[both] / f0_x[both]))
    assert ratio == pytest.approx(2 ** (semitones / 12), rel=0.015)


@pytest.mark.parametrize(("semitones", "formant"), [(0.0, 1.2), (0.0, 0.85), (3.0, 1.0)])
def test_formant_shift_warps_the_envelope_independently(awb_speech, semitones, formant) -> None:
    y = pitch_formant_shift(awb_speech, SAMPLE_RATE_HZ, semitones, formant)
    assert _estimated_warp(awb_speech, y) == pytest.approx(formant, abs=0.021)


def test_default_variants_cross_towards_the_other_sex() -> None:
    male = {v.name: v for v in default_variants("male")}
    female = {v.name: v for v in default_variants("female")}
    assert male["base"].identity and male["cross"].semitones > 0 > female["cross"].semitones
    assert len({(v.semitones, v.formant) for v in male.values()}) == len(male)


# --- the builder -------------------------------------------------------------------------


def test_plan_is_round_robin_and_prefix_stable() -> None:
    sentences = [f"Sentence number {w} is here." for w in ("one", "two", "three", "four", "five")]
    sentences += [f"Another line about {w} things." for w in ("red", "blue", "green", "gold")]
    plan = build.make_plan(
        ["flite_slt", "flite_awb", "flite_rms"], ["flite_rms"], True, sentences, 9, 2, seed=0
    )
    small = build.plan_items(plan, per_speaker=2, val_per_speaker=1, val_seen=1)
    large = build.plan_items(plan, per_speaker=3, val_per_speaker=1, val_seen=1)
    assert {i.id: i for i in small}.items() <= {i.id: i for i in large}.items()
    train = [i for i in large if i.subset == "train"]
    assert not {i.voice for i in train} & set(plan.val_voices)
    assert not {i.text for i in train} & set(plan.val_sentences)
    assert {i.text for i in large if i.subset != "train"} <= set(plan.val_sentences)
    # First utterances of all speakers come before any second utterance.
    first_round = [i.speaker for i in large if i.id.endswith("_00000")]
    assert len(first_round) == len(set(first_round)) == 18


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> tuple[Path, list[str]]:
    if shutil.which("flite") is None or not texts.FORTUNES_DIR.is_dir():
        pytest.skip("Debian packages flite and fortunes are needed")
    out = tmp_path_factory.mktemp("corpus") / "c"
    argv = [
        "build",
        "--out",
        str(out),
        "--voices",
        "flite_slt,flite_awb,flite_rms",
        "--val-voices",
        "flite_rms",
        "--no-variants",
        "--sentences",
        "40",
        "--val-sentences",
        "4",
        "--per-speaker",
        "3",
        "--val-per-speaker",
        "2",
        "--val-seen",
        "1",
    ]
    assert build.main(argv) == 0
    return out, argv


def test_build_writes_the_ljspeech_style_layout(small_corpus) -> None:
    out, _ = small_corpus
    meta = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(meta) == 2 * 3 + 2 + 2 * 1  # train + held-out speaker + seen speakers' val
    phonemes = dict(line.split("|", 1) for line in (out / "phonemes.csv").read_text().splitlines())
    for line in meta:
        uid, text, normalized = line.split("|")
        assert text and normalized
        audio, sr = read_wav(out / "wavs" / f"{uid}.wav")
        mel = np.load(out / "mels" / f"{uid}.npy")
        f0 = np.load(out / "pitch" / f"{uid}.npy")
        emb = np.load(out / "embeds" / f"{uid}.npy")
        assert sr == SAMPLE_RATE_HZ
        assert mel.shape == (80, len(audio) // HOP) and mel.dtype == np.float32
        assert f0.shape == (mel.shape[1],) and (f0 > 0).mean() > 0.2
        assert emb.shape == (256,) and np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-4)
        assert parse_phonemes(phonemes[uid])  # every symbol is in the inventory
    speakers = json.loads((out / "speakers.json").read_text())
    assert speakers["flite_rms-base"]["split"] == "val"
    assert 4.5 < speakers["flite_slt-base"]["log_f0_mean"] < 5.6  # around 100-270 Hz
    assert speakers["flite_slt-base"]["log_f0_mean"] > speakers["flite_awb-base"]["log_f0_mean"]


def test_build_holds_out_whole_speakers_and_sentences(small_corpus) -> None:
    out, _ = small_corpus
    split = json.loads((out / "split.json").read_text())
    items = {p.stem: json.loads(p.read_text()) for p in (out / "items").glob("*.json")}
    train = [items[i] for i in split["train"]]
    val = [items[i] for i in split["val"]]
    assert split["val_speakers"] == ["flite_rms-base"]
    assert not any(r["speaker"] == "flite_rms-base" for r in train)
    assert {r["text"] for r in val} <= set(split["val_sentences"])
    assert not {r["text"] for r in train} & set(split["val_sentences"])
    assert len(split["val_unseen_speaker"]) == 2 and len(split["val_unseen_text"]) == 2


def test_build_resumes_and_extends(small_corpus) -> None:
    out, argv = small_corpus
    before = {p.name: p.stat().st_mtime_ns for p in (out / "wavs").iterdir()}
    assert build.main(argv) == 0  # nothing left to do
    assert {p.name: p.stat().st_mtime_ns for p in (out / "wavs").iterdir()} == before
    bigger = list(argv)
    bigger[bigger.index("--per-speaker") + 1] = "4"
    summary = build.run(build.parse_args(bigger[1:]))
    assert summary["rendered_now"] == 2  # one more for each training speaker
    after = {p.name: p.stat().st_mtime_ns for p in (out / "wavs").iterdir()}
    assert {k: after[k] for k in before} == before
    changed = list(argv)
    changed[changed.index("--voices") + 1] = "flite_slt,flite_awb"
    with pytest.raises(InputError, match="planned with voices"):
        build.run(build.parse_args(changed[1:]))
