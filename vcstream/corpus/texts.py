"""Sentences to speak: Debian's ``fortunes`` collections, filtered to clean English.

The fortunes are redistributable (BSD-licensed collection, Debian package ``fortunes``);
the corpus built from them is never committed, only models trained on it. Any plain text
file with one sentence per line can replace them (``--texts FILE``).

The filter is strict on purpose: each TTS engine expands numbers, abbreviations and
acronyms its own way, while our phonemes come from espeak-ng; a sentence where the two
could disagree would teach the aligner a wrong pairing. So only plain words and light
punctuation pass.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from vcstream.errors import InputError, ModelMissingError

FORTUNES_DIR = Path("/usr/share/games/fortunes")

MIN_WORDS = 3
MAX_WORDS = 24
MAX_CHARS = 160

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "eg", "ie", "prof", "gen",
    "col", "capt", "lt", "sgt", "rev", "gov", "sen", "rep", "inc", "ltd", "co", "corp",
    "mt", "ft", "no", "vol", "fig", "ed", "al", "ave", "dept", "est", "approx",
}  # fmt: skip
_ALLOWED = re.compile(r"^[A-Za-z ,.!?';-]+$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*(?:-[A-Za-z]+)*")


def fortune_entries(path: Path) -> Iterator[str]:
    """The entries of one fortune file (separated by lines holding only ``%``)."""
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip() == "%":
            if lines:
                yield "\n".join(lines)
            lines = []
        else:
            lines.append(line)
    if lines:
        yield "\n".join(lines)


def _strip_attribution(entry: str) -> str:
    # Attributions ("-- Author") sit on their own indented line after the quote.
    kept = []
    for line in entry.splitlines():
        if re.match(r"^\s*--", line):
            break
        kept.append(line)
    return " ".join(kept)


def clean_sentence(sentence: str) -> str | None:
    """A normalised, speakable sentence, or ``None`` when it fails the filter."""
    s = sentence.replace("\u2019", "'").replace("``", "").replace("''", "").replace('"', "")
    s = s.replace(" -- ", ", ").replace("--", ", ")
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,.!?;])", r"\1", s)
    if not s or len(s) > MAX_CHARS or not _ALLOWED.match(s):
        return None
    if not s[0].isupper() or s[-1] not in ".!?":
        return None
    body = s[:-1]
    if any(ch in body for ch in ".!?"):  # abbreviations, ellipses, run-ons
        return None
    if re.search(r"[,;'-]{2,}|^'|\s'|'\s|'$|-\s|\s-|,[^ ]|;[^ ]", s):
        return None
    words = _WORD.findall(s)
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    if len(" ".join(words)) < len(re.sub(r"[^A-Za-z' -]", "", s)) - 1:
        return None  # stray apostrophes or hyphens outside words
    for w in words:
        if sum(c.isupper() for c in w) > 1:  # acronyms are spelled differently per engine
            return None
        if len(w) > 1 and w.isupper() and w != "I":
            return None
        if not re.search(r"[aeiouyAEIOUY]", w):  # "hmm", "Pssst", "X": engine-dependent
            return None
    if words[-1].lower() in _ABBREVIATIONS:
        return None
    return s


def split_sentences(text: str) -> list[str]:
    return [p for p in _SENTENCE_END.split(re.sub(r"\s+", " ", text).strip()) if p]


def fortune_sentences(folder: Path = FORTUNES_DIR) -> list[str]:
    """All clean, distinct sentences of the installed fortune files, in a stable order."""
    if not folder.is_dir():
        raise ModelMissingError(
            f"no fortune files at {folder}: install the Debian package with "
            "`apt-get install fortunes`, or pass --texts FILE"
        )
    files = sorted(p for p in folder.iterdir() if p.is_file() and "." not in p.name)
    if not files:
        raise ModelMissingError(f"{folder} holds no fortune files: `apt-get install fortunes`")
    raw = (
        s for p in files for e in fortune_entries(p) for s in split_sentences(_strip_attribution(e))
    )
    return unique_clean(raw)


def unique_clean(sentences: Iterable[str]) -> list[str]:
    """Filtered sentences, first occurrence kept, duplicates (ignoring case/punctuation) dropped."""
    seen: set[str] = set()
    out = []
    for raw in sentences:
        s = clean_sentence(raw)
        if s is None:
            continue
        key = " ".join(_WORD.findall(s.lower()))
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def file_sentences(path: Path) -> list[str]:
    """Sentences from a text file, one per line (blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise InputError(f"cannot read sentence file {path}: {err.strerror}") from err
    return unique_clean(ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))


def choose(sentences: list[str], n: int, seed: int) -> list[str]:
    """``n`` sentences drawn without replacement, reproducibly."""
    if n > len(sentences):
        raise InputError(f"asked for {n} sentences but only {len(sentences)} pass the filter")
    rng = random.Random(seed)
    return rng.sample(sentences, n)
