"""``vcstream train``: train (or fine-tune) the FastPitch synthesiser.

Examples::

    vcstream train --data corpus/ --run runs/base
    vcstream train --data ~/LJSpeech-1.1 ~/VCTK-Corpus --run runs/real --device cuda
    vcstream train --finetune --data my_recordings/ --run runs/me --steps 2000

Rerunning a command continues its run from ``RUN/checkpoints/latest.pt``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vcstream.errors import VcstreamError


def parse_args(argv: list[str]) -> argparse.Namespace:
    from vcstream.train.trainer import PRESETS, TrainConfig

    d = TrainConfig()
    p = argparse.ArgumentParser(
        prog="vcstream train",
        description="Train the FastPitch synthesiser (resumable: rerun to continue).",
    )
    p.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        help="corpus folders: ours, LJSpeech, VCTK or LibriTTS layout (detected)",
    )
    p.add_argument(
        "--layout",
        default="auto",
        choices=["auto", "vcstream", "ljspeech", "vctk", "libritts"],
        help="force the layout of every --data folder",
    )
    p.add_argument("--run", type=Path, required=True, help="run folder (checkpoints, plots)")
    p.add_argument("--steps", type=int, default=d.steps, help="train until this step")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=d.warmup_steps, help="warm-up steps")
    p.add_argument("--max-frames", type=int, default=d.max_frames, help="longest utterance")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--val-every", type=int, default=d.val_every)
    p.add_argument("--ckpt-every", type=int, default=d.ckpt_every)
    p.add_argument("--audio-every", type=int, default=d.audio_every, help="0: no audio")
    p.add_argument("--audio-items", type=int, default=d.audio_items)
    p.add_argument("--no-audio", action="store_true", help="no validation audio (no vocoder)")
    p.add_argument("--vocoder", default="universal", help="HiFi-GAN checkpoint for samples")
    p.add_argument(
        "--embedding",
        default=d.embedding,
        choices=["utterance", "speaker"],
        help="condition on each utterance's embedding or the speaker's mean",
    )
    p.add_argument("--preset", default="base", choices=sorted(PRESETS), help="model size")
    p.add_argument("--init", type=Path, help="start a new run from this checkpoint")
    p.add_argument(
        "--finetune", action="store_true", help="start from the shipped checkpoint (--init)"
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.02,
        help="LJSpeech/VCTK/LibriTTS: share of utterances held out for validation",
    )
    p.add_argument(
        "--val-speakers",
        type=int,
        default=0,
        help="LJSpeech/VCTK/LibriTTS: whole speakers held out for validation",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default=d.precision,
        help="bf16: bfloat16 autocast for the heavy layers (faster on CPUs with AVX512-BF16 "
        "and on recent GPUs; alignment and losses stay float32)",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--export", type=Path, help="afterwards, write a slim fp16 checkpoint here")
    p.add_argument(
        "--export-voice",
        metavar="SPEAKER",
        help="--export: the training speaker whose voice the checkpoint speaks in before any "
        "voice is heard (default: the one with the most utterances)",
    )
    args = p.parse_args(argv)
    for name in ("steps", "batch_size", "log_every", "val_every", "ckpt_every", "max_frames"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.lr <= 0:
        p.error("--lr must be positive")
    if not 0 <= args.val_fraction < 1 or args.val_speakers < 0:
        p.error("--val-fraction must be in [0, 1) and --val-speakers not negative")
    if args.init and args.finetune:
        p.error("give --init or --finetune, not both")
    return args


def gather_records(args: argparse.Namespace, progress=None):
    """Training and validation records of every --data folder (preparing features for
    layouts that have none)."""
    from vcstream.errors import InputError
    from vcstream.train import data as data_mod

    train, val = [], []
    for root in args.data:
        if not root.is_dir():
            raise InputError(f"--data {root}: no such folder")
        layout = data_mod.detect_layout(root) if args.layout == "auto" else args.layout
        if layout == "vcstream":
            prepared = root
        else:
            source = data_mod.READERS[layout](root)
            cache = args.run / "data" / f"{layout}-{root.resolve().name}"
            prepared = data_mod.prepare(source, cache, "cpu", progress)
        records = data_mod.load_records(prepared)
        if layout != "vcstream":  # our corpus carries the builder's split
            records = data_mod.assign_validation(
                records, args.val_fraction, args.val_speakers, args.seed
            )
        train += [r for r in records if r.subset == "train"]
        val += [r for r in records if r.subset != "train"]
    # Validation order: unseen speakers first, interleaved, so the audio samples cover them.
    val.sort(key=lambda r: (r.subset != "val_unseen_speaker", r.id.split("_")[-1], r.id))
    return train, val


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from vcstream.train.trainer import (
        DEFAULT_CHECKPOINT,
        TrainConfig,
        Trainer,
        default_voice,
        export_checkpoint,
        resolve_device,
    )

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    console = Console(stderr=True)
    device = resolve_device(args.device)
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        warmup_steps=args.warmup,
        max_frames=args.max_frames,
        log_every=args.log_every,
        val_every=args.val_every,
        ckpt_every=args.ckpt_every,
        audio_every=0 if args.no_audio else args.audio_every,
        audio_items=args.audio_items,
        embedding=args.embedding,
        precision=args.precision,
        seed=args.seed,
    )
    vocoder = None if cfg.audio_every == 0 else load_sample_vocoder(args.vocoder, device)
    init = DEFAULT_CHECKPOINT if args.finetune else args.init
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    args.run.mkdir(parents=True, exist_ok=True)
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        train, val = gather_records(args, _PrepProgress(progress))
        trainer = Trainer(args.run, train, val, cfg, device, args.preset, init, vocoder, console)
        console.print(
            f"training on {device}: {len(trainer.train_records)} utterances, "
            f"{len(trainer.val_records)} for validation, "
            f"{sum(p.numel() for p in trainer.model.parameters())} parameters, "
            f"from step {trainer.step} to {cfg.steps}",
            highlight=False,
        )
        trainer.fit(progress)
    console.print(f"loss plot: {trainer.plot()}", highlight=False)
    if args.export:
        voice = default_voice(trainer.train_records, args.export_voice)
        size = export_checkpoint(args.run / "checkpoints" / "latest.pt", args.export, voice=voice)
        console.print(
            f"exported {args.export} ({size / 1e6:.1f} MB), default voice {voice['name']}",
            highlight=False,
        )
    return 0


class _PrepProgress:
    """Adapter so that feature preparation shows a bar of its own (needs a ``loss`` field)."""

    def __init__(self, progress) -> None:
        self._p = progress

    def add_task(self, description: str, total: int):
        return self._p.add_task(description, total=total, loss="")

    def update(self, task, advance: int = 1) -> None:
        self._p.update(task, advance=advance)


def load_sample_vocoder(name: str, device):
    """``mel [80, T] tensor -> float32 audio`` for validation samples; a clear error (with
    ``--no-audio`` as the way out) when the vocoder or its weights are missing."""
    from vcstream.errors import ModelMissingError

    try:
        from vcstream.vocoder import load_vocoder
    except ImportError as err:
        raise ModelMissingError(
            f"the vocoder module is not available ({err}); pass --no-audio to train without "
            "validation audio"
        ) from err
    vocoder = load_vocoder(name, device)

    def to_audio(mel):
        import numpy as np
        import torch

        with torch.inference_mode():
            audio = vocoder(mel.to(device).float())
        return np.asarray(
            audio.detach().cpu().numpy() if torch.is_tensor(audio) else audio, dtype=np.float32
        ).reshape(-1)

    return to_audio


def main(argv: list[str]) -> int:
    """Entry point of ``vcstream train``."""
    args = parse_args(argv)
    try:
        return run(args)
    except VcstreamError as err:
        print(f"vcstream train: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: rerun the same command to continue from the last checkpoint",
            file=sys.stderr,
        )
        return 130
