"""The texts every timing figure speaks, so figures of one run compare."""

from __future__ import annotations

TEXTS = {
    "short": "Hello there, friend.",
    "medium": "The quick brown fox jumps over the lazy sleeping dog.",  # 10 words
    "long": (
        "A performer steps up to the microphone and begins to speak. While they talk, the "
        "daemon listens and builds an estimate of their voice. Moments later, text that "
        "arrives over the network is spoken back in that voice, through the loudspeakers "
        "and into every browser watching the show."
    ),
}
