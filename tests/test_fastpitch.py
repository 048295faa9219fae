"""The FastPitch model: size, shapes, length regulation, checkpoints, the Synthesizer backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vcstream.errors import InputError, ModelMissingError, UnknownPhonemesError
from vcstream.synth.base import SynthControls, Synthesizer, VoiceConditioning
from vcstream.synth.fastpitch import (
    FastPitch,
    FastPitchConfig,
    FastPitchSynthesizer,
    Targets,
    average_over_durations,
    checkpoint_payload,
    count_parameters,
    frame_ids,
    load_model,
    log_f0_statistics,
    regulate_length,
)
from vcstream.text.phonemes import load_inventory, parse_phonemes
from vcstream.train.trainer import PRESETS

PHONEMES = parse_phonemes("həlˈoʊ wˈɜːld.")


def _embedding(seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=256).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    inv = load_inventory()
    torch.manual_seed(0)
    model = FastPitch(FastPitchConfig(n_symbols=inv.num_ids, **PRESETS["tiny"]))
    path = tmp_path_factory.mktemp("fp") / "tiny.pt"
    torch.save(checkpoint_payload(model, inv.symbols), path)
    return path


def test_default_model_is_under_ten_million_parameters() -> None:
    model = FastPitch(FastPitchConfig(n_symbols=load_inventory().num_ids))
    n = count_parameters(model)
    assert 3_000_000 < n <= 10_000_000


def test_regulate_length_repeats_each_position_by_its_duration() -> None:
    x = torch.arange(3, dtype=torch.float32).reshape(1, 3, 1).repeat(2, 1, 2)
    durations = torch.tensor([[2, 0, 3], [1, 1, 1]])
    out, lens = regulate_length(x, durations)
    assert lens.tolist() == [5, 3]
    assert out[0, :, 0].tolist() == [0, 0, 2, 2, 2]
    assert out[1, :, 0].tolist() == [0, 1, 2, 0, 0]  # padded frames are zero


def test_average_over_durations_uses_only_weighted_frames() -> None:
    values = torch.tensor([[1.0, 3.0, 5.0, 7.0, 9.0]])
    weights = torch.tensor([[1.0, 1.0, 0.0, 1.0, 0.0]])
    mean, frac = average_over_durations(values, weights, torch.tensor([[2, 3]]))
    torch.testing.assert_close(mean, torch.tensor([[2.0, 7.0]]))
    torch.testing.assert_close(frac, torch.tensor([[1.0, 1.0 / 3.0]]))


def test_training_forward_shapes_and_alignment() -> None:
    inv = load_inventory()
    torch.manual_seed(0)
    model = FastPitch(FastPitchConfig(n_symbols=inv.num_ids, **PRESETS["tiny"]))
    b, n, m = 2, 9, 40
    t = Targets(
        ids=torch.randint(3, inv.num_ids, (b, n)),
        text_lens=torch.tensor([9, 6]),
        mel=torch.randn(b, 80, m) - 5,
        mel_lens=torch.tensor([40, 31]),
        log_f0=torch.full((b, m), 5.0),
        voiced=torch.ones(b, m, dtype=torch.bool),
        embedding=torch.from_numpy(np.stack([_embedding(0), _embedding(1)])),
        speaker_log_f0=torch.tensor([[5.0, 0.1], [4.8, 0.2]]),
    )
    out = model(t)
    assert out["mel_pred"].shape == (b, 80, m)
    # Durations from MAS cover each utterance exactly, padding gets none.
    assert out["durations"].sum(1).tolist() == [40, 31]
    assert out["durations"][1, 6:].sum() == 0
    assert bool((out["durations"][0, :9] >= 1).all())
    assert out["attn_soft"].shape == (b, m, n)


def test_frame_ids_uses_piper_framing_and_rejects_unknown_symbols() -> None:
    table = {s: i for i, s in enumerate(load_inventory().symbols)}
    ids = frame_ids(["a", "b"], table)
    assert ids == [
        table["^"],
        table["_"],
        table["a"],
        table["_"],
        table["b"],
        table["_"],
        table["$"],
    ]
    with pytest.raises(UnknownPhonemesError):
        frame_ids(["a", "☃"], table)
    with pytest.raises(UnknownPhonemesError):
        frame_ids(["_"], table)


def test_synthesizer_yields_80_row_chunks(tiny_checkpoint: Path) -> None:
    synth = FastPitchSynthesizer(tiny_checkpoint, chunk_frames=8)
    assert isinstance(synth, Synthesizer)
    assert synth.name == "fastpitch" and synth.clones is True
    voice = VoiceConditioning(embedding=_embedding(), log_f0_mean=5.0, log_f0_std=0.15)
    chunks = list(synth.synthesize(PHONEMES, voice, SynthControls()))
    assert chunks, "no mel produced"
    assert all(c.dim() == 2 and c.shape[0] == 80 for c in chunks)
    assert all(c.shape[1] == 8 for c in chunks[:-1]) and 1 <= chunks[-1].shape[1] <= 8
    whole = synth.model.infer(
        torch.tensor([synth.phoneme_ids(PHONEMES)]),
        torch.from_numpy(voice.embedding[None]),
        torch.tensor([[5.0, 0.15]]),
    )
    torch.testing.assert_close(torch.cat(chunks, dim=1), whole)


def test_pitch_statistics_steer_the_output(tiny_checkpoint: Path) -> None:
    synth = FastPitchSynthesizer(tiny_checkpoint)
    emb = _embedding()

    def mel(mean: float | None) -> torch.Tensor:
        voice = VoiceConditioning(
            embedding=emb, log_f0_mean=mean, log_f0_std=None if mean is None else 0.2
        )
        return torch.cat(list(synth.synthesize(PHONEMES, voice, SynthControls())), dim=1)

    low, high = mel(4.5), mel(5.5)
    assert low.shape == high.shape  # pitch does not change timing
    assert float((low - high).abs().mean()) > 1e-4
    # Without microphone statistics the model's own prediction is used.
    assert mel(None).shape[0] == 80


def test_speed_control_shortens_the_output(tiny_checkpoint: Path) -> None:
    synth = FastPitchSynthesizer(tiny_checkpoint)
    voice = VoiceConditioning(embedding=_embedding())
    # An untrained duration predictor gives durations near zero; scale them up to measure.
    with torch.no_grad():
        synth.model.duration.out.bias.fill_(2.0)
    normal = sum(c.shape[1] for c in synth.synthesize(PHONEMES, voice, SynthControls()))
    fast = sum(c.shape[1] for c in synth.synthesize(PHONEMES, voice, SynthControls(speed=2.0)))
    assert fast == pytest.approx(normal / 2, abs=2)


def test_synthesizer_input_errors(tiny_checkpoint: Path) -> None:
    synth = FastPitchSynthesizer(tiny_checkpoint)
    with pytest.raises(InputError, match="no default voice"):
        list(synth.synthesize(PHONEMES, VoiceConditioning(), SynthControls()))
    with pytest.raises(UnknownPhonemesError):
        list(synth.synthesize(["☃"], VoiceConditioning(embedding=_embedding()), SynthControls()))
    with pytest.raises(InputError):
        list(synth.synthesize([], VoiceConditioning(embedding=_embedding()), SynthControls()))


def test_checkpoint_round_trip_is_exact(tiny_checkpoint: Path) -> None:
    model, symbols, ckpt = load_model(tiny_checkpoint)
    assert symbols == list(load_inventory().symbols)
    assert not model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, ckpt["model"][k])


def test_missing_or_foreign_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="vcstream train"):
        FastPitchSynthesizer(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"something": 1}, bad)
    with pytest.raises(ModelMissingError, match="not a vcstream FastPitch checkpoint"):
        load_model(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelMissingError, match="unreadable"):
        load_model(junk)


def test_log_f0_statistics_ignore_unvoiced_frames_and_octave_errors() -> None:
    rng = np.random.default_rng(0)
    f0 = np.exp(np.log(120.0) + 0.1 * rng.standard_normal(400))
    f0[::10] *= 2.0  # a tracker's octave errors on one frame in ten
    f0[::7] = 0.0  # unvoiced
    mean, std = log_f0_statistics(f0)
    assert mean == pytest.approx(np.log(120.0), abs=0.03)
    assert std == pytest.approx(0.1, abs=0.03)  # a plain std would be about 0.23
    assert log_f0_statistics(np.zeros(50)) is None
