"""The lite vocoder: loader, stateful streaming, and the quality switch end to end."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from netutil import daemon_config, running_daemon

from vcstream.audio.io import read_wav, resample
from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ, mel_spectrogram
from vcstream.config import Config, VocoderConfig
from vcstream.errors import InputError, ModelMissingError
from vcstream.vocoder.lite import DEFAULT_CHECKPOINT, LiteVocoder, checkpoint_payload, load_lite
from vcstream.vocoder.quality import choose_vocoder
from vcstream.vocoder.streaming import StreamingVocoder

FIXTURES = Path(__file__).parent / "fixtures"
FRAMES = 160
BOUND_DB = -40.0


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def lite() -> LiteVocoder:
    return load_lite()


@pytest.fixture(scope="module")
def mel() -> torch.Tensor:
    audio, rate = read_wav(FIXTURES / "speech_joe.wav")
    return mel_spectrogram(resample(audio, rate, SAMPLE_RATE_HZ))[:, :FRAMES].contiguous()


def difference_db(a: np.ndarray, b: np.ndarray) -> float:
    return float(20 * np.log10(np.linalg.norm(a - b) / np.linalg.norm(b) + 1e-12))


# -- loader -----------------------------------------------------------------------------


def test_shipped_checkpoint_loads_strictly_in_eval_mode(lite: LiteVocoder) -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size <= 10 * 1024 * 1024
    assert not lite.training
    assert all(p.dtype == torch.float32 for p in lite.parameters())
    assert lite.hop == HOP


def test_missing_checkpoint_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelMissingError, match=r"not found.*train-vocoder"):
        load_lite(tmp_path / "absent.pt")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(DEFAULT_CHECKPOINT.read_bytes()[:5000])
    with pytest.raises(ModelMissingError, match="corrupt or unreadable"):
        load_lite(bad)


def test_checkpoint_that_does_not_fit_is_refused(tmp_path: Path, lite: LiteVocoder) -> None:
    payload = checkpoint_payload(lite, 1)
    payload["model"]["extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.pt"
    torch.save(payload, path)
    with pytest.raises(ModelMissingError, match="does not fit"):
        load_lite(path)
    torch.save({"generator": {}}, path)  # a HiFi-GAN checkpoint is not a lite one
    with pytest.raises(ModelMissingError, match="not a lite vocoder"):
        load_lite(path)


# -- streaming --------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", [[1], [3, 7, 2], [24], [100]])
def test_chunked_equals_whole_utterance(lite: LiteVocoder, mel: torch.Tensor, pieces) -> None:
    with torch.inference_mode():
        whole = lite(mel).numpy()
    voc = StreamingVocoder.from_config(lite, VocoderConfig())
    assert voc.describe()["quality"] == "lite" and voc.method == "stateful"
    outs, start, i = [], 0, 0
    while start < FRAMES:
        n = pieces[i % len(pieces)]
        outs.append(voc.process(mel[:, start : start + n]))
        start, i = start + n, i + 1
    outs.append(voc.flush())
    chunked = np.concatenate(outs)
    assert chunked.shape == whole.shape == (FRAMES * HOP,)
    assert difference_db(chunked, whole) < BOUND_DB


def test_first_chunk_is_small(lite: LiteVocoder, mel: torch.Tensor) -> None:
    voc = StreamingVocoder.from_config(lite, VocoderConfig(lite_first_chunk_frames=4))
    need = voc.first_audio_frames
    assert need == 4 + lite.lookahead_frames
    assert voc.process(mel[:, : need - 1]).size == 0
    assert voc.process(mel[:, need - 1 : need]).size == 4 * HOP


def test_lite_refuses_window_method(lite: LiteVocoder) -> None:
    with pytest.raises(InputError, match="statefully"):
        StreamingVocoder(lite, method="window")


# -- the quality switch -----------------------------------------------------------------


def test_auto_measures_full_and_takes_lite_without_headroom() -> None:
    cpu = torch.device("cpu")
    slow = choose_vocoder(VocoderConfig(quality="auto", auto_full_max_rtf=0.0), cpu)
    assert slow.quality == "lite" and isinstance(slow.generator, LiteVocoder)
    assert slow.full_rtf > 0 and "above 0.00" in slow.reason
    assert slow.status()["requested"] == "auto"
    with pytest.raises(InputError, match="quality must be one of"):
        choose_vocoder(VocoderConfig(quality="medium"), cpu)


def test_auto_is_the_default_and_means_full_for_files() -> None:
    """The daemon's default measures; output with no deadline (say, embed) takes full
    without measuring, even where V1 could never keep real time."""
    assert VocoderConfig().quality == "auto"
    cfg = VocoderConfig(quality="auto", auto_full_max_rtf=0.0)
    offline = choose_vocoder(cfg, torch.device("cpu"), realtime=False)
    assert offline.quality == "full" and offline.full_rtf is None
    assert offline.status() == {
        "quality": "full", "requested": "auto", "reason": "output to a file, no real-time deadline"
    }  # fmt: skip


def test_say_with_quality_lite_reports_it(tmp_path: Path) -> None:
    out = tmp_path / "lite.wav"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vcstream",
            "say",
            "--quality",
            "lite",
            "--device",
            "cpu",
            "--text",
            "A short test of the lite vocoder.",
            "-o",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["vocoder"] == {"quality": "lite", "requested": "lite", "reason": "configured"}
    audio, sr = read_wav(out)
    assert sr == SAMPLE_RATE_HZ and len(audio) > SAMPLE_RATE_HZ
    assert 0.01 < float(np.sqrt(np.mean(audio**2))) < 0.9  # speech, not silence or clipping


def test_daemon_runs_lite_and_status_says_so(tmp_path: Path) -> None:
    from vcstream.app import build_runtime
    from vcstream.net.client import WsClient

    cfg: Config = daemon_config(tmp_path)
    cfg.vocoder.quality = "lite"
    runtime = build_runtime(cfg)

    async def run(url: str) -> tuple[dict, object]:
        async with WsClient(url) as client:
            result = await client.speak("The daemon speaks through the lite vocoder.")
            return await client.status(), result

    with running_daemon(cfg, runtime) as d:
        status, result = asyncio.run(run(d.ws_url))
    assert result.error is None and result.audio_seconds > 1.0
    voc = status["vocoder"]
    assert voc["quality"] == "lite" and voc["requested"] == "lite"
    assert voc["first_chunk_frames"] == cfg.vocoder.lite_first_chunk_frames
    assert voc["chunk_growth"] == cfg.vocoder.lite_chunk_growth

    # The pipeline hands each chunk on as soon as it is vocoded: the small first one alone,
    # then the growing ones, not one block per synthesiser piece.
    from vcstream.synth.base import SynthControls, VoiceConditioning

    pipeline = runtime.new_pipeline()
    prepared = pipeline.prepare("The daemon speaks through the lite vocoder.")
    sizes = [len(a) // HOP for a in pipeline.render(prepared, VoiceConditioning(), SynthControls())]
    ramp = pipeline.vocoder.chunk_schedule(4)
    assert ramp[0] == cfg.vocoder.lite_first_chunk_frames < ramp[-1]
    assert ramp[1] == 2 * ramp[0]  # lite_chunk_growth = 2
    assert sizes[:4] == ramp


# -- training: held-out pairs, adversarial steps, resumable checkpoint ------------------


def _write_pairs(folder: Path, names: list[str]) -> None:
    from vcstream.vocoder.lite_data import save_pair

    audio, rate = read_wav(FIXTURES / "speech_joe.wav")
    x = resample(audio, rate, SAMPLE_RATE_HZ)[: 100 * HOP]
    m = mel_spectrogram(x).numpy()
    x = np.pad(x, (0, m.shape[1] * HOP - len(x)))[: m.shape[1] * HOP]
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        save_pair(folder / f"{name}.npz", m, x)


def test_validation_pairs_stay_out_of_training(tmp_path: Path) -> None:
    import random

    from vcstream.vocoder.lite_train import PairSet

    _write_pairs(tmp_path, ["00000r", "00001r", "00002s"])
    pairs = PairSet(tmp_path, random.Random(0))
    assert len(pairs.train) == 2 and [v[0] for v in pairs.val] == ["00000r"]
    _write_pairs(tmp_path, ["00010s", "00011r"])  # a renderer beside the trainer
    assert pairs.rescan() == 1
    assert len(pairs.train) == 3 and [v[0] for v in pairs.val] == ["00000r", "00010s"]


def _train(data: Path, run: Path, steps: int, *extra: str) -> dict:
    from vcstream.vocoder.lite_train import parse_args, train

    argv = ["--data", str(data), "--run", str(run), "--steps", str(steps), "--batch", "2"]
    argv += ["--threads", "1", "--dim", "32", "--intermediate", "64", "--layers", "2"]
    argv += ["--val-every", "100000", "--seed", "3", *extra]
    assert train(parse_args(argv)) == 0
    return torch.load(run / "checkpoint.pt", weights_only=True)


def test_adversarial_steps_change_the_generator_and_resume(tmp_path: Path) -> None:
    from vcstream.vocoder.lite_train import Adversary, parse_args

    data = tmp_path / "pairs"
    _write_pairs(data, ["00001r", "00002s", "00003r"])
    adv_args = ["--adversarial-from", "0", "--disc-warmup", "1"]
    plain = _train(data, tmp_path / "plain", 2, "--no-adversarial")
    gan = _train(data, tmp_path / "gan", 2, *adv_args)
    assert "discriminator" not in plain and gan["disc_updates"] == 2
    # same seed, data and first step: only the second step's GAN terms tell them apart
    changed = [k for k, v in gan["model"].items() if not torch.equal(v, plain["model"][k])]
    assert len(changed) > len(gan["model"]) // 2

    # round trip: the discriminators and their optimiser come back exactly
    adversary = Adversary(parse_args(adv_args), torch.device("cpu"))
    adversary.load(gan)
    assert adversary.updates == 2
    saved = adversary.state()
    for k, v in gan["discriminator"].items():
        assert torch.equal(saved["discriminator"][k], v)
    assert saved["disc_optimizer"]["state"].keys() == gan["disc_optimizer"]["state"].keys()

    again = _train(data, tmp_path / "gan", 3, *adv_args)
    assert again["step"] == 3 and again["disc_updates"] == 3
    moved = [
        k for k, v in again["discriminator"].items() if not torch.equal(v, gan["discriminator"][k])
    ]
    assert moved
    # a regression-only checkpoint resumes into adversarial training with fresh ones
    resumed = _train(data, tmp_path / "plain", 3, *adv_args)
    assert resumed["step"] == 3 and resumed["disc_updates"] == 1


# -- evaluation -------------------------------------------------------------------------


def test_selection_set_shares_nothing_with_the_reported_set() -> None:
    from vcstream.vocoder.lite_eval import SETS

    standard, selection = SETS["standard"], SETS["selection"]
    assert not set(standard.sentences) & set(selection.sentences)
    assert not set(standard.fixtures) & set(selection.fixtures)
    voices = [{v for v, _ in s.rendered} for s in (standard, selection)]
    texts = [{t for _, t in s.rendered} for s in (standard, selection)]
    assert not voices[0] & voices[1] and not texts[0] & texts[1]
    # the CER voices are the default and the first two recordings': each set needs two
    assert all(len(s.fixtures) + len(s.rendered) >= 2 for s in SETS.values())


def test_evaluate_refuses_a_bad_set_or_count_before_loading() -> None:
    from vcstream.vocoder.lite_eval import evaluate

    with pytest.raises(InputError, match="unknown evaluation set"):
        evaluate([None], None, 1, "tuning")
    with pytest.raises(InputError, match="--sentences must be 1 to 6"):
        evaluate([None], None, 7, "selection")


# -- periodicity loss ---------------------------------------------------------------------


def _tone(f0_hz: float, n: int = 8192, delay: int = 0) -> torch.Tensor:
    t = torch.arange(n, dtype=torch.float64) + delay
    return (0.3 * torch.sin(2 * torch.pi * f0_hz * t / SAMPLE_RATE_HZ)).float()[None]


def test_normalised_autocorrelation_peaks_at_the_period_and_not_for_noise() -> None:
    from vcstream.vocoder.lite_train import normalised_autocorrelation

    r, power = normalised_autocorrelation(_tone(200.0))
    tau_min = SAMPLE_RATE_HZ // 600
    assert r.shape[:2] == power.shape and r.shape[1] == (8192 - 920) // HOP + 1
    # every frame repeats after the period (110.25 samples), not after half of it
    assert r[..., 110 - tau_min].min() > 0.99 and r[..., 55 - tau_min].max() < -0.9
    noise = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (1, 8192))).float()
    assert normalised_autocorrelation(noise)[0].abs().max() < 0.3


def test_periodicity_loss_sees_voicing_not_phase_or_silence() -> None:
    from vcstream.vocoder.lite_train import periodicity_loss

    tone = _tone(150.0)
    noise = torch.from_numpy(np.random.default_rng(1).normal(0, 0.1, tone.shape)).float()
    assert periodicity_loss(tone, tone) == 0
    # a delay changes the phase of every STFT bin, and the voicing barely (a window of
    # 3.7 periods does not hold a whole number of them)
    delayed = periodicity_loss(_tone(150.0, delay=37), tone)
    assert delayed < 0.05
    assert periodicity_loss(tone + noise, tone) > 2 * delayed  # breathy: 6 dB of noise
    assert periodicity_loss(noise, tone) > 0.5
    assert periodicity_loss(_tone(160.0), tone) > 0.3  # another pitch
    # silent target frames teach nothing; silence in the output has finite gradients
    assert periodicity_loss(noise, torch.zeros_like(tone)) == 0
    y = torch.zeros_like(tone, requires_grad=True)
    periodicity_loss(y, tone).backward()
    assert torch.isfinite(y.grad).all()


def test_periodicity_weight_reaches_the_training_step(tmp_path: Path) -> None:
    data = tmp_path / "pairs"
    _write_pairs(data, ["00001r", "00002s", "00003r"])
    off = _train(data, tmp_path / "off", 1, "--no-adversarial", "--periodicity-weight", "0")
    on = _train(data, tmp_path / "on", 1, "--no-adversarial", "--periodicity-weight", "4")
    assert any(not torch.equal(v, off["model"][k]) for k, v in on["model"].items())


def _report(**figures) -> dict:
    base = {
        "lite_checkpoint": "x.pt",
        "lite_step": 1,
        "cer_full": 0.01,
        "cer_lite": 0.015,
        "copy_cosine_ratio": 0.96,
        "copy_voiced_ratio": 0.9,
        "synth_voiced_ratio": 0.95,
    }
    return {**base, **figures}


def test_voiced_share_targets_can_fail_and_say_so() -> None:
    from vcstream.vocoder.lite_eval import target_lines, targets

    met = {t["name"]: t["met"] for t in targets(_report())}
    assert met == {
        "lite.cer_le_full_plus_0.01": True,
        "lite.copy_cosine_ratio_ge_0.95": True,
        "lite.copy_voiced_ratio_ge_0.85": True,
        "lite.synth_voiced_ratio_ge_0.9": True,
    }
    # step 4780's figures (standard set, --sentences 3): the voicing targets fail
    r = _report(cer_lite=0.025, copy_voiced_ratio=0.4837, synth_voiced_ratio=0.7595)
    r["targets"] = targets(r)
    lines = target_lines(r)
    assert "target lite.copy_voiced_ratio_ge_0.85: NOT met (0.4837)" in lines
    assert "target lite.synth_voiced_ratio_ge_0.9: NOT met (0.7595)" in lines
    assert "target lite.cer_le_full_plus_0.01: NOT met (0.0150)" in lines
    # V1 with no voiced frame: no ratio, not measured (neither met nor failed)
    r = _report(copy_voiced_ratio=None)
    r["targets"] = targets(r)
    assert "target lite.copy_voiced_ratio_ge_0.85: not measured (-)" in target_lines(r)
