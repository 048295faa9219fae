"""GE2E speaker encoder: front end and embeddings against Resemblyzer, checkpoint loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vcstream.audio.io import read_wav
from vcstream.encoder.embed import (
    STREAM_TARGET_DBFS,
    embed_stream,
    embed_utterance,
    resemblyzer_partial_starts,
    stream_partial_starts,
)
from vcstream.encoder.frontend import (
    StreamingMel,
    normalize_volume,
    stream_mel,
    wav_to_mel,
)
from vcstream.encoder.ge2e import SpeakerEncoder
from vcstream.errors import InputError, ModelMissingError, NoVoiceError
from vcstream.weights import speaker_encoder_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
SPEAKERS = ("joe", "slt")


def load(name: str) -> np.ndarray:
    audio, sr = read_wav(FIXTURES / f"speech_{name}.wav")
    assert sr == 16000
    return audio


def reference(name: str) -> dict[str, np.ndarray]:
    with np.load(FIXTURES / f"resemblyzer_speech_{name}.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("name", SPEAKERS)
def test_mel_matches_resemblyzer(name: str) -> None:
    ref = reference(name)
    mel = wav_to_mel(normalize_volume(load(name)))
    assert mel.shape == (int(ref["n_mel_frames"]), 40)
    scale = float(ref["mel_head"].max())
    np.testing.assert_allclose(mel[:100], ref["mel_head"], rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(mel[-100:], ref["mel_tail"], rtol=1e-4, atol=1e-6 * scale)


@pytest.mark.parametrize("name", SPEAKERS)
def test_embeddings_match_resemblyzer(encoder: SpeakerEncoder, name: str) -> None:
    ref = reference(name)
    ours = embed_utterance(encoder, load(name))
    assert ours.starts == list(ref["partial_starts"])
    partial_cos = np.sum(ours.partials * ref["partials"], axis=1)
    assert partial_cos.min() > 0.999
    assert float(ours.embedding @ ref["embedding"]) > 0.999
    assert abs(np.linalg.norm(ours.embedding) - 1) < 1e-5


def test_speakers_are_distinguishable(encoder: SpeakerEncoder) -> None:
    # Embed each recording's halves separately: same-speaker pairs must be far closer
    # than cross-speaker pairs.
    halves = {}
    for name in SPEAKERS:
        audio = load(name)
        mid = audio.size // 2
        halves[name] = [embed_utterance(encoder, a).embedding for a in (audio[:mid], audio[mid:])]
    same = [float(halves[n][0] @ halves[n][1]) for n in SPEAKERS]
    cross = [float(a @ b) for a in halves["joe"] for b in halves["slt"]]
    assert min(same) > 0.85
    assert min(same) > max(cross) + 0.2


def test_resemblyzer_partial_slicing_edge_cases() -> None:
    # Shorter than one partial: one slice, zero-padded, whatever the coverage.
    assert resemblyzer_partial_starts(16000) == [0]
    # 3 s: step round(16000 / 1.3 / 160) = 77 frames; the third partial covers 91%.
    assert resemblyzer_partial_starts(48000) == [0, 77, 154]
    # 1.75 s: a second partial (from frame 77) would cover only 61%, so it is dropped;
    # at 2.2 s it covers 89% and is kept. (Checked against resemblyzer 0.1.4.)
    assert resemblyzer_partial_starts(28000) == [0]
    assert resemblyzer_partial_starts(35200) == [0, 77]
    with pytest.raises(InputError):
        resemblyzer_partial_starts(16000, rate=0.1)


def test_short_utterance_is_padded(encoder: SpeakerEncoder) -> None:
    short = load("slt")[16000:32000]  # 1 s
    emb = embed_utterance(encoder, short)
    assert emb.starts == [0] and emb.partials.shape == (1, 256)


def test_bad_audio(encoder: SpeakerEncoder) -> None:
    with pytest.raises(InputError):
        embed_utterance(encoder, np.zeros((2, 16000), np.float32))
    with pytest.raises(NoVoiceError):
        embed_utterance(encoder, np.zeros(0, np.float32))
    with pytest.raises(InputError):
        embed_utterance(encoder, np.full(16000, np.nan, np.float32))


def test_volume_normalisation_increases_only() -> None:
    rng = np.random.default_rng(0)
    quiet = (rng.standard_normal(16000) * 0.001).astype(np.float32)  # about -60 dBFS
    louder = normalize_volume(quiet)
    rms = np.sqrt(np.mean(louder.astype(np.float64) ** 2))
    assert abs(20 * np.log10(rms) - -30.0) < 0.01
    loud = (rng.standard_normal(16000) * 0.2).astype(np.float32)
    np.testing.assert_array_equal(normalize_volume(loud), loud)
    silence = np.zeros(1600, np.float32)
    np.testing.assert_array_equal(normalize_volume(silence), silence)


def test_streaming_mel_equals_batch_in_any_blocks() -> None:
    audio = load("joe")[:40000]
    mel, energy = stream_mel(audio)
    sm = StreamingMel()
    rng = np.random.default_rng(1)
    got_m, got_e, pos = [], [], 0
    while pos < audio.size:
        n = int(rng.integers(0, 700))
        m, e = sm.process(audio[pos : pos + n])
        got_m.append(m)
        got_e.append(e)
        pos += n
    np.testing.assert_allclose(np.concatenate(got_m), mel, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(np.concatenate(got_e), energy, rtol=1e-9)
    # Stream frames are resemblyzer's frames, minus those that need right padding.
    full = wav_to_mel(audio)
    np.testing.assert_allclose(mel, full[: mel.shape[0]], rtol=1e-5, atol=1e-9)
    assert full.shape[0] - mel.shape[0] == 2  # frames within 200 samples of the end


def test_stream_partial_starts() -> None:
    assert stream_partial_starts(159) == []
    assert stream_partial_starts(160) == [0]
    assert stream_partial_starts(400) == [0, 80, 160, 240]
    # final: an end-aligned partial when at least 40 frames are uncovered...
    assert stream_partial_starts(300, final=True) == [0, 80, 140]
    assert stream_partial_starts(279, final=True) == [0, 80]
    # ...or a zero-padded one for a stream of at least 120 frames.
    assert stream_partial_starts(130, final=True) == [-30]
    assert stream_partial_starts(100, final=True) == []


def test_stream_embedding_is_level_invariant(encoder: SpeakerEncoder) -> None:
    audio = load("slt")
    stream = embed_stream(encoder, audio)
    # 8.87 s: 887 stream frames, partials from frames 0, 80, ..., 720.
    assert stream is not None and stream.starts == list(range(0, 721, 80))
    quiet = embed_stream(encoder, audio * np.float32(0.01))  # 40 dB down
    assert float(stream.embedding @ quiet.embedding) > 0.9999
    # Same voice as resemblyzer's slicing of the audio brought to the stream's level.
    at_level = normalize_volume(audio, STREAM_TARGET_DBFS, increase_only=False)
    utt = embed_utterance(encoder, at_level, normalize=False)
    assert float(stream.embedding @ utt.embedding) > 0.99
    assert embed_stream(encoder, audio[:20000]) is None


# ---- checkpoint loading ------------------------------------------------------------------


def _output(model: SpeakerEncoder) -> np.ndarray:
    mels = np.random.default_rng(0).random((2, 160, 40)).astype(np.float32)
    return model.embed_partials(mels)


def test_loads_rtvc_and_bare_state_dict(encoder: SpeakerEncoder, tmp_path: Path) -> None:
    original = torch.load(speaker_encoder_checkpoint(), map_location="cpu", weights_only=True)
    assert set(original) == {"step", "model_state", "optimizer_state"}
    state = encoder.state_dict()
    rtvc = tmp_path / "encoder.pt"
    torch.save(
        {
            "step": 7,
            "model_state": {
                **state,
                "similarity_weight": torch.tensor([10.0]),
                "similarity_bias": torch.tensor([-5.0]),
            },
            "optimizer_state": {},
        },
        rtvc,
    )
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    expected = _output(encoder)
    for path in (rtvc, bare):
        model = SpeakerEncoder.from_checkpoint(path, "cpu")
        assert not model.training
        np.testing.assert_array_equal(_output(model), expected)


def test_checkpoint_key_mismatch_is_an_error(encoder: SpeakerEncoder, tmp_path: Path) -> None:
    state = encoder.state_dict()
    extra = tmp_path / "extra.pt"
    torch.save({**state, "projection.weight": torch.zeros(3)}, extra)
    with pytest.raises(ModelMissingError, match="unexpected"):
        SpeakerEncoder.from_checkpoint(extra)
    missing = tmp_path / "missing.pt"
    torch.save({k: v for k, v in state.items() if k != "linear.bias"}, missing)
    with pytest.raises(ModelMissingError, match=r"linear\.bias"):
        SpeakerEncoder.from_checkpoint(missing)
    shape = tmp_path / "shape.pt"
    torch.save({**state, "linear.bias": torch.zeros(128)}, shape)
    with pytest.raises(ModelMissingError, match="does not fit"):
        SpeakerEncoder.from_checkpoint(shape)


def test_missing_or_corrupt_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="not found"):
        SpeakerEncoder.from_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint" * 100)
    with pytest.raises(ModelMissingError, match="corrupt"):
        SpeakerEncoder.from_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(speaker_encoder_checkpoint().read_bytes()[:100_000])
    with pytest.raises(ModelMissingError, match="corrupt"):
        SpeakerEncoder.from_checkpoint(truncated)
    not_state = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_state)
    with pytest.raises(ModelMissingError, match="no state dict"):
        SpeakerEncoder.from_checkpoint(not_state)
