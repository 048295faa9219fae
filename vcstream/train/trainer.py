"""The training loop: resumable checkpoints, progress, loss plot, validation audio.

A run folder holds everything about one training run::

    RUN/checkpoints/latest.pt         model, optimiser, scheduler, step, history (resume)
    RUN/checkpoints/step_NNNNNNN.pt   the last few periodic snapshots
    RUN/losses.jsonl                  one line per logging interval (train) / validation
    RUN/losses.png                    the curves, redrawn at every validation
    RUN/samples/step_NNNNNNN/*.wav    validation sentences, synthesised and vocoded
    RUN/data/NAME/                    features prepared from LJSpeech/VCTK/LibriTTS sources

Rerunning the same command continues from ``latest.pt``. ``--init CKPT`` (or
``--finetune``, which means the shipped checkpoint) starts a new run from trained weights,
for example on a user's own transcribed recordings in the LJSpeech layout.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vcstream.errors import InputError, ModelMissingError
from vcstream.synth.fastpitch import (
    DEFAULT_CHECKPOINT,
    FastPitch,
    FastPitchConfig,
    Normalisation,
    Targets,
    checkpoint_payload,
    count_parameters,
    load_model,
)
from vcstream.train import data as data_mod
from vcstream.train.losses import LossWeights, compute_losses
from vcstream.train.plot import plot_series, spectrograms_png

MAX_PARAMETERS = 10_000_000
KEEP_SNAPSHOTS = 3

PRESETS: dict[str, dict[str, Any]] = {
    # The shipped model: about 7.4 M parameters.
    "base": {},
    # For tests and smoke runs: tiny and fast, not for listening.
    "tiny": {
        "d_model": 64,
        "n_heads": 2,
        "enc_layers": 1,
        "dec_layers": 1,
        "ff_dim": 128,
        "predictor_dim": 64,
        "align_dim": 32,
    },
}


@dataclass
class TrainConfig:
    steps: int = 100_000
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 1000
    weight_decay: float = 1e-6
    grad_clip: float = 1.0
    max_frames: int = 1000  # longer utterances are left out (memory)
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    audio_every: int = 5000  # 0: never
    audio_items: int = 4
    val_max_items: int = 64
    embedding: str = "utterance"
    # "bf16": forward passes under bfloat16 autocast (convolutions, attention, linear
    # layers), the alignment distances, targets and losses in float32. 1.6x faster per
    # step on a CPU with AVX512-BF16 (AMD EPYC, one thread), and on recent GPUs.
    precision: str = "fp32"
    seed: int = 1234
    weights: LossWeights = field(default_factory=LossWeights)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then inverse square-root decay (the transformer schedule)."""
    s = max(step, 1)
    w = max(cfg.warmup_steps, 1)
    return cfg.lr * min(s / w, math.sqrt(w / s))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from vcstream.errors import DeviceUnavailableError

        raise DeviceUnavailableError("CUDA was asked for but torch sees no CUDA device")
    return torch.device(name)


def to_device(t: Targets, device: torch.device) -> Targets:
    return Targets(**{k: v.to(device, non_blocking=True) for k, v in vars(t).items()})


def estimate_normalisation(records: list[data_mod.Record], limit: int = 400) -> Normalisation:
    """Mel, energy and log-F0 statistics from a sample of the training data."""
    rng = random.Random(0)
    sample = rng.sample(records, min(limit, len(records)))
    mels = [r.array("mels") for r in sample]
    allm = np.concatenate([m.reshape(-1) for m in mels])
    energy = np.concatenate([m.mean(0) for m in mels])
    f0 = np.concatenate([r.array("pitch") for r in sample])
    lf = np.log(f0[f0 > 0]) if (f0 > 0).sum() > 10 else np.array([math.log(150.0), 5.3])
    return Normalisation(
        mel_mean=float(allm.mean()),
        mel_std=float(allm.std()),
        log_f0_mean=float(lf.mean()),
        log_f0_std=float(max(lf.std(), 0.05)),
        energy_mean=float(energy.mean()),
        energy_std=float(max(energy.std(), 1e-3)),
    )


class Trainer:
    def __init__(
        self,
        run_dir: Path,
        train_records: list[data_mod.Record],
        val_records: list[data_mod.Record],
        cfg: TrainConfig,
        device: torch.device,
        preset: str = "base",
        init: Path | None = None,
        vocoder: Any = None,
        console: Any = None,
    ) -> None:
        from vcstream.text.phonemes import load_inventory

        self.run_dir = run_dir
        self.cfg = cfg
        self.device = device
        self.console = console
        self.vocoder = vocoder
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        train_records = [r for r in train_records if r.frames <= cfg.max_frames]
        if not train_records:
            raise InputError("no training utterances (after leaving out those over --max-frames)")
        self.train_records = train_records
        self.val_records = val_records[: cfg.val_max_items]
        stats_records = train_records + self.val_records
        self.log_f0_stats = data_mod.speaker_log_f0_stats(stats_records)
        spk_emb = (
            data_mod.mean_speaker_embeddings(stats_records) if cfg.embedding == "speaker" else None
        )
        inventory = load_inventory()
        self.history: list[dict] = []
        self.step = 0
        latest = run_dir / "checkpoints" / "latest.pt"
        if latest.is_file():
            self._resume(latest)
        else:
            if init is not None:
                model, symbols, _ = load_model(init, "cpu")
                if tuple(symbols) != inventory.symbols:
                    raise InputError(
                        f"{init}: its phoneme symbols differ from this inventory; cannot fine-tune"
                    )
                self.model = model
            else:
                overrides = PRESETS[preset]
                mcfg = FastPitchConfig(
                    n_symbols=inventory.num_ids,
                    norm=estimate_normalisation(train_records),
                    **overrides,
                )
                torch.manual_seed(cfg.seed)
                self.model = FastPitch(mcfg)
            self.symbols = list(inventory.symbols)
            self.model.to(device)
            self.optim = self._make_optimizer()
        n_params = count_parameters(self.model)
        if n_params > MAX_PARAMETERS:
            raise InputError(f"model has {n_params} parameters, over the {MAX_PARAMETERS} limit")
        table = {s: i for i, s in enumerate(self.symbols)}
        self.train_set = data_mod.TTSDataset(
            train_records, table, self.log_f0_stats, cfg.embedding, spk_emb
        )
        self.val_set = data_mod.TTSDataset(
            self.val_records, table, self.log_f0_stats, cfg.embedding, spk_emb
        )
        self.batches = data_mod.BucketBatches(
            [r.frames for r in train_records], cfg.batch_size, cfg.seed
        )

    # --- state --------------------------------------------------------------------------

    def _make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=self.cfg.lr,
            betas=(0.9, 0.98),
            eps=1e-9,
            weight_decay=self.cfg.weight_decay,
        )

    def _resume(self, path: Path) -> None:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        self.model = FastPitch(FastPitchConfig.from_dict(ckpt["config"]))
        self.model.load_state_dict(ckpt["model"], strict=True)
        self.model.to(self.device)
        self.symbols = list(ckpt["symbols"])
        self.optim = self._make_optimizer()
        self.optim.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.history = list(ckpt.get("history", []))
        torch.set_rng_state(ckpt["torch_rng"])
        random.setstate(ckpt["py_rng"])
        self._say(f"resumed from {path} at step {self.step}")

    def save(self) -> Path:
        ckdir = self.run_dir / "checkpoints"
        payload = checkpoint_payload(
            self.model,
            self.symbols,
            {
                "optimizer": self.optim.state_dict(),
                "step": self.step,
                "history": self.history,
                "train_config": asdict(self.cfg),
                "torch_rng": torch.get_rng_state(),
                "py_rng": random.getstate(),
            },
        )
        snap = ckdir / f"step_{self.step:07d}.pt"
        tmp = ckdir / ".latest.pt.tmp"
        torch.save(payload, tmp)
        tmp.replace(ckdir / "latest.pt")
        torch.save(payload, snap)
        for old in sorted(ckdir.glob("step_*.pt"))[:-KEEP_SNAPSHOTS]:
            old.unlink()
        return snap

    def _say(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg, highlight=False)

    # --- steps --------------------------------------------------------------------------

    def _losses(self, t: Targets) -> dict[str, torch.Tensor]:
        """Forward pass and every loss term, for training and validation alike."""
        with torch.autocast(
            device_type=self.device.type,
            dtype=torch.bfloat16,
            enabled=self.cfg.precision == "bf16",
        ):
            out = self.model(t)
        out = {k: v.float() if v.is_floating_point() else v for k, v in out.items()}
        return compute_losses(
            out,
            t.text_lens,
            t.mel_lens,
            t.speaker_log_f0,
            self.cfg.weights,
            self.step,
            self.model.cfg.norm.log_f0_std,
        )

    def train_step(self, targets: Targets) -> dict[str, float]:
        self.model.train()
        for g in self.optim.param_groups:
            g["lr"] = lr_at(self.step + 1, self.cfg)
        t = to_device(targets, self.device)
        losses = self._losses(t)
        self.optim.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optim.step()
        self.step += 1
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Teacher-forced losses over the validation set (alignment by MAS, as in training)."""
        if not len(self.val_set):
            return {}
        self.model.eval()
        sums: dict[str, float] = {}
        n = 0
        bs = self.cfg.batch_size
        for s in range(0, len(self.val_set), bs):
            _, t = data_mod.collate(
                [self.val_set[i] for i in range(s, min(s + bs, len(self.val_set)))]
            )
            t = to_device(t, self.device)
            losses = self._losses(t)
            k = len(t.text_lens)
            for name, v in losses.items():
                sums[name] = sums.get(name, 0.0) + float(v) * k
            n += k
        return {name: v / n for name, v in sums.items()}

    def write_samples(self) -> list[Path]:
        """Synthesise a few validation sentences from phonemes, embedding and the speaker's
        measured log-F0 statistics (what a live microphone supplies), vocode, write WAVs,
        and beside each a PNG of the recording's mel (top) over the synthesised one."""
        if self.vocoder is None or not self.val_records:
            return []
        from vcstream.audio.io import write_wav
        from vcstream.audio.mel import SAMPLE_RATE_HZ

        out_dir = self.run_dir / "samples" / f"step_{self.step:07d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model.eval()
        written = []
        for r in self.val_records[: self.cfg.audio_items]:
            item = self.val_set[self.val_records.index(r)]
            stats = item["speaker_log_f0"][None].to(self.device)
            mel = self.model.infer(
                item["ids"][None].to(self.device), item["embedding"][None].to(self.device), stats
            )
            audio = self.vocoder(mel)
            path = out_dir / f"{r.id}.wav"
            write_wav(path, audio, SAMPLE_RATE_HZ)
            written.append(path)
            pair = [item["mel"].squeeze(0).cpu().numpy(), mel.squeeze(0).float().cpu().numpy()]
            path.with_suffix(".png").write_bytes(spectrograms_png(pair))
            ref = self.run_dir / "samples" / "reference" / f"{r.id}.wav"
            if not ref.is_file():  # the target mel through the same vocoder, once
                ref.parent.mkdir(parents=True, exist_ok=True)
                write_wav(ref, self.vocoder(item["mel"].to(self.device)), SAMPLE_RATE_HZ)
        return written

    def _log(self, entry: dict) -> None:
        self.history.append(entry)
        with (self.run_dir / "losses.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")

    def plot(self) -> Path:
        series: dict[str, tuple[list[float], list[float]]] = {}
        for kind in ("train", "val"):
            rows = [h for h in self.history if h["kind"] == kind]
            for name in ("total", "mel", "duration", "pitch", "energy", "align"):
                if rows and name in rows[0]:
                    series[f"{kind}_{name}" if kind == "val" else name] = (
                        [h["step"] for h in rows],
                        [h[name] for h in rows],
                    )
        path = self.run_dir / "losses.png"
        plot_series(
            series,
            path,
            title=f"fastpitch {self.run_dir.name}: losses to step {self.step}",
            dotted=[k for k in series if k.startswith("val_")],
        )
        return path

    def fit(self, progress: Any = None) -> dict[str, float]:
        """Train to ``cfg.steps``; returns the last logged training losses."""
        cfg = self.cfg
        if self.step >= cfg.steps:
            self._say(f"already at step {self.step} >= {cfg.steps}: nothing to train")
            return {}
        task = None
        if progress is not None:
            task = progress.add_task("training", total=cfg.steps, completed=self.step, loss="")
        acc: dict[str, float] = {}
        n_acc = 0
        last: dict[str, float] = {}
        t0 = time.monotonic()
        batches = self.batches.iterate(self.step)
        while self.step < cfg.steps:
            idx = next(batches)
            _, targets = data_mod.collate([self.train_set[i] for i in idx])
            losses = self.train_step(targets)
            if not all(math.isfinite(v) for v in losses.values()):
                raise InputError(
                    f"training diverged at step {self.step} (losses {losses}); "
                    "lower --lr or resume from an earlier snapshot"
                )
            for k, v in losses.items():
                acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            if progress is not None:
                progress.update(task, advance=1, loss=f"loss {losses['total']:.3f}")
            if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                last = {k: v / n_acc for k, v in acc.items()}
                rate = n_acc / max(time.monotonic() - t0, 1e-9)
                self._log({"kind": "train", "step": self.step, "lr": lr_at(self.step, cfg), **last})
                self._say(
                    f"step {self.step}: "
                    + " ".join(f"{k}={v:.4f}" for k, v in last.items())
                    + f" ({rate:.2f} steps/s)"
                )
                acc, n_acc, t0 = {}, 0, time.monotonic()
            if self.step % cfg.val_every == 0 or self.step == cfg.steps:
                val = self.validate()
                if val:
                    self._log({"kind": "val", "step": self.step, **val})
                    self._say(
                        f"validation at step {self.step}: "
                        + " ".join(f"{k}={v:.4f}" for k, v in val.items())
                    )
                self.plot()
            if cfg.audio_every and (self.step % cfg.audio_every == 0 or self.step == cfg.steps):
                for p in self.write_samples():
                    self._say(f"sample: {p}")
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.save()
        return last


def default_voice(records: list[data_mod.Record], speaker: str | None = None) -> dict[str, Any]:
    """The voice a shipped checkpoint speaks in before any voice has been heard: the mean
    embedding and log-F0 statistics of one training speaker (by default the one with the
    most utterances)."""
    counts: dict[str, int] = {}
    for r in records:
        counts[r.speaker] = counts.get(r.speaker, 0) + 1
    if not counts:
        raise InputError("no training utterances to take a default voice from")
    if speaker is None:
        speaker = min(counts, key=lambda s: (-counts[s], s))
    elif speaker not in counts:
        raise InputError(f"default voice {speaker!r} is not a training speaker")
    own = [r for r in records if r.speaker == speaker]
    mean, std = data_mod.speaker_log_f0_stats(own)[speaker]
    return {
        "name": speaker,
        "embedding": torch.from_numpy(data_mod.mean_speaker_embeddings(own)[speaker]),
        "log_f0": torch.tensor([mean, std], dtype=torch.float32),
    }


def export_checkpoint(
    src: Path, dst: Path, half: bool = True, voice: dict[str, Any] | None = None
) -> int:
    """Slim copy of a training checkpoint for shipping: weights (fp16 unless told),
    config, symbols and, if given, the default voice (``default_voice``). Returns the file
    size in bytes."""
    if not Path(src).is_file():
        raise ModelMissingError(f"no checkpoint at {src}")
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    model = FastPitch(FastPitchConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"], strict=True)
    extra: dict[str, Any] = {"step": int(ckpt.get("step", 0))}
    if voice is not None:
        extra["default_voice"] = voice
    payload = checkpoint_payload(model, ckpt["symbols"], extra)
    if half:
        payload["model"] = {
            k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()
        }
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    torch.save(payload, tmp)
    tmp.replace(dst)
    return dst.stat().st_size


__all__ = [
    "DEFAULT_CHECKPOINT",
    "PRESETS",
    "TrainConfig",
    "Trainer",
    "default_voice",
    "export_checkpoint",
    "lr_at",
]
