"""`vcstream bench`: time to first audio, real-time factor and per-stage cost.

Runs the same streaming path as `say` and the daemon, repeatedly, for short, medium and
long texts, and prints a table plus JSON. Figures depend on the machine: the report names
it (CPU model, cores, torch threads, device).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from vcstream.metrics import Metrics
from vcstream.synth.base import SynthControls, VoiceConditioning

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
TARGET_TTFA_MS = 250.0  # medium sentence, median
TARGET_RTF = 0.5


def machine_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


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


def print_table(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped into a file or a note, rich would fold the tables to 80 columns and elide
    # the figures; a terminal keeps its own width.
    console = Console() if sys.stdout.isatty() else Console(width=140)
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
    console.print(table)
    for name, ok in report["targets"].items():
        console.print(f"target {name}: {'met' if ok else 'NOT met'}")
    if report.get("network"):
        from vcstream.net.bench import network_table

        console.print(network_table(report["network"]))


def emit_json(report: dict, path: str | None) -> int:
    """Print the report as JSON after its tables, and write it to ``path`` if given."""
    text = json.dumps(report, indent=1, default=float)
    print(text)
    if path:
        Path(path).write_text(text)
    return 0


def synth_main(args: argparse.Namespace) -> int:
    """`vcstream bench --synth`: FastPitch against Piper on the corpus's validation set."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from vcstream.app import build_runtime
    from vcstream.config import load_config
    from vcstream.errors import InputError
    from vcstream.synth_eval import (
        evaluate_synthesisers,
        plan_evaluation,
        print_synth_report,
        resolve_checkpoint,
    )

    if not args.data:
        raise InputError("--synth needs --data CORPUS (a `vcstream corpus build` folder)")
    # Cheap checks first: a missing checkpoint or corpus is reported before models load.
    checkpoint = resolve_checkpoint(args.checkpoint)
    plan = plan_evaluation(args.data, args.sentences, args.train_speakers)
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per utterance
    cfg = load_config(args.config)
    if args.device:
        cfg.device.compute = args.device
    cfg.synth.backend = "piper"  # the runtime's synthesiser is the baseline; ours is loaded apart
    rt = build_runtime(cfg)
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task("synthesising and scoring", total=None)

        def advance(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total, description=label)

        report = evaluate_synthesisers(
            rt,
            args.data,
            checkpoint,
            plan=plan,
            progress=advance,
        )
    print_synth_report(report)
    return emit_json(report, args.json_out)


def main(args: argparse.Namespace) -> int:
    from vcstream.app import build_runtime
    from vcstream.config import load_config

    if getattr(args, "synth", False):
        return synth_main(args)
    if getattr(args, "data", None) or getattr(args, "checkpoint", None):
        from vcstream.errors import InputError

        raise InputError("--data and --checkpoint belong to --synth")
    cfg = load_config(args.config)
    if args.device:
        cfg.device.compute = args.device
    rt = build_runtime(cfg)
    report = {
        "machine": machine_description(),
        "device": str(rt.device),
        "synthesizer": rt.synthesizer.name,
        "clones": bool(rt.synthesizer.clones),
        "repeat": args.repeat,
        "pipeline": measure_pipeline(rt, args.repeat, args.reference),
    }
    medium = report["pipeline"]["medium"]
    report["targets"] = {
        f"ttfa_medium_le_{TARGET_TTFA_MS:.0f}ms": medium["time_to_first_audio_ms"]["median"]
        <= TARGET_TTFA_MS,
        f"rtf_le_{TARGET_RTF}": all(
            r["rtf"]["median"] <= TARGET_RTF for r in report["pipeline"].values()
        ),
    }
    try:
        from vcstream.net.bench import DEFAULT_REPEAT, measure_network
    except ImportError:
        measure_network = None
    if measure_network is not None and not getattr(args, "no_network", False):
        repeat = getattr(args, "network_repeat", None) or DEFAULT_REPEAT
        report["network"] = measure_network(cfg, rt, repeat=repeat)
    print_table(report)
    return emit_json(report, args.json_out)
