"""`vcstream embed ... --adapt`: adaptation of a saved voice to its reference recordings."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from vcstream.adapt import MIN_SECONDS, AdaptedVoice, NotEnoughVoiceError, adapt
from vcstream.errors import InputError


def check_enough_speech(paths: Sequence[str | Path]) -> None:
    """Refuse, before any model loads, recordings shorter in all than ``MIN_SECONDS``."""
    from vcstream.audio.io import read_wav

    total = 0.0
    for p in paths:
        audio, sr = read_wav(p)
        total += len(audio) / sr
    if total < MIN_SECONDS:
        raise NotEnoughVoiceError(total)


def adapt_references(
    rt,
    paths: Sequence[str | Path],
    transcripts: Sequence[str] | None,
    *,
    json_out: bool = False,
    max_wall_s: float | None = 60.0,
) -> AdaptedVoice:
    from vcstream.audio.io import read_wav
    from vcstream.corpus.features import FeatureExtractor
    from vcstream.vocoder.lite import load_lite

    if transcripts is not None and len(transcripts) != len(paths):
        raise InputError(
            f"{len(transcripts)} --transcript texts for {len(paths)} recordings: give one each"
        )
    recordings = [read_wav(p) for p in paths]
    extractor = FeatureExtractor(str(rt.device), encoder=rt.encoder)

    def progress(stage: str, fraction: float, info: dict) -> None:
        if json_out:
            return
        if stage == "tune":
            figure = (
                f"probe similarity {info['probe_similarity']:.3f}"
                if "probe_similarity" in info
                else f"held-out mel loss {info['held_out_loss']:.3f}"
            )
            print(
                f"\radapting: step {info['step']}/{info['steps']}, {figure}",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif stage == "probe" and info.get("vocoder") == "lite":
            print(
                "adapting: probes through the lite vocoder (HiFi-GAN V1 is too slow on this "
                "machine for the time budget)",
                file=sys.stderr,
                flush=True,
            )
        elif stage in ("transcribe", "measure") and fraction == 0.0:
            # after the tuning line (drawn with \r), on a line of its own
            print(
                f"{chr(10) if stage == 'measure' else ''}adapting: {stage}...",
                file=sys.stderr,
                flush=True,
            )

    voice = adapt(
        rt.synthesizer,
        recordings,
        transcripts=transcripts,
        progress=progress,
        max_wall_s=max_wall_s,
        vocoder=rt.generator,
        lite_probe_vocoder=load_lite(None, rt.device),
        extractor=extractor,
    )
    if not json_out:
        m = voice.metadata()
        print(
            f"adapted ({m['plan']}, {m['parameters']} parameters) on {m['seconds']:.1f} s of "
            f"speech in {m['wall_s']:.1f} s: held-out mel loss {m['held_out_loss_before']:.3f}"
            f" -> {m['held_out_loss']:.3f}, similarity {m['similarity_before']:.3f} -> "
            f"{m['similarity']:.3f}",
            file=sys.stderr,
        )
        if m["prosody_offsets"]:
            offsets = ", ".join(f"{k} {v:+.3f}" for k, v in m["prosody_offsets"].items())
            print(f"  prosody offsets: {offsets}", file=sys.stderr)
        for why in voice.dropped:
            print(f"  left out: {why}", file=sys.stderr)
    return voice
