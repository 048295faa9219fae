"""`vcstream bench`: run the figures the flags ask for, print their tables, emit the JSON.

The default run measures the pipeline (time to first audio, real-time factor, stage costs)
and, unless ``--no-network``, what the transports add. A flag in ``STANDALONE`` runs that
figure instead: its ``<figure>_main(args)`` measures, prints its tables and returns the
report, which is emitted as JSON here.
"""

from __future__ import annotations

import argparse
import importlib

from vcstream.bench.report import console, emit_json
from vcstream.errors import InputError

# flag attribute on the parsed arguments -> "module:function" of the figure it runs alone
STANDALONE = {
    "synth": "vcstream.bench.synth:synth_main",
    "clone": "vcstream.bench.clone:clone_main",
    "capacity": "vcstream.bench.capacity:capacity_main",
    "vocoder_variants": "vcstream.bench.vocoder_variants:vocoder_variants_main",
}
# options that only some standalone figures read: attribute -> (flag, those figures' flags)
OWN_OPTIONS = {
    "data": ("--data", ("synth",)),
    "checkpoint": ("--checkpoint", ("synth",)),
    "sentences": ("--sentences", ("synth", "clone")),
    "speakers": ("--speakers", ("clone",)),
    "max_speakers": ("--max-speakers", ("clone",)),
    "split": ("--split", ("clone",)),
    "lengths": ("--lengths", ("clone",)),
    "knn": ("--knn", ("clone",)),
    "knn_k": ("--knn-k", ("clone",)),
    "knn_ceps": ("--knn-ceps", ("clone",)),
    "knn_alpha": ("--knn-alpha", ("clone",)),
    "no_adapt": ("--no-adapt", ("clone",)),
    "png_dir": ("--png-dir", ("clone",)),
    "capacity_max": ("--capacity-max", ("capacity",)),
    "capacity_daemons": ("--capacity-daemons", ("capacity",)),
}


def _flag(attr: str) -> str:
    return "--" + attr.replace("_", "-")


def _standalone(args: argparse.Namespace):
    chosen = [flag for flag in STANDALONE if getattr(args, flag, False)]
    if len(chosen) > 1:
        raise InputError("choose one of " + ", ".join(_flag(f) for f in chosen))
    for attr, (flag, owners) in OWN_OPTIONS.items():
        if getattr(args, attr, None) and not set(owners) & set(chosen):
            raise InputError(f"{flag} belongs to " + " or ".join(_flag(o) for o in owners))
    if not chosen:
        return None
    module, func = STANDALONE[chosen[0]].split(":")
    return getattr(importlib.import_module(module), func)


def default_main(args: argparse.Namespace) -> dict:
    """The speed figure (per quality, Piper beside it) and, unless ``--no-network``, the
    network figure."""
    from vcstream.app import build_runtime
    from vcstream.bench.quality import parse_qualities
    from vcstream.bench.speed import measure_speed, print_speed_report
    from vcstream.config import load_config

    cfg = load_config(args.config)
    qualities = parse_qualities(getattr(args, "quality", None), cfg.vocoder.quality)
    if args.device:
        cfg.device.compute = args.device
    rt = build_runtime(cfg)
    report = measure_speed(
        cfg,
        rt,
        qualities=qualities,
        repeat=args.repeat,
        references=args.reference,
        with_piper=not getattr(args, "no_piper", False),
    )
    if not getattr(args, "no_network", False):
        from vcstream.bench.network import DEFAULT_REPEAT, measure_network

        repeat = getattr(args, "network_repeat", None) or DEFAULT_REPEAT
        report["network"] = measure_network(cfg, rt, repeat=repeat)
    out = console()
    print_speed_report(report, out)
    if report.get("network"):
        from vcstream.bench.network import network_table

        out.print(network_table(report["network"]))
    return report


def main(args: argparse.Namespace) -> int:
    figure = _standalone(args) or default_main
    return emit_json(figure(args), getattr(args, "json_out", None))
