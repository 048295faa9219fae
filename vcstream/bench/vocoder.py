"""Vocoder benchmark: real-time factor per chunk size and method, time to the first chunk,
and what each fast path costs in quality (`python -m vcstream.bench.vocoder`).

Timings are wall-clock medians over ``repeat`` runs (the machines are shared: read the
spread too); the quality figures are deterministic for a given input and CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import torch

from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ, mel_spectrogram
from vcstream.bench.report import summary
from vcstream.vocoder.hifigan import HifiGanGenerator
from vcstream.vocoder.streaming import StreamingVocoder, cpu_has_native_bf16

BENCH_TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background."
)
NEPER_TO_DB = 20 / math.log(10)  # natural-log magnitude to decibels
VOICED_LOG_MEL = -6.0  # frames whose loudest band is above this count as speech


def speech_audio(text: str = BENCH_TEXT) -> np.ndarray:
    """Real speech to measure with: the Piper joe voice (deterministic), 22050 Hz."""
    from vcstream.synth.piper_backend import PiperSynthesizer
    from vcstream.text.g2p import TextFrontEnd

    synth = PiperSynthesizer(noise_scale=0.0, noise_w=0.0, split_first_clause=False)
    sentences = TextFrontEnd().prepare(text, 2000)
    return np.concatenate([synth.render(s.phonemes) for s in sentences])


def log_spectral_distance_db(audio: np.ndarray, mel: torch.Tensor) -> float:
    """RMS difference, in dB, between the log-mel of ``audio`` and ``mel`` over speech
    frames: how far vocoded audio is from the spectrogram it was made from."""
    got = mel_spectrogram(np.asarray(audio, dtype=np.float32))
    ref = mel.detach().float().cpu()
    n = min(got.shape[1], ref.shape[1])
    got, ref = got[:, :n], ref[:, :n]
    speech = ref.max(0).values > VOICED_LOG_MEL
    if not bool(speech.any()):
        raise ValueError("no speech frames in the reference mel")
    diff = (got - ref)[:, speech]
    return NEPER_TO_DB * float(diff.pow(2).mean().sqrt())


def difference_db(audio: np.ndarray, reference: np.ndarray) -> float:
    """Energy of ``audio - reference`` relative to the energy of ``reference``, in dB."""
    a = np.asarray(audio, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        raise ValueError(f"length mismatch: {a.shape} vs {r.shape}")
    err = float(((a - r) ** 2).sum())
    return -math.inf if err == 0 else 10 * math.log10(err / float((r**2).sum()))


def run_stream(
    vocoder: StreamingVocoder, mel: torch.Tensor, piece_frames: int
) -> tuple[np.ndarray, float, float]:
    """Feed ``mel`` in pieces as a synthesiser would; (audio, seconds to the first
    non-empty output, total seconds)."""
    vocoder.reset()
    parts, first = [], None
    t0 = time.perf_counter()
    for start in range(0, mel.shape[1], piece_frames):
        out = vocoder.process(mel[:, start : start + piece_frames])
        if len(out) and first is None:
            first = time.perf_counter() - t0
        parts.append(out)
    parts.append(vocoder.flush())
    total = time.perf_counter() - t0
    if first is None:
        first = total
    return np.concatenate(parts), first, total


def measure(
    generator: HifiGanGenerator | None = None,
    *,
    audio: np.ndarray | None = None,
    chunk_frames: Sequence[int] = (16, 32, 48),
    first_chunk_frames: int = 16,
    contexts: Sequence[tuple[int, int]] = ((12, 12),),
    modes: Sequence[str] | None = None,
    piece_frames: int = 32,
    repeat: int = 3,
) -> dict:
    """Benchmark the vocoder on ``audio`` (default: ``speech_audio()``) at 22050 Hz.

    For each mode ("window": float32 windows with each of ``contexts``; "stateful":
    float32 stateful; "fast_cpu": the reduced-quality CPU mode; default: the modes the
    daemon would use on the generator's device) and chunk size: median
    real-time factor (seconds of compute per second of audio), time to the first chunk
    (mel arriving ``piece_frames`` at a time, all of it ready), difference from the
    whole-utterance float32 output in dB, and log-spectral distance to the input mel.
    ``rtf`` is wall-clock; ``cpu_rtf`` is this process's CPU time per audio second (all
    threads), which other processes on a shared machine disturb less.
    """
    if generator is None:
        from vcstream.vocoder import load_vocoder

        generator = load_vocoder()
    device = next(generator.parameters()).device
    if modes is None:  # what the daemon would run on this device
        modes = ("stateful", "fast_cpu") if device.type == "cpu" else ("window",)
    if audio is None:
        audio = speech_audio()
    mel = mel_spectrogram(audio).to(device)
    seconds = mel.shape[1] * HOP / SAMPLE_RATE_HZ

    with torch.inference_mode():
        generator(mel[:, :32])  # first-call allocations are not the model's speed
        whole = generator(mel).float().cpu().numpy()
        whole_rtf, whole_cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            generator(mel)
            if device.type == "cuda":
                torch.cuda.synchronize()
            whole_rtf.append((time.perf_counter() - t0) / seconds)
            whole_cpu.append((time.process_time() - c0) / seconds)
    report: dict = {
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "audio_seconds": round(seconds, 3),
        "repeat": repeat,
        "piece_frames": piece_frames,
        "whole": {
            "rtf": summary(whole_rtf, 4),
            "cpu_rtf": summary(whole_cpu, 4),
            "lsd_db": round(log_spectral_distance_db(whole, mel), 3),
        },
        "chunked": [],
    }

    settings: list[dict] = []
    for mode in modes:
        if mode == "window":
            settings += [
                {"method": "window", "left_context_frames": lc, "right_context_frames": rc}
                for lc, rc in contexts
            ]
        elif mode == "stateful":
            settings.append({"method": "stateful"})
        elif mode == "fast_cpu":
            settings.append({"fast_cpu": True})
        else:
            raise ValueError(f"unknown mode {mode!r}")
    for kwargs in settings:
        for chunk in chunk_frames:
            vocoder = StreamingVocoder(
                generator,
                chunk_frames=chunk,
                first_chunk_frames=min(first_chunk_frames, chunk),
                **kwargs,
            )
            out, _, _ = run_stream(vocoder, mel, piece_frames)  # warm-up, and the output
            firsts, rtfs, cpus = [], [], []
            for _ in range(repeat):
                c0 = time.process_time()
                _, first, total = run_stream(vocoder, mel, piece_frames)
                cpus.append((time.process_time() - c0) / seconds)
                firsts.append(1000 * first)
                rtfs.append(total / seconds)
            row = vocoder.describe()
            row.update(
                {
                    "rtf": summary(rtfs, 4),
                    "cpu_rtf": summary(cpus, 4),
                    "first_chunk_ms": summary(firsts, 1),
                    "diff_db_vs_whole_float32": round(difference_db(out, whole), 1),
                    "lsd_db": round(log_spectral_distance_db(out, mel), 3),
                }
            )
            report["chunked"].append(row)
    return report


def main() -> None:  # python -m vcstream.bench.vocoder
    import json

    print(json.dumps(measure(modes=("window", "stateful", "fast_cpu")), indent=1))


if __name__ == "__main__":
    main()
