"""The phoneme inventory: espeak-ng IPA symbols and their fixed ids.

The table is Piper's ``phoneme_id_map`` of the joe voice (``en_US-joe-medium.onnx.json``),
frozen into ``inventory.json`` beside this module so that the trained synthesiser keeps the
same ids even where the Piper wheel is absent. One symbol is one Unicode code point after
NFD decomposition (stress marks, length marks and combining diacritics are symbols of their
own), exactly as Piper splits espeak-ng output. A space separates words; punctuation marks
are symbols too (they shape prosody).

Id sequences follow Piper: ``BOS, PAD, p1, PAD, p2, PAD, ..., pn, PAD, EOS``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vcstream.errors import InputError, UnknownPhonemesError

INVENTORY_FILE = Path(__file__).with_name("inventory.json")

PAD = "_"
BOS = "^"
EOS = "$"
RESERVED = frozenset({PAD, BOS, EOS})  # framing symbols; never valid in phoneme input

WORD_SEPARATOR = " "
# Symbols that carry no sound of their own: a sequence made only of these says nothing.
SILENT_SYMBOLS = frozenset(" !'(),-.:;?\"ˈˌːˑ")
SENTENCE_END_SYMBOLS = frozenset(".!?")
CLAUSE_END_SYMBOLS = frozenset(",;:")

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Inventory:
    """The id table: ``symbols[i]`` is the symbol with id ``i``."""

    symbols: tuple[str, ...]
    num_ids: int  # size of the model's symbol embedding table (>= len(symbols))
    espeak_voice: str
    source: str

    def __post_init__(self) -> None:
        missing = RESERVED.difference(self.symbols)
        if missing:
            raise ValueError(f"phoneme inventory lacks framing symbols {sorted(missing)}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("phoneme inventory has duplicate symbols")
        if self.num_ids < len(self.symbols):
            raise ValueError("phoneme inventory has more symbols than ids")

    @property
    def ids(self) -> dict[str, int]:
        return _id_table(self.symbols)

    def to_json(self) -> str:
        data = {
            "source": self.source,
            "espeak_voice": self.espeak_voice,
            "pad": PAD,
            "bos": BOS,
            "eos": EOS,
            "num_ids": self.num_ids,
            "symbols": list(self.symbols),
        }
        return json.dumps(data, ensure_ascii=False, indent=1) + "\n"


@cache
def _id_table(symbols: tuple[str, ...]) -> dict[str, int]:
    return {s: i for i, s in enumerate(symbols)}


def inventory_from_piper_config(config_path: Path, source: str = "") -> Inventory:
    """Build the inventory from a Piper voice config (``*.onnx.json``).

    Only single-id symbols with contiguous ids starting at 0 are accepted, so that the
    frozen table is a plain list; a voice outside that shape is rejected, not guessed at.
    """
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    if config.get("phoneme_type", "espeak") != "espeak":
        raise ValueError(f"{config_path}: phoneme_type is not espeak")
    id_map: dict[str, list[int]] = config["phoneme_id_map"]
    by_id: dict[int, str] = {}
    for symbol, ids in id_map.items():
        if len(ids) != 1:
            raise ValueError(f"{config_path}: symbol {symbol!r} maps to {len(ids)} ids")
        if ids[0] in by_id:
            raise ValueError(f"{config_path}: id {ids[0]} is used twice")
        by_id[ids[0]] = symbol
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError(f"{config_path}: phoneme ids are not contiguous from 0")
    return Inventory(
        symbols=tuple(by_id[i] for i in range(len(by_id))),
        num_ids=int(config["num_symbols"]),
        espeak_voice=str(config["espeak"]["voice"]),
        source=source or f"Piper voice config {Path(config_path).name}: phoneme_id_map",
    )


def write_inventory(
    config_path: Path, out_path: Path = INVENTORY_FILE, source: str = ""
) -> Inventory:
    """Freeze a Piper voice's id table into ``inventory.json`` (run once, then commit)."""
    inventory = inventory_from_piper_config(config_path, source)
    Path(out_path).write_text(inventory.to_json(), encoding="utf-8")
    load_inventory.cache_clear()
    return inventory


@cache
def load_inventory(path: Path = INVENTORY_FILE) -> Inventory:
    """The committed inventory (cached)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if (data["pad"], data["bos"], data["eos"]) != (PAD, BOS, EOS):
        raise ValueError(f"{path}: framing symbols differ from {PAD!r}, {BOS!r}, {EOS!r}")
    return Inventory(
        symbols=tuple(data["symbols"]),
        num_ids=int(data["num_ids"]),
        espeak_voice=str(data["espeak_voice"]),
        source=str(data["source"]),
    )


def input_symbols() -> frozenset[str]:
    """Symbols accepted in phoneme input: the inventory without the framing symbols."""
    return frozenset(load_inventory().symbols) - RESERVED


def unknown_symbols(phonemes: Sequence[str]) -> list[str]:
    """Symbols outside the inventory (framing symbols count as unknown), first-seen order."""
    allowed = input_symbols()
    return list(dict.fromkeys(p for p in phonemes if p not in allowed))


def parse_phonemes(s: str) -> list[str]:
    """Explicit phoneme input (espeak-ng IPA, e.g. ``"həlˈoʊ wˈɜːld."``) to symbols.

    The string is NFD-decomposed and split into code points; any run of whitespace is one
    word separator. Raises ``InputError`` for empty input and ``UnknownPhonemesError``
    listing every symbol outside the inventory.
    """
    if not isinstance(s, str):
        raise InputError("phoneme input must be a string")
    text = _WHITESPACE.sub(WORD_SEPARATOR, unicodedata.normalize("NFD", s)).strip()
    if not text:
        raise InputError("phoneme input is empty: nothing to speak")
    symbols = list(text)
    unknown = unknown_symbols(symbols)
    if unknown:
        raise UnknownPhonemesError(unknown)
    return symbols


def is_speakable(phonemes: Sequence[str]) -> bool:
    """True when the sequence holds at least one sounding symbol (not only punctuation)."""
    return any(p not in SILENT_SYMBOLS for p in phonemes)


def phonemes_to_ids(phonemes: Sequence[str]) -> list[int]:
    """Symbols to model ids with Piper's framing (BOS, PAD after each symbol, EOS).

    Unknown symbols raise ``UnknownPhonemesError``; nothing is dropped silently.
    """
    unknown = unknown_symbols(phonemes)
    if unknown:
        raise UnknownPhonemesError(unknown)
    table = load_inventory().ids
    pad = table[PAD]
    ids = [table[BOS], pad]
    for p in phonemes:
        ids.append(table[p])
        ids.append(pad)
    ids.append(table[EOS])
    return ids
