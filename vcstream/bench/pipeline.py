"""Time to first audio, real-time factor and per-stage cost: the default figure of
`vcstream bench`.

Runs the same streaming path as `say` and the daemon, repeatedly, for short, medium and
long texts (``sentences.TEXTS``).
"""

from __future__ import annotations

import statistics
import time

from vcstream.bench.sentences import TEXTS
from vcstream.metrics import Metrics
from vcstream.synth.base import SynthControls, VoiceConditioning

TARGET_TTFA_MS = 250.0  # medium sentence, median
TARGET_RTF = 0.5


def _reference_voice(rt, references: list[str]) -> VoiceConditioning:
    from vcstream.references import embed_references

    if references:
        return embed_references(rt.new_embedder(), references).conditioning
    return VoiceConditioning()


def measure_pipeline(rt, repeat: int, references: list[str]) -> dict:
    """Median time to first audio and real-time factor per text length, with stage costs."""
    voice = _reference_voice(rt, references)
    controls = SynthControls()
    results: dict[str, dict] = {}
    warm = rt.new_pipeline()
    list(warm.render(warm.prepare(text=TEXTS["short"]), voice, controls))  # warm-up
    for label, text in TEXTS.items():
        ttfa, rtf, seconds = [], [], 0.0
        metrics = Metrics()
        for _ in range(repeat):
            pipeline = rt.new_pipeline()
            pipeline.metrics = metrics
            t0 = time.perf_counter()
            prepared = pipeline.prepare(text=text)
            first, n = None, 0
            for chunk in pipeline.render(prepared, voice, controls):
                if first is None:
                    first = time.perf_counter() - t0
                n += len(chunk)
            total = time.perf_counter() - t0
            seconds = n / pipeline.sample_rate_hz
            ttfa.append(1000 * first)
            rtf.append(total / seconds)
        stages = metrics.snapshot()["stages"]
        audio_s = seconds * repeat
        results[label] = {
            "words": len(text.split()),
            "audio_seconds": round(seconds, 3),
            "time_to_first_audio_ms": {
                "median": round(statistics.median(ttfa), 1),
                "min": round(min(ttfa), 1),
                "max": round(max(ttfa), 1),
            },
            "rtf": {"median": round(statistics.median(rtf), 4), "max": round(max(rtf), 4)},
            "stage_ms_per_audio_s": {
                name: round(s["total_ms"] / audio_s, 2) for name, s in stages.items()
            },
        }
    return results


def pipeline_table(report: dict):  # returns a rich Table
    """The pipeline figure of a `vcstream bench` report (it needs the report's machine,
    device and synthesiser for the title)."""
    from rich.table import Table

    m = report["machine"]
    title = f"vcstream bench: {report['synthesizer']} on {report['device']} ({m['cpu']}, "
    title += f"{m['cores']} cores, {m['torch_threads']} torch threads)"
    table = Table(title=title)
    for col in ("text", "words", "audio s", "TTFA median ms", "TTFA max ms", "RTF median"):
        table.add_column(col, justify="right")
    stage_names = sorted(
        {k for r in report["pipeline"].values() for k in r["stage_ms_per_audio_s"]}
    )
    for name in stage_names:
        table.add_column(f"{name} ms/s", justify="right")
    for label, r in report["pipeline"].items():
        row = [
            label,
            str(r["words"]),
            f"{r['audio_seconds']:.2f}",
            f"{r['time_to_first_audio_ms']['median']:.0f}",
            f"{r['time_to_first_audio_ms']['max']:.0f}",
            f"{r['rtf']['median']:.3f}",
        ]
        row += [f"{r['stage_ms_per_audio_s'].get(n, 0):.1f}" for n in stage_names]
        table.add_row(*row)
    return table


def pipeline_targets(pipeline: dict) -> dict[str, bool]:
    medium = pipeline["medium"]
    return {
        f"ttfa_medium_le_{TARGET_TTFA_MS:.0f}ms": medium["time_to_first_audio_ms"]["median"]
        <= TARGET_TTFA_MS,
        f"rtf_le_{TARGET_RTF}": all(r["rtf"]["median"] <= TARGET_RTF for r in pipeline.values()),
    }
