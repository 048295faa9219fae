"""The default figure of `vcstream bench`: time to first audio, real-time factor and
stage costs per vocoder quality, with the Piper baseline timed beside it in the same run
(interleaved, same sentences) and vcstream's ratio to Piper."""

from __future__ import annotations

from vcstream.bench import compare, quality
from vcstream.bench.pipeline import (
    PipelineSubject,
    pipeline_rows,
    pipeline_table,
    pipeline_targets,
    reference_voice,
)
from vcstream.bench.report import machine_description
from vcstream.bench.sentences import TEXTS
from vcstream.bench.timing import interleave, timing_row


def measure_speed(
    cfg,
    rt,
    *,
    qualities: list[str],
    repeat: int,
    references: list[str] = (),
    with_piper: bool = True,
    texts: dict[str, str] | None = None,
) -> dict:
    """``rt`` is the runtime of ``cfg``; a quality it does not run gets its own runtime.
    ``texts`` defaults to ``sentences.TEXTS`` (it must hold a "medium" text)."""
    texts = texts or TEXTS
    runtimes = {q: quality.runtime_for(cfg, q, rt) for q in qualities}
    voice = reference_voice(rt, list(references))
    subjects = {q: PipelineSubject(runtimes[q], voice) for q in qualities}
    if with_piper:
        from vcstream.bench.piper import VOICE, PiperBaseline

        subjects["piper"] = PiperBaseline(threads=cfg.device.cpu_threads)
    runs = interleave(subjects, texts, repeat)
    report: dict = {
        "machine": machine_description(),
        "device": str(rt.device),
        "vocoder": {q: runtimes[q].vocoder_status for q in qualities},
        "synthesizer": rt.synthesizer.name,
        "clones": bool(rt.synthesizer.clones),
        "repeat": repeat,
        "qualities": list(qualities),
        "pipeline": {q: pipeline_rows(subjects[q], runs[q], texts) for q in qualities},
    }
    piper = None
    if with_piper:
        piper = {label: timing_row(texts[label], rs) for label, rs in runs["piper"].items()}
        report["piper_voice"] = VOICE
        report["piper"] = piper
        report["vs_piper"] = {
            q: compare.versus_piper(report["pipeline"][q], piper) for q in qualities
        }
    report["targets"] = {}
    for q in qualities:
        met = {**pipeline_targets(report["pipeline"][q])}
        runs = report["vocoder"][q]["quality"]  # auto is judged as what it took
        met.update(compare.quality_targets(runs, report["pipeline"][q], piper))
        report["targets"].update({f"{q}.{name}": ok for name, ok in met.items()})
    return report


def print_speed_report(report: dict, console) -> None:
    for q in report["qualities"]:
        console.print(pipeline_table(report, q))
    if "piper" in report:
        console.print(compare.comparison_table(report))
    for name, ok in report["targets"].items():
        console.print(f"target {name}: {'met' if ok else 'NOT met'}")
