"""Adapted voices: the stored form, profiles, and the checkpoint they belong to."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from vcstream.adapt import NotEnoughVoiceError, adapt
from vcstream.adapt.live import VoicedRing
from vcstream.adapt.voice import AdaptedVoice
from vcstream.errors import InputError
from vcstream.net import protocol as p
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.synth.fastpitch import FastPitchSynthesizer
from vcstream.synth.variance import N_COEFFS
from vcstream.voices import VoiceProfile, VoiceStore


@pytest.fixture(scope="module")
def synth() -> FastPitchSynthesizer:
    return FastPitchSynthesizer()


def _voice(synth: FastPitchSynthesizer, checkpoint_id: str | None = None) -> AdaptedVoice:
    rng = np.random.default_rng(0)
    emb = rng.standard_normal(256).astype(np.float32)
    emb /= np.linalg.norm(emb)
    own = dict(synth.model.named_parameters())
    params = {
        "speaker.bias": own["speaker.bias"].detach() + 0.5,
        "to_mel.weight": own["to_mel.weight"].detach() * 1.1,
    }
    return AdaptedVoice(
        params=params,
        embedding=emb,
        log_f0_mean=5.0,
        log_f0_std=0.2,
        checkpoint_id=checkpoint_id or synth.checkpoint_id,
        plan="conditioning",
        seconds=4.2,
        utterances=3,
        steps=20,
        held_out_loss_before=0.5,
        held_out_loss=0.4,
        wall_s=9.0,
    )


def _mel(synth, voice: VoiceConditioning) -> torch.Tensor:
    phonemes = list("hɛloʊ wɜːld.")
    torch.manual_seed(0)
    return torch.cat(list(synth.synthesize(phonemes, voice, SynthControls())), dim=1)


def test_adapted_voice_round_trips_through_json(synth):
    v = _voice(synth)
    back = AdaptedVoice.from_json(json.loads(json.dumps(v.to_json())))
    assert back.key == v.key and back.checkpoint_id == synth.checkpoint_id
    assert set(back.params) == set(v.params)
    for name, value in v.params.items():  # stored as float16
        assert torch.allclose(back.params[name], value, atol=2e-3 * float(value.abs().max()))
    assert back.metadata()["seconds"] == 4.2


def test_an_adapted_voice_keeps_its_spread_of_spectral_detail_through_json(synth):
    spread = np.linspace(0.2, 0.6, N_COEFFS).astype(np.float32)
    v = dataclasses.replace(_voice(synth), cepstral_std=spread)
    back = AdaptedVoice.from_json(json.loads(json.dumps(v.to_json())))
    assert np.allclose(back.conditioning().cepstral_std, spread, rtol=1e-4)
    data = v.to_json()
    data["cepstral_std"] = data["cepstral_std"][:-1]
    with pytest.raises(InputError, match="cepstral spread"):
        AdaptedVoice.from_json(data)
    data["cepstral_std"] = None  # adapted before the spread was measured: speaks without
    assert AdaptedVoice.from_json(data).conditioning().cepstral_std is None


def test_altered_or_torn_parameters_are_refused(synth):
    data = _voice(synth).to_json()
    raw = data["params"]["speaker.bias"]["float16"]
    data["params"]["speaker.bias"]["float16"] = ("A" if raw[0] != "A" else "B") + raw[1:]
    with pytest.raises(InputError, match="digest"):
        AdaptedVoice.from_json(data)
    data = _voice(synth).to_json()
    data["params"]["to_mel.weight"]["float16"] = raw[:10]  # cut short
    with pytest.raises(InputError, match="unreadable"):
        AdaptedVoice.from_json(data)


def test_synthesiser_speaks_adapted_parameters_and_refuses_another_checkpoints(synth):
    v = _voice(synth)
    plain = VoiceConditioning(v.embedding, v.log_f0_mean, v.log_f0_std)
    mel_plain = _mel(synth, plain)
    mel_adapted = _mel(synth, v.conditioning())
    assert mel_adapted.shape[0] == 80
    assert not torch.allclose(mel_plain[:, :20], mel_adapted[:, :20])
    # the plain voice is unchanged after an adapted one spoke (the overlay is per request)
    assert torch.equal(_mel(synth, plain), mel_plain)
    other = _voice(synth, checkpoint_id="0123456789abcdef")
    with pytest.raises(InputError, match="adapted to checkpoint 0123456789abcdef"):
        _mel(synth, other.conditioning())


def test_profile_with_adapted_parameters_round_trips(synth, tmp_path):
    store = VoiceStore(tmp_path)
    v = _voice(synth)
    store.save(VoiceProfile("anna", v.embedding, 4.2, "ge2e", adapted=v))
    loaded = store.load("anna")
    assert loaded.adapted is not None and loaded.adapted.key == v.key
    loaded.check_checkpoint(synth.checkpoint_id)  # same checkpoint: accepted
    cond = loaded.conditioning()
    assert cond.adapted is not None and cond.adapted.checkpoint_id == synth.checkpoint_id
    assert torch.allclose(_mel(synth, cond), _mel(synth, v.conditioning()), atol=0.05)
    summary = store.list()[0]
    assert summary["adapted"]["plan"] == "conditioning" and "params" not in json.dumps(summary)
    with pytest.raises(InputError, match=r"adapted to checkpoint .* adapt it again"):
        loaded.check_checkpoint("ffffffffffffffff")
    with pytest.raises(InputError, match="cannot use adapted parameters"):
        loaded.check_checkpoint(None)


def test_torn_profile_is_a_clear_error(synth, tmp_path):
    store = VoiceStore(tmp_path)
    v = _voice(synth)
    path = store.save(VoiceProfile("bob", v.embedding, 4.2, "ge2e", adapted=v))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"bob\.json is corrupt"):
        store.load("bob")
    assert store.list() == [{"name": "bob", "error": "corrupt profile"}]


def test_adapt_says_how_much_more_voice_it_needs(synth):
    two_seconds = (np.zeros(32000, np.float32), 16000)
    with pytest.raises(NotEnoughVoiceError, match=r"2\.0 s usable, 1\.0 s more needed"):
        adapt(synth, [two_seconds])


def test_voiced_ring_keeps_the_latest_audio():
    ring = VoicedRing(1.0)  # 16000 samples
    ring.write(np.arange(10000, dtype=np.float32))
    ring.write(np.arange(10000, 20000, dtype=np.float32))
    assert len(ring) == 16000 and ring.total == 20000 and ring.dropped == 4000
    np.testing.assert_array_equal(ring.snapshot(), np.arange(4000, 20000, dtype=np.float32))
    ring.write(np.arange(50000, dtype=np.float32))  # larger than the ring
    np.testing.assert_array_equal(ring.snapshot(), np.arange(34000, 50000, dtype=np.float32))


def test_adapt_command_parses():
    assert isinstance(p.parse_command('{"type": "adapt", "id": "a1"}'), p.Adapt)
    with pytest.raises(p.ProtocolError, match="unknown field"):
        p.parse_command('{"type": "adapt", "steps": 3}')


def test_embed_adapt_with_too_little_voice_says_how_much_more(tmp_path, capsys):
    from vcstream.audio.io import write_wav
    from vcstream.cli import main

    wav = tmp_path / "short.wav"
    write_wav(wav, 0.1 * np.sin(np.arange(16000 * 2) * 0.05).astype(np.float32), 16000)
    assert main(["embed", str(wav), "--save", "shorty", "--adapt"]) == 2
    err = capsys.readouterr().err
    assert "needs at least 3 s of speech; 2.0 s usable, 1.0 s more needed" in err
