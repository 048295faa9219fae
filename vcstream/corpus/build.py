"""``vcstream corpus build``: render a multi-speaker training corpus, resumably.

Speakers are (voice, variant) pairs: every installable voice (``voices.py``), each also
pitch/formant-shifted (``variants.py``). Sentences come from ``texts.py``. The first run
freezes the plan (sentence pools, speakers, seed) in ``plan.json``; later runs with the same
output folder continue it, and may raise ``--per-speaker`` to extend it: utterance ``i`` of a
speaker is the same whatever the total, so a larger corpus contains the smaller one.

Layout (LJSpeech-style, plus our features)::

    OUT/wavs/ID.wav         22050 Hz mono 16-bit, silence trimmed, level normalised
    OUT/mels/ID.npy         [80, T] log-mel, the HiFi-GAN convention
    OUT/pitch/ID.npy        [T] F0 in Hz on the mel frames, 0 where unvoiced
    OUT/embeds/ID.npy       [256] GE2E utterance embedding
    OUT/items/ID.json       the utterance's record; written last, so it marks completion
    OUT/metadata.csv        ID|text|normalized text
    OUT/phonemes.csv        ID|espeak-ng IPA (one symbol per code point, NFD)
    OUT/speakers.json       per speaker: voice, variant, counts, log-F0 mean/std, split
    OUT/speakers/SPK.npy    mean embedding of the speaker's training utterances
    OUT/split.json          train / validation ids; held-out speakers and sentences

Validation holds out whole speakers (every variant of the ``--val-voices``, unseen in
training) and whole sentences (``--val-sentences``, spoken in validation only: by the held-out
speakers and, a few each, by the training speakers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vcstream.audio.io import write_wav
from vcstream.audio.mel import SAMPLE_RATE_HZ
from vcstream.corpus import texts as texts_mod
from vcstream.corpus.variants import Variant, apply_variant, default_variants
from vcstream.corpus.voices import VOICES, RenderError, Voice, load_voice
from vcstream.errors import InputError, NoVoiceError, VcstreamError
from vcstream.synth.fastpitch import log_f0_statistics

PLAN_VERSION = 1
SUBSETS = ("train", "val_unseen_speaker", "val_unseen_text")


@dataclass(frozen=True)
class PlannedItem:
    id: str
    speaker: str
    voice: str
    variant: str
    text: str
    subset: str  # one of SUBSETS


@dataclass
class Plan:
    voices: list[str]
    variants: dict[str, list[dict]]  # voice -> list of Variant as dicts
    val_voices: list[str]
    train_sentences: list[str]
    val_sentences: list[str]
    seed: int
    version: int = PLAN_VERSION

    def speakers(self) -> list[tuple[str, str, Variant]]:
        """(speaker name, voice, variant) in a fixed order."""
        out = []
        for v in self.voices:
            for d in self.variants[v]:
                var = Variant(**d)
                out.append((f"{v}-{var.name}", v, var))
        return out


def make_plan(
    voices: list[str],
    val_voices: list[str],
    with_variants: bool,
    sentences: list[str],
    n_sentences: int,
    n_val_sentences: int,
    seed: int,
) -> Plan:
    unknown = [v for v in [*voices, *val_voices] if v not in VOICES]
    if unknown:
        raise InputError(f"unknown voices {unknown}; known: {', '.join(VOICES)}")
    missing_val = [v for v in val_voices if v not in voices]
    if missing_val:
        raise InputError(f"--val-voices {missing_val} are not among --voices")
    if len(val_voices) >= len(voices):
        raise InputError("at least one voice must stay in training (check --val-voices)")
    if not 0 < n_val_sentences < n_sentences:
        raise InputError("need 0 < --val-sentences < --sentences")
    pool = texts_mod.choose(sentences, n_sentences, seed)
    variants = {}
    for v in voices:
        chosen = default_variants(VOICES[v][0].sex) if with_variants else default_variants("")[:1]
        variants[v] = [asdict(x) for x in chosen]
    return Plan(
        voices=voices,
        variants=variants,
        val_voices=val_voices,
        train_sentences=pool[n_val_sentences:],
        val_sentences=pool[:n_val_sentences],
        seed=seed,
    )


def plan_items(plan: Plan, per_speaker: int, val_per_speaker: int, val_seen: int):
    """Every utterance of the corpus, round-robin over speakers so that any prefix of the
    work is balanced. Utterance ``i`` of a speaker does not depend on ``per_speaker``."""
    speakers = plan.speakers()
    train_spk = [s for s in speakers if s[1] not in plan.val_voices]
    val_spk = [s for s in speakers if s[1] in plan.val_voices]
    tr, va = plan.train_sentences, plan.val_sentences
    items: list[PlannedItem] = []
    for i in range(max(per_speaker, val_per_speaker, val_seen)):
        if i < val_seen:
            for k, (name, voice, var) in enumerate(train_spk):
                text = va[(k * val_seen + i) % len(va)]
                items.append(
                    PlannedItem(f"{name}_v{i:03d}", name, voice, var.name, text, SUBSETS[2])
                )
        if i < val_per_speaker:
            for k, (name, voice, var) in enumerate(val_spk):
                text = va[(i * len(val_spk) + k) % len(va)]
                items.append(
                    PlannedItem(f"{name}_{i:05d}", name, voice, var.name, text, SUBSETS[1])
                )
        if i < per_speaker:
            for k, (name, voice, var) in enumerate(train_spk):
                text = tr[(i * len(train_spk) + k) % len(tr)]
                items.append(
                    PlannedItem(f"{name}_{i:05d}", name, voice, var.name, text, SUBSETS[0])
                )
    return items


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


class CorpusWriter:
    """Renders planned items into ``out``; each item is all-or-nothing."""

    DIRS = ("wavs", "mels", "pitch", "embeds", "items", "speakers")

    def __init__(self, out: Path, plan: Plan, device: str = "cpu") -> None:
        from vcstream.corpus.features import FeatureExtractor

        self.out = out
        self.plan = plan
        for d in self.DIRS:
            (out / d).mkdir(parents=True, exist_ok=True)
        self.features = FeatureExtractor(device)
        self._voices: dict[str, Voice] = {}
        self._variants = {
            v: {d["name"]: Variant(**d) for d in plan.variants[v]} for v in plan.voices
        }

    def done(self, item: PlannedItem) -> bool:
        return (self.out / "items" / f"{item.id}.json").is_file() or self._skip_path(item).is_file()

    def _skip_path(self, item: PlannedItem) -> Path:
        return self.out / "items" / f"{item.id}.skipped"

    def voice(self, name: str) -> Voice:
        if name not in self._voices:
            self._voices[name] = load_voice(name)
        return self._voices[name]

    def render(self, item: PlannedItem) -> bool:
        """Render one item; False (and a ``.skipped`` marker with the reason) when the
        engine fails or the result cannot be aligned."""
        from vcstream.corpus.features import clean_audio, normalize_level

        try:
            audio, sr = self.voice(item.voice).render(item.text)
            x = clean_audio(audio, sr)
            variant = self._variants[item.voice][item.variant]
            if not variant.identity:
                x = normalize_level(apply_variant(x, SAMPLE_RATE_HZ, variant))
            phonemes = self.features.phonemes(item.text)
            feats = self.features.audio_features(x)
        except (RenderError, NoVoiceError) as err:
            _write_text(self._skip_path(item), f"{err}\n")
            return False
        n_tokens = 2 * len(phonemes) + 3  # the model's framing: BOS, PAD, p1, PAD, ..., EOS
        if feats.mel.shape[1] < n_tokens:
            _write_text(self._skip_path(item), "too few frames for the phonemes\n")
            return False
        from vcstream.text.normalize import normalize_text

        write_wav(self.out / "wavs" / f"{item.id}.wav", x, SAMPLE_RATE_HZ)
        _save_npy(self.out / "mels" / f"{item.id}.npy", feats.mel)
        _save_npy(self.out / "pitch" / f"{item.id}.npy", feats.f0_hz)
        _save_npy(self.out / "embeds" / f"{item.id}.npy", feats.embedding)
        record = {
            **asdict(item),
            "normalized": normalize_text(item.text),
            "phonemes": "".join(phonemes),
            "frames": int(feats.mel.shape[1]),
            "seconds": round(len(x) / SAMPLE_RATE_HZ, 3),
        }
        _write_text(self.out / "items" / f"{item.id}.json", json.dumps(record, ensure_ascii=False))
        return True


def load_records(out: Path, order: Iterable[PlannedItem]) -> list[dict]:
    records = []
    for item in order:
        p = out / "items" / f"{item.id}.json"
        if p.is_file():
            records.append(json.loads(p.read_text(encoding="utf-8")))
    return records


def compile_index(out: Path, plan: Plan, items: list[PlannedItem]) -> dict:
    """(Re)write metadata.csv, phonemes.csv, speakers.json and split.json from the records
    present; returns a summary."""
    records = load_records(out, items)
    meta_lines = [f"{r['id']}|{r['text']}|{r['normalized']}" for r in records]
    _write_text(out / "metadata.csv", "\n".join(meta_lines) + ("\n" if meta_lines else ""))
    ph_lines = [f"{r['id']}|{r['phonemes']}" for r in records]
    _write_text(out / "phonemes.csv", "\n".join(ph_lines) + ("\n" if ph_lines else ""))

    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_speaker[r["speaker"]].append(r)
    speakers = {}
    for name, voice, var in plan.speakers():
        recs = by_speaker.get(name, [])
        f0 = [np.load(out / "pitch" / f"{r['id']}.npy") for r in recs]
        stats = log_f0_statistics(np.concatenate(f0)) if f0 else None
        own = [r for r in recs if r["subset"] != SUBSETS[2]]  # its own sentences
        if own:
            emb = np.mean([np.load(out / "embeds" / f"{r['id']}.npy") for r in own], axis=0)
            emb = (emb / max(float(np.linalg.norm(emb)), 1e-12)).astype(np.float32)
            _save_npy(out / "speakers" / f"{name}.npy", emb)
        info = VOICES[voice][0]
        speakers[name] = {
            "voice": voice,
            "variant": var.name,
            "semitones": var.semitones,
            "formant": var.formant,
            "engine": info.engine,
            "sex": info.sex,
            "person": info.person,
            "split": "val" if voice in plan.val_voices else "train",
            "utterances": len(recs),
            "seconds": round(sum(r["seconds"] for r in recs), 1),
            # median and MAD-based spread: see vcstream.synth.fastpitch.log_f0_statistics
            "log_f0_mean": stats[0] if stats else None,
            "log_f0_std": stats[1] if stats else None,
        }
    _write_text(out / "speakers.json", json.dumps(speakers, indent=1) + "\n")
    split = {
        "train": [r["id"] for r in records if r["subset"] == SUBSETS[0]],
        "val": [r["id"] for r in records if r["subset"] != SUBSETS[0]],
        "val_unseen_speaker": [r["id"] for r in records if r["subset"] == SUBSETS[1]],
        "val_unseen_text": [r["id"] for r in records if r["subset"] == SUBSETS[2]],
        "val_speakers": [s for s, d in speakers.items() if d["split"] == "val"],
        "val_sentences": plan.val_sentences,
    }
    _write_text(out / "split.json", json.dumps(split, indent=1, ensure_ascii=False) + "\n")
    train_texts = {r["text"] for r in records if r["subset"] == SUBSETS[0]}
    return {
        "utterances": len(records),
        "train": len(split["train"]),
        "val": len(split["val"]),
        "speakers": sum(1 for s in speakers.values() if s["utterances"]),
        "distinct_train_sentences": len(train_texts),
        "hours": round(sum(r["seconds"] for r in records) / 3600, 2),
    }


def _load_or_make_plan(args: argparse.Namespace) -> Plan:
    path = args.out / "plan.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        plan = Plan(**data)
        if plan.version != PLAN_VERSION:
            raise InputError(
                f"{path}: plan version {plan.version}, this code writes {PLAN_VERSION}"
            )
        asked = _parse_list(args.voices) if args.voices else None
        if asked is not None and asked != plan.voices:
            raise InputError(
                f"{args.out} was planned with voices {plan.voices}; use the same --voices "
                "to resume, or a new --out"
            )
        return plan
    sentences = (
        texts_mod.file_sentences(args.texts) if args.texts else texts_mod.fortune_sentences()
    )
    voices = _parse_list(args.voices) if args.voices else list(VOICES)
    val_voices = _parse_list(args.val_voices)
    plan = make_plan(
        voices,
        val_voices,
        not args.no_variants,
        sentences,
        args.sentences,
        args.val_sentences,
        args.seed,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    _write_text(path, json.dumps(asdict(plan), indent=1, ensure_ascii=False) + "\n")
    return plan


def _parse_list(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="vcstream corpus build",
        description="Render a multi-speaker training corpus (resumable: rerun to continue).",
    )
    p.add_argument("--out", type=Path, required=True, help="corpus folder (created)")
    p.add_argument(
        "--voices",
        default="",
        help=f"comma-separated voices (default: all: {','.join(VOICES)})",
    )
    p.add_argument(
        "--val-voices",
        default="festival_ked",
        help="voices held out for validation with all their variants ('' for none)",
    )
    p.add_argument("--no-variants", action="store_true", help="only the original voices")
    p.add_argument("--texts", type=Path, help="sentence file (one per line) instead of fortunes")
    p.add_argument("--sentences", type=int, default=6000, help="sentence pool size")
    p.add_argument("--val-sentences", type=int, default=200, help="of which held out")
    p.add_argument("--per-speaker", type=int, default=140, help="utterances per training speaker")
    p.add_argument("--val-per-speaker", type=int, default=30, help="per held-out speaker")
    p.add_argument(
        "--val-seen", type=int, default=2, help="held-out sentences per training speaker"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=0, help="stop after this many new utterances")
    p.add_argument("--device", default="cpu", help="device for the speaker encoder")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument(
        "--log-every", type=int, default=50, help="progress line every N items when not a TTY"
    )
    args = p.parse_args(argv)
    for name in ("sentences", "per_speaker"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    for name in ("val_sentences", "val_per_speaker", "val_seen", "limit"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    return args


def run(args: argparse.Namespace) -> dict:
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

    torch.set_num_threads(max(1, args.threads))
    console = Console(stderr=True)
    plan = _load_or_make_plan(args)
    items = plan_items(plan, args.per_speaker, args.val_per_speaker, args.val_seen)
    writer = CorpusWriter(args.out, plan, args.device)
    todo = [it for it in items if not writer.done(it)]
    console.print(
        f"corpus {args.out}: {len(plan.speakers())} speakers, {len(items)} utterances planned, "
        f"{len(items) - len(todo)} already done or skipped, {len(todo)} to render"
        + (f" (this run: at most {args.limit})" if args.limit else "")
    )
    if args.limit:
        todo = todo[: args.limit]
    rendered = skipped = 0
    t0 = time.monotonic()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("rendering", total=len(todo), rate="")
            for n, item in enumerate(todo, 1):
                if writer.render(item):
                    rendered += 1
                else:
                    skipped += 1
                rate = n / max(time.monotonic() - t0, 1e-9)
                progress.update(task, advance=1, rate=f"{rate:.2f} utt/s")
                if not console.is_terminal and (n % args.log_every == 0 or n == len(todo)):
                    eta = (len(todo) - n) / rate
                    console.print(
                        f"{n}/{len(todo)} rendered={rendered} skipped={skipped} "
                        f"rate={rate:.2f} utt/s elapsed={time.monotonic() - t0:.0f}s "
                        f"eta={eta:.0f}s",
                        highlight=False,
                    )
    finally:
        summary = compile_index(args.out, plan, items)
        summary.update(rendered_now=rendered, skipped_now=skipped)
        summary["seconds_now"] = round(time.monotonic() - t0, 1)
        console.print(f"corpus index written: {json.dumps(summary)}", highlight=False)
    return summary


def main(argv: list[str]) -> int:
    """Entry point of ``vcstream corpus build`` (a leading ``build`` word is accepted, as
    ``vcstream corpus build ...`` hands over everything after ``corpus``)."""
    if argv and argv[0] == "build":
        argv = argv[1:]
    args = parse_args(argv)
    try:
        run(args)
    except VcstreamError as err:
        print(f"vcstream corpus build: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to continue", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
