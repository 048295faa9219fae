"""Text front end: normalisation, sentence splitting, G2P and the phoneme inventory."""

from __future__ import annotations

import json

import pytest

from vcstream.errors import InputError, UnknownPhonemesError
from vcstream.text import TextFrontEnd
from vcstream.text.g2p import EspeakG2P
from vcstream.text.normalize import cardinal, clean_unicode, normalize_text, ordinal, year
from vcstream.text.phonemes import (
    BOS,
    EOS,
    INVENTORY_FILE,
    PAD,
    inventory_from_piper_config,
    load_inventory,
    parse_phonemes,
    phonemes_to_ids,
)
from vcstream.text.sentences import split_long, split_sentences, split_text
from vcstream.weights import piper_voice_files


@pytest.fixture(scope="module")
def front_end() -> TextFrontEnd:
    return TextFrontEnd()


# ------------------------------------------------------------------------ number words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (105, "one hundred five"),
        (1000, "one thousand"),
        (1001, "one thousand one"),
        (21000, "twenty one thousand"),
        (1_000_000, "one million"),
        (2_003_004, "two million three thousand four"),
        (-12, "minus twelve"),
    ],
)
def test_cardinal(n: int, words: str) -> None:
    assert cardinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (2, "second"),
        (3, "third"),
        (5, "fifth"),
        (12, "twelfth"),
        (20, "twentieth"),
        (21, "twenty first"),
        (100, "one hundredth"),
        (108, "one hundred eighth"),
    ],
)
def test_ordinal(n: int, words: str) -> None:
    assert ordinal(n) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1984, "nineteen eighty four"),
        (1905, "nineteen oh five"),
        (1900, "nineteen hundred"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (2024, "twenty twenty four"),
    ],
)
def test_year(n: int, words: str) -> None:
    assert year(n) == words


# ------------------------------------------------------------------------ normalisation

NORMALISATION_TABLE = [
    # numbers, decimals, grouping, signs, leading zeros
    ("I have 3 cats.", "I have three cats."),
    ("It weighs 3.14 grams", "It weighs three point one four grams"),
    ("Add .5 cups", "Add point five cups"),
    (
        "1,234,567 people",
        "one million two hundred thirty four thousand five hundred sixty seven people",
    ),
    ("It was -7 outside", "It was minus seven outside"),
    ("Agent 007", "Agent zero zero seven"),
    ("Room 101", "Room one hundred one"),
    ("pages 10-20", "pages ten to twenty"),
    ("a 3:1 ratio", "a three to one ratio"),
    ("add 1/2 cup", "add one half cup"),
    # ordinals and years
    ("the 1st, 2nd, 3rd and 22nd", "the first, second, third and twenty second"),
    ("I was born in 1984.", "I was born in nineteen eighty four."),
    ("In 2024 and 1905", "In twenty twenty four and nineteen oh five"),
    # ... but a count when a plural noun follows, unless a word introduces a date
    ("1234 people came", "one thousand two hundred thirty four people came"),
    ("We sold 1500 tickets.", "We sold one thousand five hundred tickets."),
    ("1984 was a year", "nineteen eighty four was a year"),
    ("In 1984 crowds gathered", "In nineteen eighty four crowds gathered"),
    ("Since 1990, prices rose", "Since nineteen ninety, prices rose"),
    ("Room 1101", "Room eleven oh one"),
    ("the 1990s and the 80s", "the nineteen nineties and the eighties"),
    ("on March 21", "on March twenty first"),
    ("Jan. 3, 2024", "january third, twenty twenty four"),
    # currency
    ("It costs $12.50.", "It costs twelve dollars and fifty cents."),
    ("Only $1", "Only one dollar"),
    ("Just $0.99", "Just ninety nine cents"),
    ("A £5 note", "A five pounds note"),
    ("€2.05 each", "two euros and five cents each"),
    ("raised $1.5 million", "raised one point five million dollars"),
    ("a $3bn deal", "a three billion dollars deal"),
    # percentages
    ("50% off", "fifty percent off"),
    ("up 3.5 %", "up three point five percent"),
    # times
    ("Meet at 3:30.", "Meet at three thirty."),
    ("Meet at 3:00.", "Meet at three o'clock."),
    ("at 9:05 a.m. sharp", "at nine oh five AM sharp"),
    ("at 7pm today", "at seven PM today"),
    ("Leave at 5 p.m.", "Leave at five PM."),
    ("at 15:00", "at fifteen hundred"),
    # abbreviations
    ("Dr. Lee met Mr. Smith and Mrs. Jones.", "doctor Lee met mister Smith and missus Jones."),
    ("We live on Elm St. now", "We live on Elm street now"),
    ("Visit St. Louis", "Visit saint Louis"),
    ("apples, pears, etc.", "apples, pears, et cetera."),
    ("apples etc. and more", "apples et cetera and more"),
    ("Prof. X vs. Magneto", "professor X versus Magneto"),
    ("No. 5 and no more", "number five and no more"),
    ("Martin Luther King Jr. spoke", "Martin Luther King junior spoke"),
    # symbols and units
    ("Tom & Jerry", "Tom and Jerry"),
    ("1 + 1 = 2", "one plus one equals two"),
    ("mail me @ home", "mail me at home"),
    ("It is 25°C today", "It is twenty five degrees Celsius today"),
    ("-5°F outside", "minus five degrees Fahrenheit outside"),
    ("turn 90° left", "turn ninety degrees left"),
    ("the #1 song", "the number one song"),
    ("run 5 km", "run five kilometers"),
    ("1 kg of flour", "one kilogram of flour"),
    ("It took 5 ms.", "It took five milliseconds."),
    # unicode clean-up
    ("it\u2019s \u201cquoted\u201d", 'it\'s "quoted"'),
    ("wait\u2014what", "wait, what"),
    ("zero\u200bwidth and \x07bell", "zerowidth and bell"),
    ("emoji \U0001f600 here", "emoji here"),
    ("\ufb01ne", "fine"),
    ("  lots \t of\n space  ", "lots of space"),
]


@pytest.mark.parametrize(("written", "spoken"), NORMALISATION_TABLE)
def test_normalisation_table(written: str, spoken: str) -> None:
    assert normalize_text(written) == spoken


def test_clean_unicode_keeps_paragraphs_and_drops_controls() -> None:
    assert clean_unicode("one\r\n\r\ntwo\x00\x1b three\u2026") == "one\n\ntwo three..."


# ------------------------------------------------------------------------ sentence splitting

SENTENCE_TABLE = [
    ("Hello world. How are you? Fine!", ["Hello world.", "How are you?", "Fine!"]),
    ("Dr. Smith met Mr. Jones. They talked.", ["Dr. Smith met Mr. Jones.", "They talked."]),
    ("Pi is 3.14. E is 2.72.", ["Pi is 3.14.", "E is 2.72."]),
    ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
    ("The U.S. army is big. OK.", ["The U.S. army is big.", "OK."]),
    ("Buy apples, pears, etc. Then go.", ["Buy apples, pears, etc.", "Then go."]),
    ("Buy apples etc. and go.", ["Buy apples etc. and go."]),
    ("I live on Main St. Then I moved.", ["I live on Main St.", "Then I moved."]),
    ("Visit St. Louis. It is nice.", ["Visit St. Louis.", "It is nice."]),
    ("It was No. 5 of them. Next.", ["It was No. 5 of them.", "Next."]),
    ("It took 5 ms. Then it stopped.", ["It took 5 ms.", "Then it stopped."]),
    ("Ms. Smith came.", ["Ms. Smith came."]),
    ("See e.g. This one.", ["See e.g. This one."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("Well... maybe. Or not...", ["Well... maybe.", "Or not..."]),
    ("What?! Really!!! Yes.", ["What?!", "Really!!!", "Yes."]),
    ("no capitals here. still split? yes", ["no capitals here.", "still split?", "yes"]),
    ("A title\n\nThe body text", ["A title", "The body text"]),
    ("a line\nwrapped mid sentence.", ["a line wrapped mid sentence."]),
    ("no terminator", ["no terminator"]),
]


@pytest.mark.parametrize(("text", "sentences"), SENTENCE_TABLE)
def test_sentence_table(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


LONG = (
    "When the evening light finally faded over the quiet harbour, the fishermen pulled "
    "their boats onto the shore, counted the day's catch; and walked slowly home through "
    "the narrow streets of the old town."
)


def test_long_sentence_is_cut_at_clause_boundaries() -> None:
    pieces = split_long(LONG, 80)
    assert pieces == [
        "When the evening light finally faded over the quiet harbour,",
        "the fishermen pulled their boats onto the shore, counted the day's catch;",
        "and walked slowly home through the narrow streets of the old town.",
    ]
    assert " ".join(pieces) == LONG


def test_long_clause_without_punctuation_is_cut_between_words() -> None:
    text = " ".join(f"word{i}" for i in range(60))
    pieces = split_long(text, 50)
    assert len(pieces) > 1
    assert all(len(p) <= 50 for p in pieces)
    assert " ".join(pieces) == text


def test_short_sentence_is_untouched() -> None:
    assert split_long("Short, sweet.", 80) == ["Short, sweet."]
    assert split_text("One. Two, three.", 80) == ["One.", "Two, three."]


# ------------------------------------------------------------------------ phoneme inventory


def test_inventory_is_the_joe_voice_table() -> None:
    _, config_path = piper_voice_files()
    committed = load_inventory()
    from_voice = inventory_from_piper_config(config_path)
    assert committed.symbols == from_voice.symbols
    assert committed.num_ids == from_voice.num_ids == 256
    assert committed.espeak_voice == "en-us"
    raw = json.loads(config_path.read_text(encoding="utf-8"))["phoneme_id_map"]
    assert {s: [i] for i, s in enumerate(committed.symbols)} == raw
    assert json.loads(INVENTORY_FILE.read_text(encoding="utf-8"))["symbols"][:4] == [
        PAD,
        BOS,
        EOS,
        " ",
    ]


def test_phonemes_to_ids_frames_like_piper() -> None:
    ids = load_inventory().ids
    got = phonemes_to_ids(["h", "ə", " ", "."])
    assert got == [
        ids[BOS],
        ids[PAD],
        ids["h"],
        ids[PAD],
        ids["ə"],
        ids[PAD],
        ids[" "],
        ids[PAD],
        ids["."],
        ids[PAD],
        ids[EOS],
    ]


def test_parse_phonemes_splits_code_points_and_collapses_spaces() -> None:
    assert parse_phonemes(" həlˈoʊ \n wˈɜːld. ") == list("həlˈoʊ wˈɜːld.")
    # Precomposed characters are decomposed the way Piper splits espeak-ng output.
    assert parse_phonemes("ç") == ["c", "\u0327"]


def test_unknown_phonemes_are_all_listed() -> None:
    with pytest.raises(UnknownPhonemesError) as info:
        parse_phonemes("həlˈoʊ W Q ☃ W")
    assert info.value.unknown == ["W", "Q", "☃"]
    assert "'W'" in str(info.value) and "'Q'" in str(info.value) and "'☃'" in str(info.value)
    assert info.value.code == "unknown_phonemes"


def test_framing_symbols_are_not_phoneme_input() -> None:
    with pytest.raises(UnknownPhonemesError) as info:
        parse_phonemes("a^b$c_")
    assert info.value.unknown == ["^", "$", "_"]
    with pytest.raises(UnknownPhonemesError):
        phonemes_to_ids(["a", "^"])


def test_empty_phoneme_input() -> None:
    with pytest.raises(InputError, match="empty"):
        parse_phonemes(" \n ")


# ------------------------------------------------------------------------ G2P


@pytest.mark.parametrize(
    ("text", "ipa"),
    [
        ("cat", "kˈæt"),
        ("hello world", "həlˈoʊ wˈɜːld"),
        ("three", "θɹˈiː"),
        ("voice", "vˈɔɪs"),
        ("judge", "dʒˈʌdʒ"),
        ("she sings", "ʃiː sˈɪŋz"),
        ("the thing", "ðə θˈɪŋ"),
        ("water", "wˈɔːɾɚ"),
        ("hello, world; yes.", "həlˈoʊ, wˈɜːld; jˈɛs."),
    ],
)
def test_g2p_known_words(text: str, ipa: str) -> None:
    assert "".join(EspeakG2P().phonemize(text)) == ipa


def test_g2p_matches_pipers_own_phonemiser() -> None:
    from piper.phonemize_espeak import EspeakPhonemizer

    text = "The quick brown fox jumps over the lazy dog, twice; then it rests: done?"
    piper = [p for sentence in EspeakPhonemizer().phonemize("en-us", text) for p in sentence]
    assert EspeakG2P().phonemize(text) == piper


def test_g2p_keeps_a_space_where_a_clause_has_no_mark() -> None:
    # espeak-ng ends a clause at "..." without a mark; Piper would glue the two words.
    assert "".join(EspeakG2P().phonemize("hello... world")) == "həlˈoʊ wˈɜːld"


# ------------------------------------------------------------------------ front end


def test_prepare_normalises_splits_and_phonemises(front_end: TextFrontEnd) -> None:
    sentences = front_end.prepare("Hello world. Dr. Lee paid $5 at 3pm!", max_chars=2000)
    assert [s.text for s in sentences] == ["Hello world.", "Dr. Lee paid $5 at 3pm!"]
    assert "".join(sentences[0].phonemes) == "həlˈoʊ wˈɜːld."
    second = "".join(sentences[1].phonemes)
    assert second.startswith("dˈɑːktɚ lˈiː")  # "doctor Lee"
    assert "fˈaɪv dˈɑːlɚz" in second  # "five dollars"
    assert second.endswith("!")
    allowed = set(load_inventory().symbols)
    assert all(p in allowed for s in sentences for p in s.phonemes)


def test_prepare_cuts_long_sentences(front_end: TextFrontEnd) -> None:
    sentences = TextFrontEnd(max_sentence_chars=80).prepare(LONG, max_chars=2000)
    assert len(sentences) == 3
    assert sentences[0].text.endswith("harbour,")
    assert sentences[0].phonemes[-1] == ","


def test_prepare_skips_pieces_with_nothing_to_say(front_end: TextFrontEnd) -> None:
    sentences = front_end.prepare("Hello. ... \U0001f600. Bye.", max_chars=2000)
    assert [s.text for s in sentences] == ["Hello.", "Bye."]


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_text_error(front_end: TextFrontEnd, text: str) -> None:
    with pytest.raises(InputError, match="empty"):
        front_end.prepare(text, max_chars=2000)


def test_huge_text_error(front_end: TextFrontEnd) -> None:
    with pytest.raises(InputError, match=r"5000 characters long; the limit is 2000"):
        front_end.prepare("word " * 1000, max_chars=2000)


def test_unspeakable_text_error(front_end: TextFrontEnd) -> None:
    with pytest.raises(InputError, match="nothing speakable"):
        front_end.prepare("... !!! \U0001f600", max_chars=2000)


def test_non_string_text_error(front_end: TextFrontEnd) -> None:
    with pytest.raises(InputError, match="must be a string"):
        front_end.prepare(b"bytes", max_chars=2000)  # type: ignore[arg-type]


def test_prepare_phonemes(front_end: TextFrontEnd) -> None:
    sentences = front_end.prepare_phonemes("həlˈoʊ wˈɜːld. haʊ ɑːɹ juː?", max_chars=100)
    assert [s.text for s in sentences] == ["həlˈoʊ wˈɜːld.", "haʊ ɑːɹ juː?"]
    assert sentences[1].phonemes == list("haʊ ɑːɹ juː?")
    with pytest.raises(UnknownPhonemesError) as info:
        front_end.prepare_phonemes("həlˈoʊ. wˈɜːld X", max_chars=100)
    assert info.value.unknown == ["X"]
    with pytest.raises(InputError, match="limit is 10"):
        front_end.prepare_phonemes("həlˈoʊ wˈɜːld", max_chars=10)
    with pytest.raises(InputError, match="empty"):
        front_end.prepare_phonemes("  ", max_chars=10)
