"""The speech path shared by `vcstream say` and the daemon: phonemes to audio chunks.

sentences ──► synthesiser (mel chunks) ──► streaming vocoder ──► audio chunks

A plain object with no threads or sockets: the daemon's worker and the CLI both iterate
``render`` and decide what to do with each chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from vcstream.errors import InputError
from vcstream.metrics import Metrics, StageTimer
from vcstream.synth.base import SynthControls, Synthesizer, VoiceConditioning


def _timed(items: Iterator, timer: StageTimer, units: Callable) -> Iterator:
    """``items`` one by one, the time each took to make added to ``timer`` with
    ``units(item)`` of work (the consumer's time between items is not counted)."""
    while True:
        t0 = time.perf_counter()
        item = next(items, None)
        if item is None:
            return
        timer.add(1000 * (time.perf_counter() - t0), units(item))
        yield item


@dataclass(frozen=True)
class PreparedText:
    """What a request will say: one phoneme list per sentence."""

    sentences: list[list[str]]
    text: str | None

    @property
    def n_phonemes(self) -> int:
        return sum(len(s) for s in self.sentences)


def prepare_text(
    frontend,
    max_chars: int,
    text: str | None = None,
    phonemes: str | None = None,
) -> PreparedText:
    """Text or explicit phonemes (exactly one) to validated sentences of phonemes."""
    if (text is None) == (phonemes is None):
        raise InputError("give exactly one of text or phonemes")
    if text is not None:
        if not isinstance(text, str):
            raise InputError("text must be a string")
        sentences = frontend.prepare(text, max_chars)
        return PreparedText([s.phonemes for s in sentences], text)
    if not isinstance(phonemes, str):
        raise InputError("phonemes must be a string")
    sentences = frontend.prepare_phonemes(phonemes, max_chars)
    return PreparedText([s.phonemes for s in sentences], None)


class SpeechPipeline:
    def __init__(
        self,
        frontend,
        synthesizer: Synthesizer,
        vocoder,
        *,
        sample_rate_hz: int,
        max_text_chars: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.frontend = frontend
        self.synthesizer = synthesizer
        self.vocoder = vocoder
        self.sample_rate_hz = sample_rate_hz
        self.max_text_chars = max_text_chars
        self.metrics = metrics or Metrics()

    def prepare(self, text: str | None = None, phonemes: str | None = None) -> PreparedText:
        """Validate and convert a request's text or phonemes; raises ``InputError``."""
        with self.metrics.timer("frontend").time():
            return prepare_text(self.frontend, self.max_text_chars, text, phonemes)

    def render(
        self,
        prepared: PreparedText,
        voice: VoiceConditioning,
        controls: SynthControls,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[np.ndarray]:
        """Yield float32 audio chunks as soon as each is vocoded."""
        synth_timer = self.metrics.timer("synth")
        voc_timer = self.metrics.timer("vocoder")
        hop = self.vocoder.hop
        for phonemes in prepared.sentences:
            if cancelled():
                return
            self.vocoder.reset()
            mel_stream = self.synthesizer.synthesize(phonemes, voice, controls)
            for mel in _timed(mel_stream, synth_timer, lambda m: m.shape[-1]):
                if cancelled():
                    return
                # Each chunk leaves as soon as it is vocoded: the first ones of a sentence
                # are small (the vocoder's ramp), so audio starts while the rest is made.
                for audio in _timed(self.vocoder.chunks(mel), voc_timer, lambda a: len(a) / hop):
                    yield audio
                    if cancelled():
                        return
            t0 = time.perf_counter()
            tail = self.vocoder.flush()
            voc_timer.add(1000 * (time.perf_counter() - t0), len(tail) / hop)
            if len(tail):
                yield tail
