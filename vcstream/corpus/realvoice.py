"""Real human voices for measuring cloning: recordings of real people from Debian packages,
grouped by speaker, with per-speaker references and held-out "other recordings".

Where the recordings come from (all read in place; nothing is copied or written):

* ``festvox-ru``: one real male Russian reader (``msu_ru_nsh``), about 100 minutes of read
  sentences with exact transcripts (``etc/txt.done.data``). The long-enrolment case.
* ``ktuberling-data``: one speaker per language folder (``sounds/<lang>/``), single words and
  short phrases. The text is only known for English (the file name, less its scene prefix);
  in other folders the file name is the English key of a word spoken in that language. The
  four ``sr*`` folders are the same 10 s of audio (byte-identical files), too short to use.
* ``hedgewars-data``: one voice actor per voice pack (``Data/Sounds/voices/<pack>/``),
  exclamations and short phrases; the file name is the text, run together
  (``Comeonthen``). ``Robot`` is processed with a robot-voice effect.
* ``klettres-data``: one speaker per language (``<lang>/alpha`` letters and ``<lang>/syllab``
  syllables, names from ``<lang>/sounds.xml``).

Audio is decoded with PyAV (FFmpeg; installed with faster-whisper), down-mixed, resampled to
22050 Hz, trimmed of leading and trailing silence and level-normalised exactly as the
training corpus's recordings (``features.clean_audio``). A few Vorbis files use a feature
FFmpeg does not implement (most of ktuberling ``ru``, all of klettres ``cs/syllab``); they
are skipped and counted (``SpeakerSet.undecodable``), never guessed at.

The split (``split_of``): speakers in ``TEST_SPEAKERS`` are the **test** set, the figures
the project steers by (``vcstream bench --clone``): nothing may train on them or tune
against them. Every other speaker is **dev**: adaptation and zero-shot work may tune on it
(and training may use it). The test set: the long reader, four ktuberling and three
klettres speakers (men, women and children, several languages). All hedgewars packs are
dev: their voices are few actors playing characters (GE2E puts every English pack within
0.90-0.94 of the others, as close as a pack's own clips), so a pack in each split would
leak. Checked for the rest: no test speaker's held-out clips are closer than 0.88 to any
dev speaker's references (the same speaker's are 0.93-0.97).

References and held-out clips of one speaker (``build_speaker_set``): the speaker's clips
are put in a fixed pseudo-random order (seeded by the speaker's name). The first clips,
up to ``HELD_OUT_SECONDS`` of cleaned audio, are the held-out "other recordings" the output
is judged against. The clips after them form the references: the reference of L seconds
is the first L seconds of that sequence (its last clip cropped), so the 3 s reference is
the start of the 10 s one, as a performer who keeps talking. No held-out clip is ever part
of a reference. A length is offered only when the speaker has that much left after the
held-out clips.

Only recordings under the roots of these four packages are ever read (``check_in_sources``,
at every clip load): recordings kept elsewhere on a machine for independent evaluation
cannot slip into a benchmark or an adaptation run by a path or a link.
"""

from __future__ import annotations

import functools
import random
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vcstream.errors import AudioFileError, InputError, ModelMissingError, NoVoiceError

SAMPLE_RATE_HZ = 22050
REFERENCE_SECONDS = (3.0, 10.0, 30.0, 60.0)
HELD_OUT_SECONDS = 15.0

FESTVOX_RU = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
KTUBERLING = Path("/usr/share/ktuberling/sounds")
HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
KLETTRES = Path("/usr/share/klettres")
SOURCES = {
    "festvox-ru": (FESTVOX_RU, "festvox-ru"),
    "ktuberling": (KTUBERLING, "ktuberling-data"),
    "hedgewars": (HEDGEWARS, "hedgewars-data"),
    "klettres": (KLETTRES, "klettres-data"),
}

TEST_SPEAKERS = frozenset(
    {
        "festvox-ru/nsh",
        "ktuberling/en",
        "ktuberling/de",
        "ktuberling/uk",
        "ktuberling/el",
        "klettres/en_GB",
        "klettres/fr",
        "klettres/hu",
    }
)
# Copies of ktuberling/sr (byte-identical), and sr itself: 10 s in all.
_KTUBERLING_SKIP = frozenset({"sr", "sr@ijekavian", "sr@ijekavianlatin", "sr@latin"})
_HEDGEWARS_LANGUAGE = {
    "Default_es": "es",
    "Default_pl": "pl",
    "Default_ru": "ru",
    "Default_uk": "uk",
    "Russian": "ru",
    "Russian_pl": "pl",
}
_AUDIO_SUFFIXES = (".ogg", ".wav")


@dataclass(frozen=True)
class Clip:
    path: Path
    text: str | None  # what is said, where known
    text_exact: bool  # a transcript, not a file name or a word key


@dataclass(frozen=True)
class RealSpeaker:
    name: str  # "<source>/<folder>", e.g. "hedgewars/British"
    source: str
    language: str
    clips: tuple[Clip, ...]

    @property
    def split(self) -> str:
        return split_of(self.name)


@dataclass(frozen=True)
class Segment:
    """Cleaned 22050 Hz audio of one clip, or of its first part when ``cropped``."""

    clip: Clip
    audio: np.ndarray
    cropped: bool = False

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE_HZ


@dataclass(frozen=True)
class SpeakerSet:
    speaker: RealSpeaker
    held_out: list[Segment]
    references: dict[float, list[Segment]]  # length in s -> segments, nested
    undecodable: list[Path] = field(default_factory=list)

    @property
    def lengths(self) -> list[float]:
        return sorted(self.references)


def split_of(name: str) -> str:
    return "test" if name in TEST_SPEAKERS else "dev"


def check_in_sources(path: str | Path) -> Path:
    """``path`` resolved (links followed); ``InputError`` unless it lies under one of the
    ``SOURCES`` packages' roots."""
    p = Path(path).resolve()
    for root, _ in SOURCES.values():
        root = root.resolve()
        if p == root or root in p.parents:
            return p
    packages = ", ".join(package for _, package in SOURCES.values())
    raise InputError(
        f"{p}: not a recording of the real-voice benchmark's packages ({packages}); "
        "nothing else is read"
    )


# --- finding speakers ---------------------------------------------------------------------


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _AUDIO_SUFFIXES)


def _festvox_ru() -> list[RealSpeaker]:
    listing = FESTVOX_RU / "etc" / "txt.done.data"
    if not listing.is_file():
        return []
    clips = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        m = re.match(r'\(\s*(\S+)\s+"(.*)"\s*\)\s*$', line)
        wav = FESTVOX_RU / "wav" / f"{m.group(1)}.wav" if m else None
        if wav is not None and wav.is_file():
            # "+" marks the stressed vowel in the voice's own notation
            clips.append(Clip(wav, m.group(2).replace("+", ""), True))
    return [RealSpeaker("festvox-ru/nsh", "festvox-ru", "ru", tuple(clips))] if clips else []


def _ktuberling() -> list[RealSpeaker]:
    if not KTUBERLING.is_dir():
        return []
    out = []
    for folder in sorted(p for p in KTUBERLING.iterdir() if p.is_dir()):
        if folder.name in _KTUBERLING_SKIP:
            continue
        english = folder.name == "en"
        clips = tuple(
            # "egypt_camel" -> "camel": the scene prefix is not spoken
            Clip(p, p.stem.split("_")[-1].replace("-", " ") if english else None, False)
            for p in _audio_files(folder)
        )
        if clips:
            out.append(RealSpeaker(f"ktuberling/{folder.name}", "ktuberling", folder.name, clips))
    return out


def _hedgewars() -> list[RealSpeaker]:
    if not HEDGEWARS.is_dir():
        return []
    out = []
    for folder in sorted(p for p in HEDGEWARS.iterdir() if p.is_dir()):
        clips = tuple(
            Clip(p, re.sub(r"\d+$", "", p.stem).lower() or None, False)
            for p in _audio_files(folder)
        )
        lang = _HEDGEWARS_LANGUAGE.get(folder.name, "en")
        if clips:
            out.append(RealSpeaker(f"hedgewars/{folder.name}", "hedgewars", lang, clips))
    return out


def _klettres_names(lang_dir: Path) -> dict[str, str]:
    """File name -> spoken letter or syllable, from the language's sounds.xml."""
    xml = lang_dir / "sounds.xml"
    if not xml.is_file():
        return {}
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError:
        return {}
    return {
        Path(s.get("file", "")).name: s.get("name", "")
        for s in root.iter("sound")
        if s.get("file") and s.get("name")
    }


def _klettres() -> list[RealSpeaker]:
    if not KLETTRES.is_dir():
        return []
    out = []
    for lang_dir in sorted(p for p in KLETTRES.iterdir() if p.is_dir()):
        names = _klettres_names(lang_dir)
        files = [
            p
            for sub in ("alpha", "syllab")
            if (lang_dir / sub).is_dir()
            for p in _audio_files(lang_dir / sub)
        ]
        clips = tuple(Clip(p, names.get(p.name), False) for p in files)
        if clips:
            out.append(RealSpeaker(f"klettres/{lang_dir.name}", "klettres", lang_dir.name, clips))
    return out


_FINDERS = {
    "festvox-ru": _festvox_ru,
    "ktuberling": _ktuberling,
    "hedgewars": _hedgewars,
    "klettres": _klettres,
}


@functools.lru_cache(maxsize=8)
def _found(source: str) -> tuple[RealSpeaker, ...]:
    # Installed packages do not change while we run; listing them costs seconds.
    return tuple(_FINDERS[source]())


def find_speakers(
    split: str | None = None, sources: Iterable[str] | None = None
) -> list[RealSpeaker]:
    """Every speaker found in the installed packages (``split``: "dev", "test" or None for
    both), sorted by name. ``ModelMissingError`` naming the packages when none is installed."""
    if split not in (None, "dev", "test"):
        raise InputError(f"split must be 'dev' or 'test', got {split!r}")
    wanted = list(SOURCES) if sources is None else list(sources)
    unknown = [s for s in wanted if s not in SOURCES]
    if unknown:
        raise InputError(f"unknown real-voice source(s) {unknown}: known {sorted(SOURCES)}")
    speakers = [s for name in wanted for s in _found(name)]
    if not speakers:
        packages = " ".join(SOURCES[s][1] for s in wanted)
        raise ModelMissingError(
            f"no real-voice recordings found: install the Debian packages {packages} "
            f"(`apt-get install {packages}`)"
        )
    speakers.sort(key=lambda s: s.name)
    return [s for s in speakers if split is None or s.split == split]


def get_speakers(names: Sequence[str]) -> list[RealSpeaker]:
    """The named speakers, in the given order; ``InputError`` naming any unknown one."""
    found = {s.name: s for s in find_speakers()}
    missing = [n for n in names if n not in found]
    if missing:
        raise InputError(f"unknown real-voice speaker(s) {missing}; known: {sorted(found)}")
    return [found[n] for n in names]


# --- decoding -----------------------------------------------------------------------------


def decode(path: str | Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Any file FFmpeg reads (Ogg Vorbis, WAV, ...) as float32 mono at ``sample_rate_hz``."""
    try:
        import av
    except ImportError as err:
        raise ModelMissingError(
            "PyAV is not installed: `pip install av==18.1.0` (comes with faster-whisper, "
            "part of `make install-test`)"
        ) from err
    p = Path(path)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate_hz)
    parts = []
    try:
        with av.open(str(p)) as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
    except (av.FFmpegError, IndexError, OSError) as err:
        raise AudioFileError(f"{p}: cannot decode ({err})") from err
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if audio.size == 0:
        raise AudioFileError(f"{p}: holds no audio")
    return np.clip(audio.astype(np.float32), -1.0, 1.0)


def load_clip(clip: Clip) -> np.ndarray:
    """Decoded, silence-trimmed, level-normalised 22050 Hz audio of a clip, as the training
    corpus prepares its recordings. ``AudioFileError`` / ``NoVoiceError`` otherwise."""
    from vcstream.corpus.features import clean_audio

    return clean_audio(decode(check_in_sources(clip.path)), SAMPLE_RATE_HZ)


# --- references and held-out clips --------------------------------------------------------


def clip_order(speaker: RealSpeaker, seed: int = 0) -> list[Clip]:
    """The speaker's clips in the fixed order references and held-out clips are taken in."""
    clips = sorted(speaker.clips, key=lambda c: str(c.path))
    random.Random(zlib.crc32(f"{speaker.name}/{seed}".encode())).shuffle(clips)
    return clips


def build_speaker_set(
    speaker: RealSpeaker,
    lengths: Sequence[float] = REFERENCE_SECONDS,
    *,
    held_out_s: float = HELD_OUT_SECONDS,
    seed: int = 0,
    min_clip_s: float = 0.2,
) -> SpeakerSet:
    """Held-out clips and nested references of ``lengths`` seconds (module docstring).

    Clips are decoded only as far as needed (the long reader is not decoded whole).
    ``NoVoiceError`` when the speaker has not even ``held_out_s`` plus the shortest length.
    """
    if not lengths or min(lengths) <= 0:
        raise InputError(f"reference lengths must be positive, got {list(lengths)}")
    if held_out_s <= 0:
        raise InputError(f"held-out seconds must be positive, got {held_out_s}")
    wanted = sorted({float(x) for x in lengths})
    held: list[Segment] = []
    pool: list[Segment] = []
    bad: list[Path] = []
    held_total = pool_total = 0.0
    for clip in clip_order(speaker, seed):
        if pool_total >= wanted[-1]:
            break
        try:
            audio = load_clip(clip)
        except (AudioFileError, NoVoiceError):
            bad.append(clip.path)
            continue
        if len(audio) < min_clip_s * SAMPLE_RATE_HZ:
            continue  # a click or a breath, not speech
        seg = Segment(clip, audio)
        if held_total < held_out_s:
            held.append(seg)
            held_total += seg.seconds
        else:
            pool.append(seg)
            pool_total += seg.seconds
    if held_total < held_out_s or pool_total < wanted[0]:
        raise NoVoiceError(
            f"{speaker.name}: {held_total + pool_total:.1f} s of decodable audio, needs "
            f"{held_out_s:g} s held out plus {wanted[0]:g} s of reference"
        )
    references = {length: _first_seconds(pool, length) for length in wanted if pool_total >= length}
    return SpeakerSet(speaker, held, references, bad)


def _first_seconds(pool: Sequence[Segment], seconds: float) -> list[Segment]:
    need = round(seconds * SAMPLE_RATE_HZ)
    out: list[Segment] = []
    for seg in pool:
        if need <= 0:
            break
        if len(seg.audio) <= need:
            out.append(seg)
            need -= len(seg.audio)
        else:
            out.append(Segment(seg.clip, seg.audio[:need], cropped=True))
            need = 0
    return out


def join_segments(
    segments: Sequence[Segment], min_seconds: float = 2.5, gap_seconds: float = 0.1
) -> list[np.ndarray]:
    """Consecutive segments joined (with short silences) into utterances of at least
    ``min_seconds`` where there is enough audio: single words are too short for a stable
    GE2E embedding. The remainder joins the last utterance."""
    gap = np.zeros(round(gap_seconds * SAMPLE_RATE_HZ), np.float32)
    out: list[list[np.ndarray]] = []
    current: list[np.ndarray] = []
    length = 0
    for seg in segments:
        current += [seg.audio, gap]
        length += len(seg.audio)
        if length >= min_seconds * SAMPLE_RATE_HZ:
            out.append(current)
            current, length = [], 0
    if current:
        if out:
            out[-1] += current
        else:
            out.append(current)
    return [np.concatenate(parts[:-1]) for parts in out]
