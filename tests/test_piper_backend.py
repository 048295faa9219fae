"""The piper baseline backend, run with the real joe voice."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vcstream.audio.mel import HOP, N_MELS, SILENCE_LOG_MEL, mel_spectrogram
from vcstream.errors import InputError, UnknownPhonemesError
from vcstream.synth.base import SynthControls, Synthesizer, VoiceConditioning
from vcstream.synth.piper_backend import PiperSynthesizer, first_clause_split
from vcstream.text.phonemes import load_inventory, parse_phonemes, phonemes_to_ids
from vcstream.weights import piper_voice_files

SENTENCE = parse_phonemes("ðə kwˈɪk bɹˈaʊn fˈɑːks dʒˈʌmps ˌoʊvɚ ðə lˈeɪzi dˈɑːɡ.")
WITH_CLAUSE = parse_phonemes("wˌɛn ðə lˈaɪt fˈeɪdᵻd, ðə fˈɪʃɚmən wˈɔːkt hˈoʊm.")
NO_VOICE = VoiceConditioning()
PLAIN = SynthControls()


@pytest.fixture(scope="module")
def synth() -> PiperSynthesizer:
    # Zero sampling noise makes VITS deterministic, so outputs can be compared exactly.
    return PiperSynthesizer(noise_scale=0.0, noise_w=0.0, chunk_frames=32)


def _mel(synth: PiperSynthesizer, phonemes, voice=NO_VOICE, controls=PLAIN) -> torch.Tensor:
    return torch.cat(list(synth.synthesize(phonemes, voice, controls)), dim=1)


def test_implements_the_protocol_and_says_it_does_not_clone(synth: PiperSynthesizer) -> None:
    assert isinstance(synth, Synthesizer)
    assert synth.name == "piper"
    assert synth.clones is False
    doc = PiperSynthesizer.__doc__ or ""
    assert "Baseline" in doc and "ignores" in doc and "embedding" in doc
    module_doc = sys.modules[PiperSynthesizer.__module__].__doc__ or ""
    assert "does NOT clone" in module_doc and "baseline" in module_doc


def test_mel_shape_matches_the_audio(synth: PiperSynthesizer) -> None:
    chunks = list(synth.synthesize(SENTENCE, NO_VOICE, PLAIN))
    assert all(c.dim() == 2 and c.shape[0] == N_MELS for c in chunks)
    assert all(0 < c.shape[1] <= 32 for c in chunks)
    assert all(c.device.type == "cpu" and c.dtype == torch.float32 for c in chunks)
    mel = torch.cat(chunks, dim=1)
    audio = synth.render(SENTENCE)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < len(audio) / 22050 < 6.0  # ten words of speech
    assert mel.shape == (N_MELS, len(audio) // HOP)
    assert torch.isfinite(mel).all()
    assert mel.min() >= SILENCE_LOG_MEL - 1e-4
    # The streamed mel is the mel of the rendered audio (no clause split in this sentence).
    assert torch.equal(mel, mel_spectrogram(audio))
    # Speech, not silence: a good part of the frames carry energy well above the floor.
    assert (mel.max(dim=0).values > -4.0).float().mean() > 0.5


def test_first_clause_is_rendered_on_its_own(synth: PiperSynthesizer) -> None:
    cut = first_clause_split(WITH_CLAUSE)
    assert cut > 0 and WITH_CLAUSE[cut - 1] == ","
    first = synth.render(WITH_CLAUSE[:cut])
    rest = synth.render(WITH_CLAUSE[cut + 1 :])  # the space after the comma is dropped
    mel = _mel(synth, WITH_CLAUSE)
    assert mel.shape[1] == len(first) // HOP + len(rest) // HOP
    assert torch.equal(mel[:, : len(first) // HOP], mel_spectrogram(first))


def test_first_clause_split_rules() -> None:
    assert first_clause_split(SENTENCE) == 0  # no clause mark
    assert first_clause_split(parse_phonemes("jˈɛs, ɪt ɪz ɐ vˈɛɹi lˈɔŋ sˈɛntəns.")) == 0
    assert first_clause_split(parse_phonemes("ɪt ɪz ɐ lˈɔŋ wˈʌn, jˈɛs.")) == 0
    assert first_clause_split(WITH_CLAUSE) == WITH_CLAUSE.index(",") + 1


def test_whole_sentence_when_clause_split_is_off(synth: PiperSynthesizer) -> None:
    synth.split_first_clause = False
    try:
        mel = _mel(synth, WITH_CLAUSE)
    finally:
        synth.split_first_clause = True
    assert torch.equal(mel, mel_spectrogram(synth.render(WITH_CLAUSE)))


def test_speed_changes_length(synth: PiperSynthesizer) -> None:
    normal = _mel(synth, SENTENCE).shape[1]
    fast = _mel(synth, SENTENCE, controls=SynthControls(speed=2.0)).shape[1]
    slow = _mel(synth, SENTENCE, controls=SynthControls(speed=0.5)).shape[1]
    assert 0.35 < fast / normal < 0.7
    assert 1.5 < slow / normal < 2.5


@pytest.mark.parametrize("speed", [0.0, -1.0, 0.1, 10.0, float("nan")])
def test_speed_out_of_range_is_an_input_error(synth: PiperSynthesizer, speed: float) -> None:
    with pytest.raises(InputError, match="speed"):
        synth.synthesize(SENTENCE, NO_VOICE, SynthControls(speed=speed))


def test_energy_scale_is_a_gain(synth: PiperSynthesizer) -> None:
    base = _mel(synth, SENTENCE)
    loud = _mel(synth, SENTENCE, controls=SynthControls(energy_scale=2.0))
    voiced = base > -6.0
    gain = torch.full_like(base[voiced], float(np.log(2.0)))
    assert torch.allclose(loud[voiced] - base[voiced], gain, atol=1e-3)


def test_the_embedding_has_no_effect(synth: PiperSynthesizer) -> None:
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal(256).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    voice = VoiceConditioning(embedding=embedding, log_f0_mean=np.log(220.0), log_f0_std=0.3)
    assert torch.equal(_mel(synth, SENTENCE, voice=voice), _mel(synth, SENTENCE))


def test_default_noise_still_speaks_the_sentence() -> None:
    synth = PiperSynthesizer(warm_up=False)
    mel = _mel(synth, SENTENCE)
    assert mel.shape[0] == N_MELS and torch.isfinite(mel).all()
    assert 1.0 < mel.shape[1] * HOP / 22050 < 6.0


def test_unknown_phonemes_are_refused_before_rendering(synth: PiperSynthesizer) -> None:
    with pytest.raises(UnknownPhonemesError) as info:
        synth.synthesize([*SENTENCE, "W", "☃"], NO_VOICE, PLAIN)
    assert info.value.unknown == ["W", "☃"]
    with pytest.raises(UnknownPhonemesError):
        synth.synthesize(["a", "^", "b"], NO_VOICE, PLAIN)  # framing symbols are not input
    with pytest.raises(InputError, match="nothing to speak"):
        synth.synthesize([], NO_VOICE, PLAIN)
    with pytest.raises(InputError, match="not a string"):
        synth.synthesize("həlˈoʊ", NO_VOICE, PLAIN)  # type: ignore[arg-type]


def test_every_id_fits_the_model_table() -> None:
    inventory = load_inventory()
    ids = phonemes_to_ids([s for s in inventory.symbols if s not in "_^$"])
    assert max(ids) < inventory.num_ids
    _, config_path = piper_voice_files()
    assert json.loads(config_path.read_text(encoding="utf-8"))["num_symbols"] == inventory.num_ids


def test_other_sample_rates_are_resampled_to_22050(synth: PiperSynthesizer, tmp_path: Path) -> None:
    # The same model declared as a 16 kHz voice: its output is taken as 16 kHz audio and
    # must come out resampled to the vocoder's 22050 Hz.
    model, config_path = piper_voice_files()
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["audio"]["sample_rate"] = 16000
    (tmp_path / "at16k.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    declared = PiperSynthesizer(
        model, tmp_path / "at16k.onnx.json", noise_scale=0.0, noise_w=0.0, warm_up=False
    )
    n_native = len(synth.render(SENTENCE))
    n_resampled = len(declared.render(SENTENCE))
    assert n_resampled == pytest.approx(n_native * 22050 / 16000, abs=2)


def test_a_voice_with_another_id_table_is_refused(tmp_path: Path) -> None:
    model, config_path = piper_voice_files()
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["phoneme_id_map"]["a"], config["phoneme_id_map"]["b"] = [15], [14]
    (tmp_path / "swapped.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(InputError, match="phoneme id table"):
        PiperSynthesizer(model, tmp_path / "swapped.onnx.json", warm_up=False)
