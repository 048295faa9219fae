"""Training data: readers for four corpus layouts, one prepared format, the batch loader.

Our corpus (``vcstream corpus build``) already holds every feature. The LJSpeech, VCTK and
LibriTTS layouts (and a user's own recordings in the LJSpeech layout) hold only audio and
text: ``prepare`` computes the same features once into a cache folder with our corpus's
layout, resumably, and from then on every source is read the same way.

Layouts recognised under a root folder:

* ours: ``plan.json``, ``items/``, ``split.json`` (validation as the builder chose it)
* LJSpeech: ``metadata.csv`` (``id|text|normalized``) and ``wavs/ID.wav``
* VCTK: ``txt/SPK/ID.txt`` with ``wav48/SPK/ID.wav`` (0.80) or
  ``wav48_silence_trimmed/SPK/ID_mic1.flac`` (0.92; FLAC needs PyAV)
* LibriTTS: ``.../SPK/CHAPTER/ID.wav`` beside ``ID.normalized.txt``
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vcstream.audio.io import read_wav
from vcstream.errors import AudioFileError, InputError, NoVoiceError
from vcstream.synth.fastpitch import Targets, frame_ids, log_f0_statistics

LAYOUTS = ("vcstream", "ljspeech", "vctk", "libritts")


@dataclass(frozen=True)
class SourceUtterance:
    """An utterance of a layout that holds only audio and text."""

    id: str
    audio: Path
    text: str
    speaker: str


def detect_layout(root: Path) -> str:
    if (root / "plan.json").is_file() and (root / "items").is_dir():
        return "vcstream"
    if (root / "metadata.csv").is_file() and (root / "wavs").is_dir():
        return "ljspeech"
    if (root / "txt").is_dir() and any(
        (root / d).is_dir() for d in ("wav48", "wav48_silence_trimmed")
    ):
        return "vctk"
    if next(root.glob("*/*/*.normalized.txt"), None) or next(
        root.glob("*/*/*/*.normalized.txt"), None
    ):
        return "libritts"
    raise InputError(
        f"{root}: not a recognised corpus layout (ours, LJSpeech metadata.csv + wavs/, "
        "VCTK txt/ + wav48*/, LibriTTS SPK/CHAPTER/*.normalized.txt)"
    )


def read_ljspeech(root: Path) -> list[SourceUtterance]:
    speaker = root.resolve().name
    out = []
    lines = (root / "metadata.csv").read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) < 2:
            raise InputError(f"{root / 'metadata.csv'} line {n}: want 'id|text[|normalized]'")
        text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
        out.append(SourceUtterance(parts[0], root / "wavs" / f"{parts[0]}.wav", text, speaker))
    return out


def read_vctk(root: Path) -> list[SourceUtterance]:
    out = []
    for txt in sorted((root / "txt").glob("*/*.txt")):
        spk, uid = txt.parent.name, txt.stem
        candidates = [
            root / "wav48" / spk / f"{uid}.wav",
            root / "wav48_silence_trimmed" / spk / f"{uid}_mic1.flac",
            root / "wav48_silence_trimmed" / spk / f"{uid}_mic1.wav",
        ]
        audio = next((c for c in candidates if c.is_file()), None)
        if audio is not None:
            text = txt.read_text(encoding="utf-8", errors="replace").strip()
            out.append(SourceUtterance(uid, audio, text, spk))
    return out


def read_libritts(root: Path) -> list[SourceUtterance]:
    out = []
    for txt in sorted(root.glob("**/*.normalized.txt")):
        uid = txt.name[: -len(".normalized.txt")]
        wav = txt.with_name(f"{uid}.wav")
        if wav.is_file():
            spk = txt.parent.parent.name
            text = txt.read_text(encoding="utf-8", errors="replace").strip()
            out.append(SourceUtterance(uid, wav, text, spk))
    return out


READERS = {"ljspeech": read_ljspeech, "vctk": read_vctk, "libritts": read_libritts}


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """WAV with our reader; FLAC (VCTK 0.92) through PyAV when it is installed."""
    if path.suffix.lower() != ".flac":
        return read_wav(path)
    try:
        import av
    except ImportError as err:
        raise AudioFileError(
            f"{path}: FLAC needs PyAV (`pip install av`), or convert the corpus to WAV"
        ) from err
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        frames = [f.to_ndarray().astype(np.float32) for f in container.decode(stream)]
    x = np.concatenate([f.reshape(f.shape[0], -1) for f in frames], axis=1).mean(axis=0)
    return x.astype(np.float32), int(rate)


def prepare(
    source: Sequence[SourceUtterance], cache: Path, device: str = "cpu", progress=None
) -> Path:
    """Compute our features for a text+audio corpus into ``cache`` (our layout); resumable.

    Utterances that cannot be used (silent, too short for their phonemes) are recorded as
    ``items/ID.skipped`` with the reason. The validation split is not decided here but when
    the records are read (``assign_validation``).
    """
    from vcstream.audio.io import write_wav
    from vcstream.audio.mel import SAMPLE_RATE_HZ
    from vcstream.corpus.build import _save_npy, _write_text
    from vcstream.corpus.features import FeatureExtractor, clean_audio
    from vcstream.text.normalize import normalize_text

    if not source:
        raise InputError("no utterances found to prepare")
    for d in ("wavs", "mels", "pitch", "embeds", "items"):
        (cache / d).mkdir(parents=True, exist_ok=True)
    ids = [u.id for u in source]
    if len(set(ids)) != len(ids):
        raise InputError("utterance ids are not unique in this corpus")
    todo = [
        u
        for u in source
        if not (cache / "items" / f"{u.id}.json").is_file()
        and not (cache / "items" / f"{u.id}.skipped").is_file()
    ]
    extractor = FeatureExtractor(device) if todo else None
    task = progress.add_task("preparing features", total=len(todo)) if progress else None
    for u in todo:
        try:
            audio, sr = read_audio(u.audio)
            x = clean_audio(audio, sr)
            phonemes = extractor.phonemes(u.text)
            feats = extractor.audio_features(x)
            if feats.mel.shape[1] < 2 * len(phonemes) + 3 or not phonemes:
                raise NoVoiceError("too few frames for the phonemes")
        except (AudioFileError, NoVoiceError) as err:
            if isinstance(err, AudioFileError) and "PyAV" in str(err):
                raise
            _write_text(cache / "items" / f"{u.id}.skipped", f"{err}\n")
        else:
            write_wav(cache / "wavs" / f"{u.id}.wav", x, SAMPLE_RATE_HZ)
            _save_npy(cache / "mels" / f"{u.id}.npy", feats.mel)
            _save_npy(cache / "pitch" / f"{u.id}.npy", feats.f0_hz)
            _save_npy(cache / "embeds" / f"{u.id}.npy", feats.embedding)
            record = {
                "id": u.id,
                "speaker": u.speaker,
                "text": u.text,
                "normalized": normalize_text(u.text),
                "phonemes": "".join(phonemes),
                "frames": int(feats.mel.shape[1]),
                "seconds": round(len(x) / SAMPLE_RATE_HZ, 3),
                "subset": "train",
            }
            _write_text(cache / "items" / f"{u.id}.json", json.dumps(record, ensure_ascii=False))
        if progress is not None:
            progress.update(task, advance=1)
    return cache


@dataclass(frozen=True)
class Record:
    id: str
    root: Path
    speaker: str
    phonemes: str
    frames: int
    subset: str

    def array(self, kind: str) -> np.ndarray:
        return np.load(self.root / kind / f"{self.id}.npy")


def load_records(root: Path) -> list[Record]:
    """Every finished utterance of a prepared folder (our layout)."""
    out = []
    for p in sorted((root / "items").glob("*.json")):
        r = json.loads(p.read_text(encoding="utf-8"))
        out.append(Record(r["id"], root, r["speaker"], r["phonemes"], r["frames"], r["subset"]))
    if not out:
        raise InputError(f"{root}: no finished utterances (items/*.json)")
    return out


def assign_validation(
    records: Sequence[Record], val_fraction: float, val_speakers: int, seed: int = 0
) -> list[Record]:
    """Hold out, reproducibly, ``val_speakers`` whole speakers (never all of them) and a
    ``val_fraction`` of the other speakers' utterances (at least one, at most 200)."""
    from dataclasses import replace

    rng = random.Random(seed)
    speakers = sorted({r.speaker for r in records})
    held = set(rng.sample(speakers, min(val_speakers, len(speakers) - 1)))
    rest = sorted(r.id for r in records if r.speaker not in held)
    n_val = 0 if len(rest) < 2 else min(200, max(1, round(val_fraction * len(rest))))
    val_ids = set(rng.sample(rest, n_val))
    out = []
    for r in records:
        if r.speaker in held:
            out.append(replace(r, subset="val_unseen_speaker"))
        elif r.id in val_ids:
            out.append(replace(r, subset="val_unseen_text"))
        else:
            out.append(replace(r, subset="train"))
    return out


def speaker_log_f0_stats(records: Sequence[Record]) -> dict[str, tuple[float, float]]:
    """Each speaker's log-F0 centre and spread (``log_f0_statistics``) over all its frames."""
    values: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in records:
        values[r.speaker].append(r.array("pitch"))
    out = {}
    for spk, vs in values.items():
        stats = log_f0_statistics(np.concatenate(vs))
        # A speaker with (almost) no voiced frames gets a neutral guess, never NaN.
        out[spk] = stats if stats is not None else (5.0, 0.2)
    return out


class TTSDataset(torch.utils.data.Dataset):
    """Records plus their arrays; the speaker's embedding is the utterance's own (SV2TTS)
    or the mean over the speaker's training utterances."""

    def __init__(
        self,
        records: Sequence[Record],
        symbol_table: dict[str, int],
        log_f0_stats: dict[str, tuple[float, float]],
        embedding: str = "utterance",
        speaker_embeddings: dict[str, np.ndarray] | None = None,
    ) -> None:
        if embedding not in ("utterance", "speaker"):
            raise InputError("embedding must be 'utterance' or 'speaker'")
        self.records = list(records)
        self.table = symbol_table
        self.stats = log_f0_stats
        self.embedding = embedding
        self.speaker_embeddings = speaker_embeddings or {}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        if self.embedding == "speaker":
            emb = self.speaker_embeddings[r.speaker]
        else:
            emb = r.array("embeds")
        f0 = r.array("pitch")
        return {
            "id": r.id,
            "ids": torch.tensor(frame_ids(list(r.phonemes), self.table)),
            "mel": torch.from_numpy(r.array("mels")),
            "f0": torch.from_numpy(f0),
            "embedding": torch.from_numpy(np.asarray(emb, dtype=np.float32)),
            "speaker_log_f0": torch.tensor(self.stats[r.speaker], dtype=torch.float32),
        }


def mean_speaker_embeddings(records: Sequence[Record]) -> dict[str, np.ndarray]:
    sums: dict[str, np.ndarray] = {}
    for r in records:
        e = r.array("embeds").astype(np.float64)
        sums[r.speaker] = sums.get(r.speaker, 0) + e
    return {k: (v / np.linalg.norm(v)).astype(np.float32) for k, v in sums.items()}


def collate(batch: list[dict]) -> tuple[list[str], Targets]:
    b = len(batch)
    n = max(len(x["ids"]) for x in batch)
    m = max(x["mel"].shape[1] for x in batch)
    ids = torch.zeros(b, n, dtype=torch.long)
    mel = torch.zeros(b, batch[0]["mel"].shape[0], m)
    log_f0 = torch.zeros(b, m)
    voiced = torch.zeros(b, m, dtype=torch.bool)
    for i, x in enumerate(batch):
        ids[i, : len(x["ids"])] = x["ids"]
        t = x["mel"].shape[1]
        mel[i, :, :t] = x["mel"]
        f0 = x["f0"][:t]
        voiced[i, : len(f0)] = f0 > 0
        log_f0[i, : len(f0)] = torch.where(f0 > 0, torch.log(f0.clamp(min=1e-3)), 0.0)
    targets = Targets(
        ids=ids,
        text_lens=torch.tensor([len(x["ids"]) for x in batch]),
        mel=mel,
        mel_lens=torch.tensor([x["mel"].shape[1] for x in batch]),
        log_f0=log_f0,
        voiced=voiced,
        embedding=torch.stack([x["embedding"] for x in batch]),
        speaker_log_f0=torch.stack([x["speaker_log_f0"] for x in batch]),
    )
    return [x["id"] for x in batch], targets


class BucketBatches:
    """Endless batches of similar lengths (less padding), reshuffled each epoch, with a
    reproducible order: epoch ``e`` uses seed ``seed + e``, so resuming mid-run continues
    the same sequence of batches."""

    def __init__(self, frames: Sequence[int], batch_size: int, seed: int = 0) -> None:
        if batch_size < 1:
            raise InputError("batch size must be positive")
        self.frames = list(frames)
        self.batch_size = min(batch_size, len(self.frames))
        self.seed = seed

    def epoch(self, e: int) -> list[list[int]]:
        rng = random.Random(self.seed + e)
        order = list(range(len(self.frames)))
        rng.shuffle(order)
        chunk = self.batch_size * 32
        batches = []
        for s in range(0, len(order), chunk):
            part = sorted(order[s : s + chunk], key=lambda i: self.frames[i])
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        rng.shuffle(batches)
        return batches

    def iterate(self, start_batch: int = 0) -> Iterator[list[int]]:
        """All batches from global batch number ``start_batch`` on."""
        per_epoch = len(self.epoch(0))
        e, k = divmod(start_batch, per_epoch)
        while True:
            batches = self.epoch(e)
            yield from batches[k:]
            e, k = e + 1, 0
