"""Text from clients made safe to keep, echo and encode.

Three jobs, one per function:

* ``first_unencodable``: where a string holds a code point that must not enter shared state:
  a lone UTF-16 surrogate (Python's ``json`` accepts ``"\\ud800"`` and ZeroMQ bytes decode
  with ``surrogatepass``, but no UTF-8 encoder takes it back out) or a Unicode
  non-character (U+FDD0..U+FDEF and the last two code points of every plane), which is
  reserved for a program's internal use and never interchanged. The network edge refuses
  such messages (``bad_text``).
* ``strip_controls``: terminal escape sequences (CSI ``ESC [``, OSC ``ESC ]``, the other
  ``ESC`` sequences and their 8-bit C1 forms) and control characters removed, so that text
  echoed in events, history, logs, the page and ``vcstream top`` cannot move a cursor, recolour
  a terminal or retitle a window. Line breaks survive (the sentence splitter reads blank lines
  as paragraph ends); tabs become spaces; bidirectional overrides and isolates go too, since
  they reorder what a viewer sees.
* ``one_line``: ``strip_controls`` with line breaks as spaces, for display.

``repair`` replaces surrogates with U+FFFD in any JSON-able value: the outgoing encoders'
last resort, so one bad string can never stop a message from being sent.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"

_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    f"{chr(plane << 16 | 0xFFFE)}{chr(plane << 16 | 0xFFFF)}" for plane in range(17)
)
_UNENCODABLE = re.compile(f"[\ud800-\udfff{_NONCHARACTERS}]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# ESC (or its C1 equivalent) sequences, most specific first:
#   CSI: ESC [ / 0x9b, parameter bytes 0x30-0x3f, intermediates 0x20-0x2f, one final byte;
#   OSC, DCS, SOS, PM, APC: ESC ] P X ^ _ / their C1 forms, up to BEL or ST (ESC \ or 0x9c),
#     or to the end of the text when unterminated;
#   any other: ESC, intermediates, one final byte.
_ESCAPES = re.compile(
    r"(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# C0 controls but tab and line feed, DEL, C1 controls, bidi embeddings/overrides/isolates.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\n\u2028\u2029]+")


def first_unencodable(text: str) -> int | None:
    """Index of the first lone surrogate or non-character in ``text``, or None."""
    if text.isascii():
        return None
    m = _UNENCODABLE.search(text)
    return None if m is None else m.start()


def describe(char: str) -> str:
    cp = ord(char)
    kind = "a lone surrogate" if 0xD800 <= cp <= 0xDFFF else "a non-character"
    return f"U+{cp:04X} ({kind})"


def strip_controls(text: str) -> str:
    """``text`` without escape sequences and control characters; line breaks kept."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    if text.isprintable():
        return text
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def one_line(text: str) -> str:
    """``strip_controls`` with every line break a space: what views and logs show."""
    return _LINE_BREAKS.sub(" ", strip_controls(text))


def has_surrogates(text: str) -> bool:
    return not text.isascii() and _SURROGATE.search(text) is not None


def repair(obj: Any, depth: int = 0) -> Any:
    """A copy of a JSON-able value whose strings (keys too) hold no surrogates."""
    if isinstance(obj, str):
        return _SURROGATE.sub(REPLACEMENT, obj) if has_surrogates(obj) else obj
    if depth > 64:
        return None  # deeper than anything we publish: a cycle or a bug, not data
    if isinstance(obj, dict):
        return {repair(str(k)): repair(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [repair(v, depth + 1) for v in obj]
    return obj


def checked(value: str | None, what: str) -> str | None:
    """``value`` with controls stripped; ``BadTextError`` if it holds an unencodable code
    point (for callers inside the process; the network edge refuses these earlier)."""
    if value is None:
        return None
    from vcstream.errors import BadTextError

    i = first_unencodable(value)
    if i is not None:
        raise BadTextError(f"{what} holds {describe(value[i])} at character {i}")
    return strip_controls(value)
