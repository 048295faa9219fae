"""Time to first audio, real-time factor and per-stage cost: the default figure of
`vcstream bench`.

Runs the same streaming path as `say` and the daemon, repeatedly, for short, medium and
long texts (``sentences.TEXTS``).
"""

from __future__ import annotations

import time

from vcstream.bench.sentences import TEXTS
from vcstream.bench.timing import Run, interleave, timing_row
from vcstream.metrics import Metrics
from vcstream.synth.base import SynthControls, VoiceConditioning

TARGET_TTFA_MS = 250.0  # medium sentence, median
TARGET_RTF = 0.5


def reference_voice(rt, references: list[str]) -> VoiceConditioning:
    from vcstream.references import embed_references

    if references:
        return embed_references(rt.new_embedder(), references).conditioning
    return VoiceConditioning()


class PipelineSubject:
    """``__call__(text) -> Run``: one utterance through the speech path of ``rt`` (a
    ``vcstream.app.Runtime``), timed from ``prepare`` to the last chunk. Stage timings
    accumulate per text in ``metrics``."""

    def __init__(self, rt, voice: VoiceConditioning | None = None) -> None:
        self.rt = rt
        self.voice = voice or VoiceConditioning()
        self.controls = SynthControls()
        self.metrics: dict[str, Metrics] = {}
        warm = rt.new_pipeline()
        list(warm.render(warm.prepare(text=TEXTS["short"]), self.voice, self.controls))

    def __call__(self, text: str) -> Run:
        pipeline = self.rt.new_pipeline()
        pipeline.metrics = self.metrics.setdefault(text, Metrics())
        t0 = time.perf_counter()
        prepared = pipeline.prepare(text=text)
        first, n = None, 0
        for chunk in pipeline.render(prepared, self.voice, self.controls):
            if first is None:
                first = time.perf_counter() - t0
            n += len(chunk)
        total = time.perf_counter() - t0
        if first is None:
            raise RuntimeError(f"the pipeline produced no audio for {text!r}")
        return Run(first, total, n / pipeline.sample_rate_hz)

    def stage_costs(self, text: str, runs: list[Run]) -> dict[str, float]:
        """Milliseconds each stage spent per second of audio, over ``runs`` of ``text``."""
        stages = self.metrics[text].snapshot()["stages"]
        audio_s = sum(r.audio_s for r in runs)
        return {name: round(s["total_ms"] / audio_s, 2) for name, s in stages.items()}


def pipeline_rows(
    subject: PipelineSubject, runs: dict[str, list[Run]], texts: dict[str, str] = TEXTS
) -> dict[str, dict]:
    """The pipeline figure per text label, from ``interleave``'s runs of ``subject``."""
    return {
        label: {
            **timing_row(texts[label], rs),
            "stage_ms_per_audio_s": subject.stage_costs(texts[label], rs),
        }
        for label, rs in runs.items()
    }


def measure_pipeline(rt, repeat: int, references: list[str]) -> dict:
    """Median time to first audio and real-time factor per text length, with stage costs."""
    subject = PipelineSubject(rt, reference_voice(rt, references))
    runs = interleave({"vcstream": subject}, TEXTS, repeat)["vcstream"]
    return pipeline_rows(subject, runs)


def pipeline_table(report: dict, quality: str):  # returns a rich Table
    """One quality's pipeline figure of a `vcstream bench` report (it needs the report's
    machine, device and synthesiser for the title)."""
    from rich.table import Table

    m = report["machine"]
    choice = report.get("vocoder", {}).get(quality, {})  # auto: which it took, and why
    runs = choice.get("quality", quality)
    named = f"{quality} vocoder"
    if runs != quality:
        named = f"{runs} vocoder ({quality}: {choice.get('reason', '')})"
    title = f"vcstream bench: {report['synthesizer']}, {named}, on {report['device']} "
    title += f"({m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch threads)"
    table = Table(title=title)
    for col in ("text", "words", "audio s", "TTFA median ms", "TTFA max ms", "RTF median"):
        table.add_column(col, justify="right")
    stage_names = sorted(
        {k for r in report["pipeline"][quality].values() for k in r["stage_ms_per_audio_s"]}
    )
    for name in stage_names:
        table.add_column(f"{name} ms/s", justify="right")
    for label, r in report["pipeline"][quality].items():
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
    """The first targets (issue #1); the time to first audio one needs the medium text."""
    met = {f"rtf_le_{TARGET_RTF}": all(r["rtf"]["median"] <= TARGET_RTF for r in pipeline.values())}
    if "medium" in pipeline:
        ttfa = pipeline["medium"]["time_to_first_audio_ms"]["median"]
        met = {f"ttfa_medium_le_{TARGET_TTFA_MS:.0f}ms": ttfa <= TARGET_TTFA_MS, **met}
    return met
