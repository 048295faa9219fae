"""Training: data readers, a few real steps on a tiny corpus, resume, plots, samples, export."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from vcstream.audio.io import read_wav, write_wav
from vcstream.audio.mel import SAMPLE_RATE_HZ
from vcstream.corpus import build, texts
from vcstream.errors import InputError
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.synth.fastpitch import FastPitchSynthesizer, load_model
from vcstream.train import data as data_mod
from vcstream.train import main as train_main
from vcstream.train.plot import encode_png, plot_series
from vcstream.train.trainer import TrainConfig, Trainer, export_checkpoint, lr_at


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Eight training utterances from two flite voices, two held-out sentences."""
    if shutil.which("flite") is None or not texts.FORTUNES_DIR.is_dir():
        pytest.skip("Debian packages flite and fortunes are needed")
    out = tmp_path_factory.mktemp("train") / "corpus"
    argv = ["--out", str(out), "--voices", "flite_slt,flite_awb", "--val-voices", ""]
    argv += ["--no-variants", "--sentences", "30", "--val-sentences", "2", "--per-speaker", "4"]
    argv += ["--val-per-speaker", "0", "--val-seen", "1", "--seed", "7"]
    assert build.main(argv) == 0
    return out


def _records(root: Path) -> tuple[list[data_mod.Record], list[data_mod.Record]]:
    recs = data_mod.load_records(root)
    return [r for r in recs if r.subset == "train"], [r for r in recs if r.subset != "train"]


def _config(**kw) -> TrainConfig:
    base = dict(
        batch_size=4,
        lr=3e-3,
        warmup_steps=5,
        log_every=1000,
        val_every=1000,
        ckpt_every=1000,
        audio_every=0,
        seed=5,
    )
    base.update(kw)
    return TrainConfig(**base)


def test_a_few_steps_reduce_the_loss(corpus: Path, tmp_path: Path) -> None:
    train, val = _records(corpus)
    assert len(train) == 8 and len(val) == 2
    trainer = Trainer(tmp_path / "run", train, val, _config(steps=40), torch.device("cpu"), "tiny")
    _, fixed = data_mod.collate([trainer.train_set[i] for i in range(4)])
    before = trainer.validate()
    losses = [trainer.train_step(fixed) for _ in range(40)]
    first = np.mean([x["mel"] for x in losses[:3]])
    last = np.mean([x["mel"] for x in losses[-3:]])
    assert last < 0.6 * first, (first, last)
    assert np.mean([x["total"] for x in losses[-3:]]) < np.mean([x["total"] for x in losses[:3]])
    after = trainer.validate()
    assert set(after) >= {"mel", "duration", "pitch", "energy", "align"}
    assert after["mel"] < before["mel"]


def test_bf16_autocast_keeps_alignment_and_losses_in_float32(corpus: Path, tmp_path: Path) -> None:
    train, val = _records(corpus)
    fp32 = Trainer(tmp_path / "a", train, val, _config(steps=1), torch.device("cpu"), "tiny")
    bf16 = Trainer(
        tmp_path / "b", train, val, _config(steps=1, precision="bf16"), torch.device("cpu"), "tiny"
    )
    bf16.model.load_state_dict(fp32.model.state_dict())
    _, batch = data_mod.collate([fp32.train_set[i] for i in range(4)])
    fp32.model.eval()
    bf16.model.eval()
    with torch.no_grad():
        ref = fp32._losses(batch)
        low = bf16._losses(batch)
        ref_out = fp32.model(batch)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = bf16.model(batch)
    assert out["mel_pred"].dtype == torch.bfloat16  # the heavy layers did run in bfloat16
    assert out["attn_logp"].dtype == torch.float32
    for name, value in ref.items():
        assert low[name].dtype == torch.float32
        assert torch.isfinite(low[name])
        assert abs(float(low[name]) - float(value)) <= 0.05 * abs(float(value)) + 1e-3, name
    # Nearly the same hard alignment (the key and query layers themselves ran in bfloat16,
    # so near-ties may flip): frames assigned to the same phoneme.
    same = out["attn_hard"].argmax(-1) == ref_out["attn_hard"].argmax(-1)
    assert float(same[out["mel_mask"]].float().mean()) >= 0.95


def test_resume_continues_exactly(corpus: Path, tmp_path: Path) -> None:
    train, val = _records(corpus)
    cpu = torch.device("cpu")
    straight = Trainer(tmp_path / "a", train, val, _config(steps=6), cpu, "tiny")
    straight.fit()
    half = Trainer(tmp_path / "b", train, val, _config(steps=3), cpu, "tiny")
    half.fit()
    assert (tmp_path / "b" / "checkpoints" / "latest.pt").is_file()
    resumed = Trainer(tmp_path / "b", train, val, _config(steps=6), cpu, "tiny")
    assert resumed.step == 3
    resumed.fit()
    assert resumed.step == 6
    for (k, a), (_, b) in zip(
        straight.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert [h["step"] for h in resumed.history if h["kind"] == "train"] == [3, 6]


def test_command_line_run_writes_plot_samples_and_an_exported_checkpoint(
    corpus: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    export = tmp_path / "shipped.pt"
    argv = ["--data", str(corpus), "--run", str(run), "--preset", "tiny", "--steps", "4"]
    argv += ["--batch-size", "4", "--log-every", "2", "--val-every", "2", "--ckpt-every", "2"]
    argv += ["--audio-every", "4", "--audio-items", "1", "--device", "cpu"]
    argv += ["--export", str(export)]
    assert train_main(argv) == 0
    png = (run / "losses.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(x) for x in (run / "losses.jsonl").read_text().splitlines()]
    assert {x["kind"] for x in lines} == {"train", "val"}
    samples = sorted((run / "samples" / "step_0000004").glob("*.wav"))
    assert len(samples) == 1
    audio, sr = read_wav(samples[0])
    assert sr == SAMPLE_RATE_HZ and len(audio) > 0
    assert (run / "samples" / "reference" / samples[0].name).is_file()
    # Beside it, the recording's mel over the synthesised one, 2x scaled, white gap.
    image = _read_png(samples[0].with_suffix(".png").read_bytes())
    assert image.shape[0] == 2 * (2 * 80) + 4
    assert (image[160:164] == 255).all() and image[:160].std() > 10
    # The exported checkpoint is slim, fp16 on disk, and serves the Synthesizer backend.
    ckpt = torch.load(export, map_location="cpu", weights_only=True)
    assert "optimizer" not in ckpt and ckpt["step"] == 4
    assert all(v.dtype == torch.float16 for v in ckpt["model"].values() if v.is_floating_point())
    synth = FastPitchSynthesizer(export)
    emb = np.load(corpus / "embeds" / f"{samples[0].stem}.npy")
    chunks = list(
        synth.synthesize(list("hɛloʊ"), VoiceConditioning(embedding=emb), SynthControls())
    )
    assert chunks and all(c.shape[0] == 80 for c in chunks)
    # Before any voice is heard it speaks in the default voice stored at export: the
    # training speaker with the most utterances, its mean embedding and pitch.
    train, _ = _records(corpus)
    counts = {s: sum(r.speaker == s for r in train) for s in {r.speaker for r in train}}
    assert synth.default_voice_name == max(sorted(counts), key=counts.get)
    dv = synth.default_voice
    assert np.linalg.norm(dv.embedding) == pytest.approx(1.0, abs=1e-3)
    assert 4.0 < dv.log_f0_mean < 6.5 and 0 < dv.log_f0_std < 1
    default = list(synth.synthesize(list("hɛloʊ"), VoiceConditioning(), SynthControls()))
    explicit = list(synth.synthesize(list("hɛloʊ"), dv, SynthControls()))
    assert torch.equal(torch.cat(default, 1), torch.cat(explicit, 1))
    # Rerunning the finished command trains nothing more.
    assert train_main(argv) == 0
    assert load_model(run / "checkpoints" / "latest.pt")[2]["step"] == 4


def test_finetune_from_a_checkpoint_starts_a_new_run(corpus: Path, tmp_path: Path) -> None:
    train, val = _records(corpus)
    first = Trainer(tmp_path / "a", train, val, _config(steps=2), torch.device("cpu"), "tiny")
    first.fit()
    src = tmp_path / "a" / "checkpoints" / "latest.pt"
    export_checkpoint(src, tmp_path / "init.pt")
    tuned = Trainer(
        tmp_path / "b", train[:4], val, _config(steps=2), torch.device("cpu"), "base",
        init=tmp_path / "init.pt",
    )  # fmt: skip
    assert tuned.step == 0
    assert tuned.model.cfg.d_model == first.model.cfg.d_model  # architecture from the checkpoint
    torch.testing.assert_close(tuned.model.to_mel.weight, first.model.to_mel.weight.half().float())


# --- readers of other layouts -----------------------------------------------------------


def _copy_wavs(corpus: Path, n: int) -> list[tuple[np.ndarray, str]]:
    meta = (corpus / "metadata.csv").read_text().splitlines()[:n]
    out = []
    for line in meta:
        uid, text, _ = line.split("|")
        audio, _ = read_wav(corpus / "wavs" / f"{uid}.wav")
        out.append((audio, text))
    return out


def test_ljspeech_layout_is_prepared_once(corpus: Path, tmp_path: Path) -> None:
    lj = tmp_path / "LJ"
    (lj / "wavs").mkdir(parents=True)
    rows = []
    for i, (audio, text) in enumerate(_copy_wavs(corpus, 3)):
        write_wav(lj / "wavs" / f"LJ001-{i:04d}.wav", audio, SAMPLE_RATE_HZ)
        rows.append(f"LJ001-{i:04d}|{text}|{text}")
    write_wav(lj / "wavs" / "LJ001-0009.wav", np.zeros(22050, np.float32), SAMPLE_RATE_HZ)
    rows.append("LJ001-0009|Silence is golden.|Silence is golden.")
    (lj / "metadata.csv").write_text("\n".join(rows) + "\n")
    assert data_mod.detect_layout(lj) == "ljspeech"
    source = data_mod.read_ljspeech(lj)
    assert [u.speaker for u in source] == ["LJ"] * 4
    cache = data_mod.prepare(source, tmp_path / "cache")
    records = data_mod.load_records(cache)
    assert len(records) == 3  # the silent one is skipped, with its reason on disk
    assert "silent" in (cache / "items" / "LJ001-0009.skipped").read_text()
    split = data_mod.assign_validation(records, val_fraction=0.3, val_speakers=1, seed=0)
    # A single speaker is never held out whole; one utterance of three is.
    assert [r.subset for r in split].count("val_unseen_text") == 1
    assert [r.subset for r in split].count("train") == 2
    mtimes = {p: p.stat().st_mtime_ns for p in (cache / "mels").iterdir()}
    data_mod.prepare(source, tmp_path / "cache")
    assert {p: p.stat().st_mtime_ns for p in (cache / "mels").iterdir()} == mtimes


def test_vctk_and_libritts_layouts_are_read(corpus: Path, tmp_path: Path) -> None:
    (audio, text), (audio2, text2) = _copy_wavs(corpus, 2)
    vctk = tmp_path / "VCTK"
    (vctk / "txt" / "p225").mkdir(parents=True)
    (vctk / "wav48" / "p225").mkdir(parents=True)
    (vctk / "txt" / "p225" / "p225_001.txt").write_text(text + "\n")
    write_wav(vctk / "wav48" / "p225" / "p225_001.wav", audio, 48000)
    (vctk / "txt" / "p225" / "p225_002.txt").write_text("No audio for this one.\n")
    assert data_mod.detect_layout(vctk) == "vctk"
    utts = data_mod.read_vctk(vctk)
    assert [(u.id, u.speaker, u.text) for u in utts] == [("p225_001", "p225", text)]

    libri = tmp_path / "LibriTTS"
    chapter = libri / "train-clean-100" / "19" / "198"
    chapter.mkdir(parents=True)
    write_wav(chapter / "19_198_000000_000000.wav", audio2, 24000)
    (chapter / "19_198_000000_000000.normalized.txt").write_text(text2)
    assert data_mod.detect_layout(libri) == "libritts"
    utts = data_mod.read_libritts(libri)
    assert [(u.id, u.speaker, u.text) for u in utts] == [("19_198_000000_000000", "19", text2)]
    with pytest.raises(InputError, match="not a recognised corpus layout"):
        data_mod.detect_layout(tmp_path)


def test_validation_holds_out_whole_speakers(tmp_path: Path) -> None:
    recs = [
        data_mod.Record(f"{spk}_{i}", tmp_path, spk, "a", 10, "train")
        for spk in ("p1", "p2", "p3")
        for i in range(10)
    ]
    split = data_mod.assign_validation(recs, val_fraction=0.1, val_speakers=1, seed=4)
    held = {r.speaker for r in split if r.subset == "val_unseen_speaker"}
    assert len(held) == 1
    assert all(r.subset == "val_unseen_speaker" for r in split if r.speaker in held)
    assert sum(r.subset == "val_unseen_text" for r in split) == 2  # 10 % of the other 20
    assert split == data_mod.assign_validation(recs, 0.1, 1, seed=4)


# --- small pieces --------------------------------------------------------------------------


def test_bucket_batches_resume_mid_epoch() -> None:
    batches = data_mod.BucketBatches(list(range(10, 60)), batch_size=4, seed=3)
    all_batches = list(islice(batches.iterate(0), 40))
    assert list(islice(batches.iterate(17), 23)) == all_batches[17:]
    first_epoch = batches.epoch(0)
    assert sorted(i for b in first_epoch for i in b) == list(range(50))


def test_learning_rate_warms_up_then_decays() -> None:
    cfg = TrainConfig(lr=1e-3, warmup_steps=100)
    assert lr_at(1, cfg) < lr_at(50, cfg) < lr_at(100, cfg) == pytest.approx(1e-3)
    assert lr_at(400, cfg) == pytest.approx(5e-4)


def _read_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + 3 * width)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 3)


def test_spectrogram_image_puts_low_bands_at_the_bottom() -> None:
    from vcstream.train.plot import spectrogram_rgb

    mel = np.full((80, 10), -11.5)
    mel[:5] = 2.0  # energy in the lowest bands only
    rgb = spectrogram_rgb(mel).astype(int)
    assert rgb[-1].sum(-1).min() > 600 and rgb[0].sum(-1).max() < 10


def test_png_encoder_round_trips() -> None:
    img = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_read_png(encode_png(img)), img)


def test_loss_plot_draws_each_series_in_its_colour(tmp_path: Path) -> None:
    steps = np.arange(1, 200)
    path = tmp_path / "plot.png"
    plot_series({"total": (steps, 10 / steps), "val_total": (steps[::50], 12 / steps[::50])},
                path, title="test", dotted=["val_total"])  # fmt: skip
    img = _read_png(path.read_bytes())
    assert img.shape == (560, 1000, 3)
    blue = np.all(img == (31, 119, 180), axis=-1).sum()
    assert blue > 500  # the line, and the validation dots in the same colour
    top_left = img[40:120, 80:200]  # where the first dots (high losses, early steps) fall
    assert np.all(top_left == (31, 119, 180), axis=-1).sum() >= 16
