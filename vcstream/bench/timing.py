"""Timing runs shared by the figures that compare subjects (vcstream per quality, Piper):
one ``Run`` per utterance, subjects interleaved so that load drifting on a shared machine
hits every subject alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from vcstream.bench.report import summary


@dataclass(frozen=True)
class Run:
    first_audio_s: float  # from the call to the first audio the caller could play
    total_s: float  # from the call to the last sample
    audio_s: float  # seconds of audio produced

    @property
    def rtf(self) -> float:
        return self.total_s / self.audio_s


Subject = Callable[[str], Run]


def interleave(
    subjects: Mapping[str, Subject], texts: Mapping[str, str], repeat: int
) -> dict[str, dict[str, list[Run]]]:
    """``repeat`` rounds; each round speaks every text once with every subject, in turn.
    Returns subject -> text label -> runs."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    runs: dict[str, dict[str, list[Run]]] = {s: {t: [] for t in texts} for s in subjects}
    for _ in range(repeat):
        for label, text in texts.items():
            for name, subject in subjects.items():
                run = subject(text)
                if not (run.audio_s > 0 and run.first_audio_s > 0):
                    raise RuntimeError(f"{name} produced no audio for {label!r}")
                runs[name][label].append(run)
    return runs


def timing_row(text: str, runs: list[Run]) -> dict:
    """Words, audio length, time to first audio and real-time factor of one text."""
    return {
        "words": len(text.split()),
        "audio_seconds": round(runs[-1].audio_s, 3),
        "time_to_first_audio_ms": summary([1000 * r.first_audio_s for r in runs], 1),
        "rtf": {
            "median": summary([r.rtf for r in runs], 4)["median"],
            "max": round(max(r.rtf for r in runs), 4),
        },
    }
