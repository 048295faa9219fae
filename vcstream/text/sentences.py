"""Sentence splitting, and clause splitting of long sentences.

Long text is spoken sentence by sentence so the first sentence sounds while the rest is
still being synthesised. A full stop ends a sentence unless it belongs to an abbreviation
("Dr.", "e.g."), an initial ("J. Smith"), a dotted acronym ("U.S.") or a number ("3.14");
"!" and "?" always end one, and so does a blank line. A sentence longer than the limit is
cut at clause boundaries (",", ";", ":") and, failing those, between words, so that no
piece keeps the listener waiting for its synthesis.

Works on text cleaned by ``clean_unicode`` (straight quotes, "..." for ellipses).
"""

from __future__ import annotations

import re

from vcstream.text.normalize import (
    FINAL_ABBREVIATIONS,
    INLINE_ABBREVIATIONS,
    NUMBER_ABBREVIATIONS,
    TITLE_ABBREVIATIONS,
    is_title,
    place_or_title,
)

# Terminal punctuation, closing quotes/brackets, then whitespace or the end of the text.
_TERMINATOR = re.compile(r"""([.!?]+)(["')\]]*)(?=\s|$)""")
_PARAGRAPH = re.compile(r"\n\s*\n")
_OPENERS = "\"'(["
_CLAUSE_END = re.compile(r"(?<=[,;:])\s+")
_WHITESPACE = re.compile(r"\s+")


def _is_boundary(text: str, m: re.Match[str]) -> bool:
    """Whether the terminator matched at ``m`` ends a sentence."""
    rest = text[m.end() :]
    if not rest.strip():
        return True
    punct = m.group(1)
    if "!" in punct or "?" in punct:
        return True
    next_char = rest.lstrip().lstrip(_OPENERS)[:1]
    head = text[: m.start()]
    token = head.rsplit(None, 1)[-1] if head.strip() else ""
    core = token.lstrip(_OPENERS)
    word = core.lower()
    if punct == "." and core:
        if word in ("st", "dr"):
            kind = place_or_title(head[: len(head) - len(token)], rest)
            return kind == "place" and not next_char.islower()
        if word in TITLE_ABBREVIATIONS and is_title(head[: len(head) - len(token)], rest):
            return False
        if word in INLINE_ABBREVIATIONS:
            return False
        if word in NUMBER_ABBREVIATIONS and next_char.isdigit():
            return False
        if word in FINAL_ABBREVIATIONS:
            return not next_char.islower()
        if len(core) == 1 and core.isupper():
            return False  # an initial: "J. R. R. Tolkien"
        if "." in core and core.replace(".", "").isalpha():
            return False  # a dotted acronym: "U.S.", "Ph.D."
    # "Well... maybe" trails off inside one sentence.
    return not (len(punct) > 1 and next_char.islower())


def split_sentences(text: str) -> list[str]:
    """Cleaned text to sentences, each stripped and on one line."""
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        start = 0
        for m in _TERMINATOR.finditer(paragraph):
            if _is_boundary(paragraph, m):
                sentences.append(paragraph[start : m.end()])
                start = m.end()
        sentences.append(paragraph[start:])
    out = (_WHITESPACE.sub(" ", s).strip() for s in sentences)
    return [s for s in out if s]


def _pack(parts: list[str], max_chars: int) -> list[str]:
    """Greedily join consecutive parts with spaces while they fit in ``max_chars``."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        if current and len(current) + 1 + len(part) > max_chars:
            pieces.append(current)
            current = part
        else:
            current = f"{current} {part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def _split_words(text: str, max_chars: int) -> list[str]:
    words: list[str] = []
    for word in text.split(" "):
        # A single "word" beyond the limit (a URL, a run of letters) is cut hard.
        words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return _pack(words, max_chars)


def split_long(sentence: str, max_chars: int) -> list[str]:
    """Cut a sentence longer than ``max_chars`` at clause boundaries, else between words.

    Clauses are packed greedily, so pieces are as long as the limit allows and each ends
    at a comma, semicolon or colon where the text has one.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    for clause_group in _pack(_CLAUSE_END.split(sentence), max_chars):
        if len(clause_group) <= max_chars:
            pieces.append(clause_group)
        else:
            pieces.extend(_split_words(clause_group, max_chars))
    return pieces


def split_text(text: str, max_sentence_chars: int) -> list[str]:
    """Cleaned text to the pieces to synthesise one at a time: sentences, long ones cut."""
    return [
        piece
        for sentence in split_sentences(text)
        for piece in split_long(sentence, max_sentence_chars)
    ]
