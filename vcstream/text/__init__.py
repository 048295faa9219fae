"""Text front end: normalisation, sentence splitting and G2P to espeak-ng IPA.

``TextFrontEnd`` (in ``vcstream.text.g2p``) is the entry point; ``vcstream.text.phonemes``
holds the fixed phoneme inventory and id mapping shared by every synthesiser.
"""

from vcstream.text.g2p import EspeakG2P, Sentence, TextFrontEnd
from vcstream.text.normalize import normalize_text
from vcstream.text.phonemes import parse_phonemes, phonemes_to_ids
from vcstream.text.sentences import split_sentences, split_text

__all__ = [
    "EspeakG2P",
    "Sentence",
    "TextFrontEnd",
    "normalize_text",
    "parse_phonemes",
    "phonemes_to_ids",
    "split_sentences",
    "split_text",
]
