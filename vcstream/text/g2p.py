"""Grapheme to phoneme: normalised English to espeak-ng IPA symbols of our inventory.

espeak-ng comes from the piper-tts wheel (its bundled library and ``espeak-ng-data``), so
no system espeak is needed. Output matches Piper's own phonemisation of the same text
(what the joe voice was trained on), except that clauses espeak-ng ends without a
punctuation mark (after "...", for instance) keep a word space between them where Piper
runs the words together.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from dataclasses import dataclass

from vcstream.errors import InputError, ModelMissingError
from vcstream.text.normalize import clean_unicode, normalize_text
from vcstream.text.phonemes import (
    WORD_SEPARATOR,
    input_symbols,
    is_speakable,
    load_inventory,
    parse_phonemes,
)
from vcstream.text.sentences import split_long, split_text

_LOG = logging.getLogger(__name__)

# espeak-ng marks words of another language with "(fr)" ... "(en)"; the marks are not sound.
_LANGUAGE_FLAG = re.compile(r"\([^)]*\)")
_PHONEME_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")

# The bridge wraps one global espeak-ng instance: every call goes through this lock.
_ESPEAK_LOCK = threading.Lock()
_ESPEAK_READY = False

DEFAULT_MAX_SENTENCE_CHARS = 160


def _espeak_bridge():  # type: ignore[no-untyped-def]
    """The piper-tts espeak-ng bridge, initialised once with the wheel's own data."""
    global _ESPEAK_READY
    try:
        from piper import espeakbridge
        from piper.phonemize_espeak import EspeakPhonemizer
    except ImportError as err:
        raise ModelMissingError(
            f"piper-tts (which bundles espeak-ng) is not importable ({err}): "
            "run `pip install piper-tts==1.8.0`"
        ) from err
    if not _ESPEAK_READY:
        EspeakPhonemizer()  # initialises espeak-ng with the data folder inside the wheel
        _ESPEAK_READY = True
    return espeakbridge


class EspeakG2P:
    """espeak-ng text to phoneme symbols (one code point each, NFD), thread-safe."""

    def __init__(self, voice: str | None = None) -> None:
        self.voice = voice or load_inventory().espeak_voice
        self._allowed = input_symbols()
        with _ESPEAK_LOCK:
            bridge = _espeak_bridge()
            bridge.set_voice(self.voice)
        self._bridge = bridge

    def phonemize(self, text: str) -> list[str]:
        """Text (already normalised) to phoneme symbols, clause punctuation included.

        Symbols outside the inventory are dropped with a warning: the synthesiser has no
        id for them, and the rest of the sentence can still be spoken.
        """
        with _ESPEAK_LOCK:
            self._bridge.set_voice(self.voice)
            clauses = self._bridge.get_phonemes(text)
        out = ""
        for phonemes, terminator, _end in clauses:
            clause = _LANGUAGE_FLAG.sub("", phonemes) + terminator
            if not clause.strip():
                continue
            out = f"{out}{WORD_SEPARATOR}{clause}" if out else clause
        symbols = list(unicodedata.normalize("NFD", out).strip())
        dropped = sorted({s for s in symbols if s not in self._allowed})
        if dropped:
            _LOG.warning("espeak-ng produced symbols outside the inventory, dropped: %s", dropped)
            symbols = [s for s in symbols if s in self._allowed]
        return symbols


@dataclass(frozen=True)
class Sentence:
    """One unit of synthesis: the text as written (or the phoneme string given) and its
    phoneme symbols."""

    text: str
    phonemes: list[str]


def _check_length(kind: str, s: object, max_chars: int) -> str:
    if not isinstance(s, str):
        raise InputError(f"{kind} must be a string, not {type(s).__name__}")
    if not s.strip():
        raise InputError(f"{kind} is empty: nothing to speak")
    if len(s) > max_chars:
        raise InputError(f"{kind} is {len(s)} characters long; the limit is {max_chars}")
    return s


class TextFrontEnd:
    """Text (or explicit phonemes) to sentences of phoneme symbols, ready to synthesise.

    Text is cleaned, split into sentences (long ones at clause boundaries, so that no piece
    holds up the first audio), each piece normalised (numbers, abbreviations, symbols) and
    converted to espeak-ng IPA.
    """

    def __init__(self, max_sentence_chars: int = DEFAULT_MAX_SENTENCE_CHARS) -> None:
        if max_sentence_chars < 1:
            raise ValueError("max_sentence_chars must be positive")
        self.max_sentence_chars = max_sentence_chars
        self._g2p = EspeakG2P()

    def prepare(self, text: str, max_chars: int) -> list[Sentence]:
        """Text to sentences. Raises ``InputError`` for empty text, text over ``max_chars``
        characters, or text with nothing speakable in it."""
        _check_length("text", text, max_chars)
        sentences = []
        for piece in split_text(clean_unicode(text), self.max_sentence_chars):
            spoken = normalize_text(piece)
            if not any(c.isalnum() for c in spoken):
                continue  # bare punctuation: espeak-ng would read the marks out by name
            phonemes = self._g2p.phonemize(spoken)
            if is_speakable(phonemes):
                sentences.append(Sentence(text=piece, phonemes=phonemes))
        if not sentences:
            raise InputError("text has nothing speakable in it (only punctuation or symbols)")
        return sentences

    def prepare_phonemes(self, phonemes: str, max_chars: int) -> list[Sentence]:
        """Explicit espeak-ng IPA to sentences, split after ".", "!" and "?" (and long ones
        at "," ";" ":"). Raises ``UnknownPhonemesError`` listing symbols outside the
        inventory, ``InputError`` for empty or oversized input."""
        _check_length("phoneme input", phonemes, max_chars)
        parse_phonemes(phonemes)  # validates the whole input, reporting every unknown symbol
        sentences = []
        for sentence in _PHONEME_SENTENCE_END.split(phonemes.strip()):
            for piece in split_long(sentence, self.max_sentence_chars):
                if not piece.strip():
                    continue
                symbols = parse_phonemes(piece)
                if is_speakable(symbols):
                    sentences.append(Sentence(text=piece, phonemes=symbols))
        if not sentences:
            raise InputError("phoneme input has nothing speakable in it (only punctuation)")
        return sentences
