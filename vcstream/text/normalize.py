"""Text normalisation: written English to the words a reader would say.

espeak-ng reads digits and symbols itself, but in ways a listener does not expect
("1990s" as "nineteen hundred ninety z", "$12.50" digit by digit, "Dr." as a
sentence end). We spell out numbers, money, times, percentages, temperatures, common
abbreviations and symbols first, and clean Unicode so that espeak-ng sees plain text.

``clean_unicode`` keeps line breaks (the sentence splitter uses blank lines as paragraph
ends); ``normalize_text`` turns one sentence into a single line of words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# ---------------------------------------------------------------------------- number words

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion")
_MAX_CARDINAL = 10 ** (3 * len(_SCALES)) - 1  # larger numbers are read digit by digit
_ORDINAL_WORDS = {
    "zero": "zeroth",
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest:
        words.append(_ONES[rest])
    return words


def cardinal(n: int) -> str:
    """``1234`` -> ``"one thousand two hundred thirty four"`` (American: no "and")."""
    if n < 0:
        return "minus " + cardinal(-n)
    if n == 0:
        return "zero"
    if n > _MAX_CARDINAL:
        return digits(str(n))
    groups: list[str] = []
    scale = 0
    while n:
        n, group = divmod(n, 1000)
        if group:
            words = _below_thousand(group)
            if _SCALES[scale]:
                words.append(_SCALES[scale])
            groups.append(" ".join(words))
        scale += 1
    return " ".join(reversed(groups))


def ordinal(n: int) -> str:
    """``21`` -> ``"twenty first"``."""
    words = cardinal(n).split(" ")
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def year(n: int) -> str:
    """A year as spoken: ``1984`` "nineteen eighty four", ``1905`` "nineteen oh five",
    ``1900`` "nineteen hundred", ``2005`` "two thousand five", ``2024`` "twenty twenty four".
    """
    if not 1000 <= n <= 9999:
        return cardinal(n)
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return cardinal(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{cardinal(high)} hundred"
    if low < 10:
        return f"{cardinal(high)} oh {cardinal(low)}"
    return f"{cardinal(high)} {cardinal(low)}"


def digits(s: str) -> str:
    """Each digit of ``s`` as a word: ``"007"`` -> ``"zero zero seven"``."""
    return " ".join(_ONES[int(c)] for c in s if c.isdigit())


def _plural(word: str) -> str:
    return word[:-1] + "ies" if word.endswith("y") else word + "s"


def number_words(s: str) -> str:
    """A written number (optional sign, thousands commas, decimals) in words."""
    s = s.replace(",", "")
    sign = ""
    if s.startswith(("-", "−")):
        sign, s = "minus ", s[1:]
    whole, _, frac = s.partition(".")
    if frac:
        head = cardinal(int(whole)) if whole else ""
        return (sign + head + " point " + digits(frac)).replace("  ", " ").strip()
    return sign + _integer_words(whole)


def _integer_words(s: str, year_ok: bool = True) -> str:
    if len(s) > 1 and s.startswith("0"):
        return digits(s)  # codes and ids: "007", "0800"
    n = int(s)
    if year_ok and len(s) == 4 and 1100 <= n <= 2099:
        return year(n)  # written without a comma, a number in this range is usually a year
    return cardinal(n)


# ---------------------------------------------------------------------------- unicode

_TRANSLATE = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2033": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2014": " - ",
        "\u2015": " - ",
        "\u2212": "-",
        "\u2044": "/",
        "\u00d7": " times ",
        "\u00f7": " divided by ",
        "\t": " ",
        "\v": " ",
        "\f": "\n",
        "\r": "\n",
        "\u2028": "\n",
        "\u2029": "\n\n",
        "\u0085": "\n",
    }
)
_KEEP_SYMBOLS = frozenset("°")
# Unicode categories removed: controls, format characters (zero-width, bidi marks, soft
# hyphen), private use, unassigned, surrogates, and pictographs/emoji (So, Sk), which
# espeak-ng would otherwise read out by name.
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "So", "Sk"})
_SPACES = re.compile(r"[ \u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_PARAGRAPH = re.compile(r"\n\s*\n\s*")
_LINE = re.compile(r" *\n *")


def clean_unicode(text: str) -> str:
    """NFKC, typographic punctuation to ASCII, controls and emoji removed, spaces collapsed.

    Line breaks survive: a blank line (paragraph end) as ``"\\n\\n"``, a single break as
    ``"\\n"``.
    """
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE)
    text = "".join(
        c
        for c in text
        if c == "\n" or c in _KEEP_SYMBOLS or unicodedata.category(c) not in _DROP_CATEGORIES
    )
    text = _SPACES.sub(" ", text)
    text = _PARAGRAPH.sub("\n\n", text)
    text = _LINE.sub(lambda m: m.group(0).strip(" "), text)
    return text.strip()


# ---------------------------------------------------------------------------- abbreviations

# Written without their period; matched case-insensitively.
# Titles precede a name: they never end a sentence.
TITLE_ABBREVIATIONS: dict[str, str] = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miz",
    "dr": "doctor",
    "prof": "professor",
    "capt": "captain",
    "gen": "general",
    "lt": "lieutenant",
    "col": "colonel",
    "sgt": "sergeant",
    "gov": "governor",
    "sen": "senator",
    "rep": "representative",
    "rev": "reverend",
    "hon": "honorable",
    "fr": "father",
    "st": "saint",
    "mt": "mount",
}
# Always inside a sentence.
INLINE_ABBREVIATIONS: dict[str, str] = {
    "e.g": "for example",
    "i.e": "that is",
    "vs": "versus",
    "approx": "approximately",
    "ca": "circa",
}
# Inside a sentence, and only abbreviations when a number follows ("No. 5", "Jan. 3").
NUMBER_ABBREVIATIONS: dict[str, str] = {
    "no": "number",
    "nos": "numbers",
    "fig": "figure",
    "vol": "volume",
    "pp": "pages",
    "jan": "january",
    "feb": "february",
    "mar": "march",
    "apr": "april",
    "jun": "june",
    "jul": "july",
    "aug": "august",
    "sep": "september",
    "sept": "september",
    "oct": "october",
    "nov": "november",
    "dec": "december",
}
# May end a sentence: the period stays when the sentence ends there.
FINAL_ABBREVIATIONS: dict[str, str] = {
    "etc": "et cetera",
    "jr": "junior",
    "sr": "senior",
    "inc": "incorporated",
    "ltd": "limited",
    "co": "company",
    "corp": "corporation",
    "dept": "department",
    "ave": "avenue",
    "st": "street",
    "dr": "drive",
    "rd": "road",
    "blvd": "boulevard",
    "a.m": "AM",
    "p.m": "PM",
}
_PLACE_OR_TITLE = frozenset({"st", "dr"})


def place_or_title(before: str, after: str) -> str:
    """Whether an ambiguous "St."/"Dr." is a title ("St. Louis", "Dr. Lee") or a place
    suffix ("Main St.", "Elm Dr."), given the text before and after it: "title" or "place".

    A capitalised word before it, not itself the first word of a sentence, makes it a
    place name's suffix; otherwise a capitalised word after it makes it a title.
    """
    words = before.split()
    prev = words[-1].strip("\"'([") if words else ""
    prev_is_name = (
        prev[:1].isupper()
        and prev.isalpha()
        and len(words) > 1
        and not words[-2].endswith((".", "!", "?"))
    )
    if prev_is_name:
        return "place"
    return "title" if after.lstrip(" \"'([")[:1].isupper() else "place"


def is_title(before: str, after: str) -> bool:
    """Whether a title abbreviation ("Mr.", "Dr.", "Ms.") really is one here: a name
    (capitalised word) follows, and no number precedes ("5 ms." is a unit)."""
    words = before.split()
    if words and words[-1][-1:].isdigit():
        return False
    return after.lstrip(" \"'([")[:1].isupper()


_ABBREVIATION_RE = re.compile(
    r"(?<![\w.])(e\.g|i\.e|a\.m|p\.m|[A-Za-z]{2,6})\.(?!\w)",
)
_BARE_TITLE_RE = re.compile(r"\b(Mr|Mrs|Ms|Dr|St)(?= [A-Z])")
_ENDS_SENTENCE = re.compile(r"\s*$|\s+[\"'(\[]?[A-Z0-9]")


def _expand_abbreviation(m: re.Match[str]) -> str:
    raw = m.group(1)
    word = raw.lower()
    text = m.string
    before = text[: m.start()]
    after = text[m.end() :]
    kind = None
    if word in _PLACE_OR_TITLE:
        kind = place_or_title(before, after)
    if word in TITLE_ABBREVIATIONS and kind != "place" and is_title(before, after):
        return TITLE_ABBREVIATIONS[word]
    if word in INLINE_ABBREVIATIONS:
        return INLINE_ABBREVIATIONS[word]
    if word in NUMBER_ABBREVIATIONS and re.match(r"\s*#?\d", after):
        return NUMBER_ABBREVIATIONS[word]
    if word in FINAL_ABBREVIATIONS:
        period = "." if _ENDS_SENTENCE.match(after) else ""
        return FINAL_ABBREVIATIONS[word] + period
    return m.group(0)


def expand_abbreviations(text: str) -> str:
    """Common English abbreviations to words ("Dr. Lee" -> "doctor Lee")."""
    text = _ABBREVIATION_RE.sub(_expand_abbreviation, text)
    return _BARE_TITLE_RE.sub(lambda m: TITLE_ABBREVIATIONS[m.group(1).lower()], text)


# ---------------------------------------------------------------------------- rules

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"

_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
    "¥": ("yen", "yen", "", ""),
}
_MAGNITUDES = {
    "thousand": "thousand",
    "million": "million",
    "billion": "billion",
    "trillion": "trillion",
    "k": "thousand",
    "m": "million",
    "mn": "million",
    "b": "billion",
    "bn": "billion",
}
_CURRENCY_RE = re.compile(
    rf"(-)?([$£€¥])\s?({_NUM})(?:\s(thousand|million|billion|trillion)|(k|K|m|M|mn|bn|B))?(?![\w])"
)


def _currency(m: re.Match[str]) -> str:
    minus, symbol, amount, magnitude_word, magnitude_short = m.groups()
    unit, units, sub, subs = _CURRENCIES[symbol]
    sign = "minus " if minus else ""
    magnitude = magnitude_word or magnitude_short
    if magnitude:
        return f" {sign}{number_words(amount)} {_MAGNITUDES[magnitude.lower()]} {units} "
    plain = amount.replace(",", "")
    whole, _, frac = plain.partition(".")
    if not sub or len(frac) > 2:
        word = unit if plain == "1" else units
        return f" {sign}{number_words(amount)} {word} "
    n_whole = int(whole) if whole else 0
    n_sub = int(frac.ljust(2, "0")) if frac else 0
    parts = []
    if n_whole or not n_sub:
        parts.append(f"{cardinal(n_whole)} {unit if n_whole == 1 else units}")
    if n_sub:
        parts.append(f"{cardinal(n_sub)} {sub if n_sub == 1 else subs}")
    return f" {sign}{' and '.join(parts)} "


_PERCENT_RE = re.compile(rf"(-?)({_NUM})\s?%")
_TEMPERATURE_RE = re.compile(rf"(-?)({_NUM})\s?°\s?([CFK])?(?![A-Za-z])")
_DEGREE_UNITS = {"C": "Celsius", "F": "Fahrenheit", "K": "Kelvin"}


def _percent(m: re.Match[str]) -> str:
    return f" {number_words(m.group(1) + m.group(2))} percent "


def _temperature(m: re.Match[str]) -> str:
    sign, value, scale = m.groups()
    word = "degree" if value == "1" and not sign else "degrees"
    unit = f" {_DEGREE_UNITS[scale]}" if scale else ""
    return f" {number_words(sign + value)} {word}{unit} "


_AMPM = r"([AaPp])\.?\s?[Mm](\.?)(?![A-Za-z])"
_TIME_RE = re.compile(rf"(?<![\d:.])([01]?\d|2[0-3]):([0-5]\d)(?![:\d])(?:\s?{_AMPM})?")
_HOUR_AMPM_RE = re.compile(rf"(?<![\d:.])(1[0-2]|0?[1-9])\s?{_AMPM}")


def _ampm(letter: str | None, period: str, after: str) -> str:
    if not letter:
        return ""
    word = "AM" if letter.lower() == "a" else "PM"
    # "at 5 p.m." ending a sentence keeps its full stop.
    keep = period and _ENDS_SENTENCE.match(after)
    return f" {word}{'.' if keep else ''}"


def _time(m: re.Match[str]) -> str:
    hour, minute, letter, period = m.group(1), m.group(2), m.group(3), m.group(4)
    h, mins = int(hour), int(minute)
    suffix = _ampm(letter, period or "", m.string[m.end() :])
    if mins == 0:
        if suffix:
            spoken = cardinal(h)
        elif h <= 12:
            spoken = f"{cardinal(h)} o'clock"
        else:
            spoken = f"{cardinal(h)} hundred"
    elif mins < 10:
        spoken = f"{cardinal(h)} oh {cardinal(mins)}"
    else:
        spoken = f"{cardinal(h)} {cardinal(mins)}"
    return f" {spoken}{suffix} "


def _hour_ampm(m: re.Match[str]) -> str:
    return f" {cardinal(int(m.group(1)))}{_ampm(m.group(2), m.group(3), m.string[m.end() :])} "


_RATIO_RE = re.compile(r"(?<![\d:.])(\d+):(\d+)(?![\d:])")
_DIGIT_COLON_RE = re.compile(r"(?<=\d):(?=\d)")
_MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
# "Jan. 3" / "March 21": a day of the month is said as an ordinal. "may" only capitalised.
_MONTH_DAY_RE = re.compile(
    rf"\b((?i:{'|'.join(_MONTHS)})|May) (\d{{1,2}})(?!\d|st|nd|rd|th|:|\.\d|,\d)"
)


def _month_day(m: re.Match[str]) -> str:
    day = int(m.group(2))
    return f"{m.group(1)} {ordinal(day)}" if 1 <= day <= 31 else m.group(0)


_ORDINAL_RE = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(st|nd|rd|th|ST|ND|RD|TH)\b")
_DECADE4_RE = re.compile(r"(?<![\w.])(\d{3}0)'?s\b")
_DECADE2_RE = re.compile(r"(?<![\w.])'?([1-9]0)'?s\b")


def _decade4(m: re.Match[str]) -> str:
    words = _integer_words(m.group(1)).split(" ")
    words[-1] = _plural(words[-1])
    return f" {' '.join(words)} "


_UNITS: dict[str, tuple[str, str]] = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "kWh": ("kilowatt hour", "kilowatt hours"),
    "kHz": ("kilohertz", "kilohertz"),
    "mph": ("mile per hour", "miles per hour"),
    "km": ("kilometer", "kilometers"),
    "kg": ("kilogram", "kilograms"),
    "cm": ("centimeter", "centimeters"),
    "mm": ("millimeter", "millimeters"),
    "mg": ("milligram", "milligrams"),
    "ml": ("milliliter", "milliliters"),
    "mL": ("milliliter", "milliliters"),
    "ms": ("millisecond", "milliseconds"),
    "kW": ("kilowatt", "kilowatts"),
    "KB": ("kilobyte", "kilobytes"),
    "kB": ("kilobyte", "kilobytes"),
    "MB": ("megabyte", "megabytes"),
    "GB": ("gigabyte", "gigabytes"),
    "TB": ("terabyte", "terabytes"),
    "Hz": ("hertz", "hertz"),
    "lbs": ("pound", "pounds"),
    "lb": ("pound", "pounds"),
    "oz": ("ounce", "ounces"),
    "ft": ("foot", "feet"),
}
_UNIT_RE = re.compile(
    rf"(-?)({_NUM})\s?({'|'.join(re.escape(u) for u in _UNITS)})(?![\w/])",
)


def _unit(m: re.Match[str]) -> str:
    sign, value, unit = m.groups()
    singular, plural = _UNITS[unit]
    return f" {number_words(sign + value)} {singular if value == '1' else plural} "


_FRACTION_RE = re.compile(r"(?<![\d/.,])(\d{1,2})/(\d{1,2})(?![\d/])")


def _fraction(m: re.Match[str]) -> str:
    num, den = int(m.group(1)), int(m.group(2))
    if not (0 < num < den <= 10):
        return m.group(0)  # "24/7", dates: left to the number rule ("twenty four slash seven")
    if den == 2:
        name = "half" if num == 1 else "halves"
    elif den == 4:
        name = "quarter" if num == 1 else "quarters"
    else:
        name = ordinal(den) + ("" if num == 1 else "s")
    return f" {cardinal(num)} {name} "


_RANGE_RE = re.compile(r"(?<![\d\-.,/:])(\d{1,4})\s?-\s?(\d{1,4})(?![\d\-.,/:])")
_NEGATIVE_RE = re.compile(rf"(?<![\w.,)])-({_NUM})")
_NUMBER_RE = re.compile(rf"(?<![\d.])({_NUM})(?![\d])")


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# A bare 1100-2099 is read as a year ("in 1984": nineteen eighty four) unless a plural noun
# follows it, which makes it a count ("1234 people": one thousand two hundred thirty four);
# after a word that introduces a date ("in 1500 the ...") it stays a year.
_YEAR_CUES = _word_set(
    "in since until till from before after around circa during born year summer winter "
    "spring autumn fall early late mid may " + " ".join(_MONTHS)
)
_NOT_PLURAL = _word_set("is was has as us this its his yes does plus thus always")
_IRREGULAR_PLURALS = _word_set("people children men women feet teeth mice geese sheep")
_WORD_BEFORE_RE = re.compile(r"([A-Za-z]+)[\s,]*$")
_WORD_AFTER_RE = re.compile(r"\s+([a-z]+)\b")


def _bare_number(m: re.Match[str]) -> str:
    text = m.group(1)
    if text.isdigit():
        before = _WORD_BEFORE_RE.search(m.string, 0, m.start(1))
        after = _WORD_AFTER_RE.match(m.string, m.end(1))
        plural = after is not None and (
            after.group(1) in _IRREGULAR_PLURALS
            or (after.group(1).endswith("s") and after.group(1) not in _NOT_PLURAL)
        )
        counted = plural and not (before is not None and before.group(1).lower() in _YEAR_CUES)
        return f" {_integer_words(text, year_ok=not counted)} "
    return f" {number_words(text)} "


_HASH_NUMBER_RE = re.compile(r"#\s?(?=\d)")
_SPACED_DASH_RE = re.compile(r"\s+-+\s+|\s*--+\s*")

_SYMBOL_WORDS: dict[str, str] = {
    "&": " and ",
    "+": " plus ",
    "@": " at ",
    "=": " equals ",
    "%": " percent ",
    "°": " degrees ",
    "*": " ",  # markdown emphasis in chat text; espeak-ng would say "asterisk"
}
_SYMBOL_RE = re.compile("|".join(re.escape(s) for s in _SYMBOL_WORDS))
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_WHITESPACE = re.compile(r"\s+")

_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_SPACED_DASH_RE, ", "),
    (_CURRENCY_RE, _currency),
    (_PERCENT_RE, _percent),
    (_TEMPERATURE_RE, _temperature),
    (_TIME_RE, _time),
    (_HOUR_AMPM_RE, _hour_ampm),
    (_RATIO_RE, lambda m: f" {number_words(m.group(1))} to {number_words(m.group(2))} "),
    (_DIGIT_COLON_RE, " "),
    (_MONTH_DAY_RE, _month_day),
    (_UNIT_RE, _unit),
    (_ORDINAL_RE, lambda m: f" {ordinal(int(m.group(1).replace(',', '')))} "),
    (_DECADE4_RE, _decade4),
    (_DECADE2_RE, lambda m: f" {_plural(cardinal(int(m.group(1))))} "),
    (_FRACTION_RE, _fraction),
    (_RANGE_RE, lambda m: f" {_integer_words(m.group(1))} to {_integer_words(m.group(2))} "),
    (_HASH_NUMBER_RE, " number "),
    (_NEGATIVE_RE, lambda m: f" minus {number_words(m.group(1))} "),
    (_NUMBER_RE, _bare_number),
    (_SYMBOL_RE, lambda m: _SYMBOL_WORDS[m.group(0)]),
)


def normalize_text(text: str) -> str:
    """One sentence (or any text) to a single line of speakable words.

    >>> normalize_text("Dr. Lee paid $12.50 at 3:30pm on the 21st.")
    'doctor Lee paid twelve dollars and fifty cents at three thirty PM on the twenty first.'
    """
    text = clean_unicode(text)
    text = _WHITESPACE.sub(" ", text)
    text = expand_abbreviations(text)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = _WHITESPACE.sub(" ", text).strip()
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)
