"""`vcstream` command line. Errors the user can fix print one line and exit 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from vcstream import __version__
from vcstream.errors import InputError, VcstreamError

log = logging.getLogger("vcstream")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML config file (defaults: configs/default.toml)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="compute device")


def _load_cfg(args: argparse.Namespace):
    from vcstream.config import load_config

    cfg = load_config(args.config)
    if getattr(args, "device", None):
        cfg.device.compute = args.device
    if getattr(args, "quality", None):
        cfg.vocoder.quality = args.quality
    return cfg


def _add_quality(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quality",
        choices=["full", "lite", "auto"],
        help="vocoder: full (HiFi-GAN V1), lite (ours, several times cheaper), auto (lite "
        "where full cannot keep real time with headroom); default: [vocoder] quality",
    )


def _runtime(args: argparse.Namespace, *, realtime: bool = True):
    from vcstream.app import build_runtime

    return build_runtime(_load_cfg(args), realtime=realtime)


def _read_references(paths: list[str]) -> None:
    """Fail fast, before any model loads, on a missing or broken recording."""
    from vcstream.audio.io import read_wav

    for path in paths:
        read_wav(path)


def cmd_say(args: argparse.Namespace) -> int:
    import numpy as np

    from vcstream.app import build_runtime
    from vcstream.audio.io import write_wav
    from vcstream.pipeline import prepare_text
    from vcstream.references import embed_references
    from vcstream.synth.base import SynthControls, VoiceConditioning
    from vcstream.text.g2p import TextFrontEnd
    from vcstream.voices import VoiceStore

    if (args.text is None) == (args.phonemes is None):
        raise InputError("give exactly one of --text or --phonemes")
    if args.reference and args.voice:
        raise InputError("give reference recordings (--reference) or a saved --voice, not both")
    if args.convert and not args.reference:
        raise InputError("--convert needs --reference: the recordings whose frames it uses")
    cfg = _load_cfg(args)
    # Cheap checks first: bad input is reported before seconds of model loading.
    profile = VoiceStore(cfg.voices.dir or None).load(args.voice) if args.voice else None
    if args.reference:
        _read_references(args.reference)
    frontend = TextFrontEnd()
    prepare_text(frontend, cfg.synth.max_text_chars, args.text, args.phonemes)

    rt = build_runtime(cfg, frontend=frontend, realtime=False)  # a file: no deadline
    if profile is not None:
        profile.check_checkpoint(getattr(rt.synthesizer, "checkpoint_id", None))
        voice = profile.conditioning()
    elif args.reference:
        voice = embed_references(rt.new_embedder(), args.reference).conditioning
    else:  # no voice given: the synthesiser's default voice
        voice = VoiceConditioning()
    pipeline = rt.new_pipeline()
    if args.convert:
        from vcstream.synth.knn import matcher_for_recordings

        pipeline.synthesizer = matcher_for_recordings(
            pipeline.synthesizer, args.reference, args.convert
        )
    controls = SynthControls(speed=args.speed or cfg.synth.speed)
    t0 = time.perf_counter()
    prepared = pipeline.prepare(text=args.text, phonemes=args.phonemes)
    chunks, first_ms = [], None
    for chunk in pipeline.render(prepared, voice, controls):
        if first_ms is None:
            first_ms = 1000 * (time.perf_counter() - t0)
        chunks.append(chunk)
    compute_s = time.perf_counter() - t0
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    write_wav(args.output, audio, pipeline.sample_rate_hz)
    seconds = len(audio) / pipeline.sample_rate_hz
    if args.json:
        print(
            json.dumps(
                {
                    "time_to_first_audio_ms": round(first_ms or 0.0, 2),
                    "rtf": round(compute_s / seconds, 4) if seconds else None,
                    "audio_seconds": round(seconds, 3),
                    "synthesizer": rt.synthesizer.name,
                    "clones": rt.synthesizer.clones,
                    "device": str(rt.device),
                    "vocoder": rt.vocoder_status,
                    "output": str(args.output),
                }
            )
        )
    else:
        note = "" if rt.synthesizer.clones else f" (backend {rt.synthesizer.name} does not clone)"
        print(f"wrote {args.output}: {seconds:.2f} s, first audio after {first_ms:.0f} ms{note}")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from vcstream.consent import ConsentRecord, utc_now
    from vcstream.references import embed_references
    from vcstream.voices import VoiceProfile, check_name

    check_name(args.save)
    _read_references(args.reference)
    if args.adapt:
        from vcstream.adapt.cli import check_enough_speech

        check_enough_speech(args.reference)  # before seconds of model loading
    rt = _runtime(args, realtime=False)
    ref = embed_references(rt.new_embedder(), args.reference)
    adapted = None
    if args.adapt:
        from vcstream.adapt.cli import adapt_references

        adapted = adapt_references(
            rt, args.reference, args.transcript, json_out=args.json, max_wall_s=args.max_wall_s
        )
    profile = VoiceProfile(
        args.save,
        ref.conditioning.embedding,
        ref.voiced_seconds,
        rt.encoder_name,
        log_f0_mean=ref.conditioning.log_f0_mean,
        log_f0_std=ref.conditioning.log_f0_std,
        sources=[Path(p).name for p in ref.sources],
        adapted=adapted,
        cepstral_std=ref.conditioning.cepstral_std,
        # Made by the operator from files: no consent check was made (mode none).
        consent=ConsentRecord("none", utc_now()).to_json(),
    )
    path = rt.voice_store().save(profile)
    if args.json:
        print(json.dumps({"saved": str(path), **profile.summary()}))
    else:
        print(f"saved voice {args.save!r} ({ref.voiced_seconds:.1f} s voiced) to {path}")
    return 0


def cmd_voices(args: argparse.Namespace) -> int:
    from vcstream.voices import VoiceStore

    cfg = _load_cfg(args)
    store = VoiceStore(cfg.voices.dir or None)
    items = store.list()
    if args.json:
        print(json.dumps(items))
        return 0
    if not items:
        print(f"no saved voices in {store.dir}")
    for v in items:
        if "error" in v:
            print(f"{v['name']:24s} {v['error']}")
        else:
            adapted = v.get("adapted")
            tag = f"  adapted ({adapted['plan']}, {adapted['seconds']:.1f} s)" if adapted else ""
            print(
                f"{v['name']:24s} {v['voiced_seconds']:7.1f} s voiced  {v['created']}  "
                f"{v['model']}{tag}"
            )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from vcstream.daemon import serve

    cfg = _load_cfg(args)
    if args.capture_file:
        cfg.capture.source, cfg.capture.file = "file", args.capture_file
    if args.loop:
        cfg.capture.loop = True
    if args.no_capture:
        cfg.capture.source = "none"
    if args.playback:
        cfg.output.playback = True
    return serve(cfg)


def cmd_bench(args: argparse.Namespace) -> int:
    from vcstream.bench.runner import main as bench_main

    return bench_main(args)


# Subcommands with their own argument parsers: everything after the name is theirs.
DELEGATED = {
    "client": ("vcstream.net.client", "network client of a running daemon"),
    "top": ("vcstream.top", "terminal dashboard of a running daemon"),
    "corpus": ("vcstream.corpus.build", "build the synthesiser training corpus"),
    "train": ("vcstream.train", "train the synthesiser"),
    "train-vocoder": ("vcstream.vocoder.lite_train", "distil the lite vocoder from HiFi-GAN V1"),
    "soak": ("vcstream.soak", "run the daemon under steady load and print RSS, threads, fds"),
}


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _run(name: str, func, *args) -> int:
    try:
        return int(func(*args) or 0)
    except VcstreamError as err:
        print(f"vcstream {name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vcstream", description=__doc__)
    parser.add_argument("--version", action="version", version=f"vcstream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the daemon")
    _add_common(p)
    p.add_argument("--capture-file", help="use this WAV as the live voice input (real-time paced)")
    p.add_argument("--loop", action="store_true", help="loop the capture file")
    p.add_argument("--no-capture", action="store_true", help="no voice input (network only)")
    p.add_argument("--playback", action="store_true", help="also play the output locally")
    _add_quality(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("say", help="clone a voice from recordings and speak text to a WAV")
    _add_common(p)
    p.add_argument(
        "--reference",
        nargs="+",
        metavar="REF.wav",
        help="recordings of the voice (neither this nor --voice: the model's default voice)",
    )
    p.add_argument("--voice", help="a saved voice profile instead of references")
    p.add_argument("--text")
    p.add_argument("--phonemes", help="espeak-ng IPA phonemes instead of text")
    p.add_argument("--speed", type=float, help="speaking-rate multiplier")
    p.add_argument(
        "--convert",
        choices=("envelope", "frame", "stats"),
        help="also convert the synthesised mel toward the --reference recordings' own frames "
        "(kNN-VC style; see `vcstream bench --clone`)",
    )
    p.add_argument("-o", "--output", required=True, help="output WAV path")
    p.add_argument("--json", action="store_true", help="print timings as JSON")
    _add_quality(p)
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("embed", help="save a voice profile from recordings")
    _add_common(p)
    p.add_argument("reference", nargs="+", metavar="REF.wav")
    p.add_argument("--save", required=True, metavar="NAME")
    p.add_argument(
        "--adapt",
        action="store_true",
        help="also fine-tune the synthesiser to these recordings (needs 3 s of speech; "
        "transcribed with the bundled Whisper unless --transcript is given)",
    )
    p.add_argument(
        "--transcript",
        nargs="+",
        metavar="TEXT",
        help="--adapt: what each recording says, one text per recording (else Whisper's)",
    )
    p.add_argument(
        "--max-wall-s",
        type=float,
        default=60.0,
        help="--adapt: stop tuning (keeping the best so far) after this many seconds in all "
        "(default 60)",
    )
    p.add_argument("--json", action="store_true", help="print the saved profile as JSON")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("voices", help="list saved voice profiles")
    _add_common(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_voices)

    p = sub.add_parser("bench", help="measure latency, real-time factor and per-stage cost")
    _add_common(p)
    p.add_argument("--repeat", type=int, default=5, help="runs per sentence length")
    p.add_argument("--json-out", help="also write the JSON report to this file")
    p.add_argument("--reference", nargs="*", default=[], help="reference recordings")
    p.add_argument("--no-network", action="store_true", help="skip the transport measurements")
    p.add_argument(
        "--quality",
        help="vocoder qualities to measure side by side, comma-separated (full, lite, auto; "
        "default: [vocoder] quality)",
    )
    p.add_argument("--no-piper", action="store_true", help="skip the Piper baseline beside it")
    p.add_argument(
        "--capacity",
        action="store_true",
        help="capacity instead: the most concurrent real-time streams (daemons, one WebSocket "
        "client each, all asking at once) this machine sustains, per --quality",
    )
    p.add_argument(
        "--vocoder-variants",
        action="store_true",
        help="HiFi-GAN V1 on this CPU instead: float32, bf16 autocast, mixed bf16, "
        "channels-last, ONNX Runtime, torch.compile (ms per audio second, difference to "
        "float32 in dB; --repeat interleaved rounds)",
    )
    p.add_argument(
        "--capacity-max", type=int, help="--capacity: highest stream count to try (default 8)"
    )
    p.add_argument(
        "--capacity-daemons",
        choices=("process", "thread"),
        help="--capacity: each daemon its own `vcstream serve` process (default, as deployed) "
        "or a thread of this process sharing one set of models",
    )
    p.add_argument(
        "--network-repeat",
        type=int,
        help="paired say/WebSocket/ZeroMQ runs for the transport figures (default 21, "
        "about 8 s each)",
    )
    p.add_argument(
        "--synth",
        action="store_true",
        help="synthesiser quality instead: FastPitch against Piper on the corpus's validation "
        "sentences (CER, cloning cosine, pitch, synthesiser cost)",
    )
    p.add_argument("--data", metavar="CORPUS", help="--synth: corpus folder (vcstream corpus)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="--synth: FastPitch checkpoint (default: the shipped vcstream/assets/fastpitch.pt)",
    )
    p.add_argument(
        "--sentences",
        type=int,
        help="--synth: validation sentences (default 8); --clone: English sentences spoken "
        "per row (default 3, at most 6)",
    )
    p.add_argument(
        "--train-speakers",
        type=int,
        default=4,
        help="--synth: training speakers beside every held-out one (default 4)",
    )
    p.add_argument(
        "--clone",
        action="store_true",
        help="cloning of real voices instead: default voice, zero-shot, kNN, adapted and "
        "ceiling per test speaker and reference length (GE2E cosine, gap closed, CER, F0)",
    )
    p.add_argument(
        "--speakers", metavar="NAMES", help="--clone: comma-separated speakers (default: --split)"
    )
    p.add_argument("--split", choices=("test", "dev"), help="--clone: speaker set (default test)")
    p.add_argument("--max-speakers", type=int, help="--clone: at most this many speakers")
    p.add_argument(
        "--lengths", metavar="S,S,...", help="--clone: reference seconds (default 3,10,30,60)"
    )
    p.add_argument(
        "--knn",
        metavar="MODES",
        help="--clone: frame-conversion rows, comma-separated: envelope (default), frame, "
        "stats, or none",
    )
    p.add_argument("--knn-k", type=int, help="--clone: neighbours per frame (default 4)")
    p.add_argument(
        "--knn-ceps", type=int, help="--clone: cepstra matched and converted (default 20)"
    )
    p.add_argument(
        "--knn-alpha", type=float, help="--clone: share of the conversion, 0-1 (default 1)"
    )
    p.add_argument("--no-adapt", action="store_true", help="--clone: leave out the adapted rows")
    p.add_argument(
        "--png-dir", metavar="DIR", help="--clone: write spectrogram PNGs (recording over clones)"
    )
    p.set_defaults(func=cmd_bench)

    for name, (_module, helptext) in DELEGATED.items():
        sub.add_parser(name, help=f"{helptext} (`vcstream {name} --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        import importlib

        _setup_logging("-v" in argv[1:2])
        module = importlib.import_module(DELEGATED[argv[0]][0])
        return _run(argv[0], module.main, argv[1:])
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return _run(args.command, args.func, args)


if __name__ == "__main__":
    sys.exit(main())
