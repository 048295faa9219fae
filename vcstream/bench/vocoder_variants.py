"""`vcstream bench --vocoder-variants`: what each way of running HiFi-GAN V1 on this CPU
costs and how far its output is from the float32 one.

Variants, each the whole-utterance generator on the same mel of real speech:

* ``float32``        the eager float32 generator (the reference output);
* ``bf16_autocast``  ``torch.autocast("cpu", torch.bfloat16)`` (oneDNN; native only with
                     AVX512-BF16 / AMX, emulated and slow without);
* ``mixed_bf16``     the project's reduced-quality twin (``[vocoder] cpu_fast``: bfloat16 in
                     the middle upsampling stages);
* ``channels_last``  the same weights as 2-D convolutions over ``[B, C, 1, T]`` in
                     channels-last memory (Conv1d has no channels-last layout of its own);
* ``onnxruntime``    the generator exported to ONNX (dynamic length) and run by ONNX
                     Runtime's CPU provider with the same thread count;
* ``torch_compile``  ``torch.compile`` (inductor, C++ codegen) for this mel length.

Timing: after one warm-up each, ``repeat`` rounds run every variant once in turn, so load
from other processes on a shared machine falls on all of them alike; the figures are
medians, both wall-clock and this process's CPU time (all threads), per second of audio.
Quality: energy of (variant - float32) over the energy of float32, in dB (``difference_db``;
-40 dB is the bar for "sounds the same"), and the log-spectral distance to the input mel.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ, mel_spectrogram
from vcstream.bench.vocoder import difference_db, log_spectral_distance_db, speech_audio
from vcstream.vocoder.hifigan import LRELU_SLOPE, LRELU_SLOPE_POST, HifiGanGenerator
from vcstream.vocoder.streaming import cpu_has_native_bf16

VARIANTS = (
    "float32",
    "bf16_autocast",
    "mixed_bf16",
    "channels_last",
    "onnxruntime",
    "torch_compile",
)
SAME_SOUND_DB = -40.0
MIN_SPEED_UP = 1.1  # below this a variant does not pay for its complexity
DEFAULT_SECONDS = 3.0

Run = Callable[[torch.Tensor], np.ndarray]  # mel [1, 80, T] -> audio [T * hop]


def _as_2d(conv: nn.Conv1d | nn.ConvTranspose1d) -> nn.Conv2d | nn.ConvTranspose2d:
    """The same (transposed) convolution over a [B, C, 1, T] tensor, weights copied."""
    transposed = isinstance(conv, nn.ConvTranspose1d)
    out = (nn.ConvTranspose2d if transposed else nn.Conv2d)(
        conv.in_channels,
        conv.out_channels,
        (1, conv.kernel_size[0]),
        stride=(1, conv.stride[0]),
        padding=(0, conv.padding[0]),
        **({} if transposed else {"dilation": (1, conv.dilation[0])}),
    )
    out.weight.data = conv.weight.data.unsqueeze(2).clone()
    out.bias.data = conv.bias.data.clone()
    return out


class ChannelsLastGenerator(nn.Module):
    """HiFi-GAN V1 with its convolutions as 2-D ones over ``[B, C, 1, T]``, channels-last:
    the same arithmetic in the layout oneDNN prefers."""

    def __init__(self, g: HifiGanGenerator) -> None:
        super().__init__()
        self.num_kernels = g.num_kernels
        self.conv_pre = _as_2d(g.conv_pre)
        self.ups = nn.ModuleList(_as_2d(u) for u in g.ups)
        self.resblocks = nn.ModuleList(
            nn.ModuleList(
                nn.ModuleList(_as_2d(c) for c in convs) for convs in (rb.convs1, rb.convs2)
            )
            for rb in g.resblocks
        )
        self.conv_post = _as_2d(g.conv_post)
        self.to(memory_format=torch.channels_last).eval()

    def _resblock(self, i: int, x: torch.Tensor) -> torch.Tensor:
        convs1, convs2 = self.resblocks[i]
        for c1, c2 in zip(convs1, convs2, strict=True):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            k = self.num_kernels
            acc = self._resblock(i * k, x)
            for j in range(i * k + 1, (i + 1) * k):
                acc = acc + self._resblock(j, x)
            x = acc / k
        x = torch.tanh(self.conv_post(F.leaky_relu(x, LRELU_SLOPE_POST)))
        return x.reshape(x.shape[0], -1)


def _torch_run(module: nn.Module, autocast: bool = False) -> Run:
    def run(mel: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            if autocast:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    out = module(mel)
            else:
                out = module(mel)
            return out.float().reshape(-1).numpy()

    return run


def _onnx_run(g: HifiGanGenerator, mel: torch.Tensor) -> Run:
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise RuntimeError(f"onnxruntime is not importable ({err})") from err
    buf = io.BytesIO()
    with torch.inference_mode():
        torch.onnx.export(
            g,
            (mel[:, :, :64],),
            buf,
            input_names=["mel"],
            output_names=["audio"],
            dynamic_axes={"mel": {2: "frames"}, "audio": {1: "samples"}},
            opset_version=17,
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(buf.getvalue(), options, providers=["CPUExecutionProvider"])

    def run(m: torch.Tensor) -> np.ndarray:
        return session.run(None, {"mel": m.numpy()})[0].reshape(-1)

    return run


def build_variant(name: str, g: HifiGanGenerator, mel: torch.Tensor) -> Run:
    """The runner of one variant for ``g`` on CPU (``mel`` sizes what needs a shape)."""
    if name == "float32":
        return _torch_run(g)
    if name == "bf16_autocast":
        return _torch_run(g, autocast=True)
    if name == "mixed_bf16":
        return _torch_run(g.mixed_precision())
    if name == "channels_last":
        return _torch_run(ChannelsLastGenerator(g))
    if name == "onnxruntime":
        return _onnx_run(g, mel)
    if name == "torch_compile":
        return _torch_run(torch.compile(g, dynamic=False))
    raise ValueError(f"unknown variant {name!r}: one of {', '.join(VARIANTS)}")


def measure_vocoder_variants(
    generator: HifiGanGenerator | None = None,
    *,
    audio: np.ndarray | None = None,
    seconds: float = DEFAULT_SECONDS,
    variants: Sequence[str] = VARIANTS,
    repeat: int = 5,
) -> dict:
    """Each variant's cost and output difference on ``seconds`` of ``audio``'s mel (default:
    the Piper joe voice reading the vocoder bench text). A variant that cannot be built
    here (no compiler, no exporter) is reported with its error, not left out."""
    if generator is None:
        from vcstream.vocoder import load_vocoder

        generator = load_vocoder(device="cpu")
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    if "float32" not in variants:
        variants = ("float32", *variants)
    if audio is None:
        audio = speech_audio()
    mel = mel_spectrogram(audio)[:, : max(1, round(seconds * SAMPLE_RATE_HZ / HOP))]
    mel = mel.unsqueeze(0).contiguous()
    audio_s = mel.shape[2] * HOP / SAMPLE_RATE_HZ
    runs: dict[str, Run] = {}
    rows: dict[str, dict] = {}
    outputs: dict[str, np.ndarray] = {}
    for name in variants:
        t0 = time.perf_counter()
        try:
            run = build_variant(name, generator, mel)
            outputs[name] = run(mel)  # warm-up (compiles, allocates), and the output
        except Exception as err:  # a variant this machine cannot build is a finding
            rows[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
            continue
        runs[name] = run
        rows[name] = {"prepare_s": round(time.perf_counter() - t0, 2)}
    wall: dict[str, list[float]] = {n: [] for n in runs}
    cpu: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            run(mel)
            wall[name].append(1000 * (time.perf_counter() - t0) / audio_s)
            cpu[name].append(1000 * (time.process_time() - c0) / audio_s)
    ref = outputs["float32"]
    base_wall = statistics.median(wall["float32"])
    base_cpu = statistics.median(cpu["float32"])
    for name in runs:
        out = outputs[name][: len(ref)]
        diff = difference_db(out, ref) if len(out) == len(ref) else float("nan")
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        rows[name].update(
            {
                "ms_per_audio_s": round(w, 1),
                "ms_per_audio_s_runs": [round(v, 1) for v in wall[name]],
                "cpu_ms_per_audio_s": round(c, 1),
                "speed_up": round(base_wall / w, 3),
                "cpu_speed_up": round(base_cpu / c, 3),
                "diff_db_vs_float32": None if diff == -np.inf else round(diff, 1),
                "lsd_db": round(log_spectral_distance_db(out, mel[0]), 3),
            }
        )
        same = diff <= SAME_SOUND_DB
        rows[name]["same_sound"] = bool(same)
        rows[name]["pays"] = bool(
            name != "float32" and same and min(base_wall / w, base_cpu / c) >= MIN_SPEED_UP
        )
    return {
        "audio_seconds": round(audio_s, 3),
        "repeat": repeat,
        "torch_threads": torch.get_num_threads(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "same_sound_db": SAME_SOUND_DB,
        "min_speed_up": MIN_SPEED_UP,
        "variants": rows,
    }


def vocoder_variants_table(report: dict):  # returns a rich Table
    from rich.table import Table

    bf16 = "native" if report["cpu_native_bf16"] else "NOT native on this CPU"
    table = Table(
        title=f"HiFi-GAN V1 variants on {report['audio_seconds']} s of speech, median of "
        f"{report['repeat']} interleaved rounds, {report['torch_threads']} threads (bf16 {bf16})"
    )
    for col in (
        "variant",
        "ms / audio s",
        "CPU ms / audio s",
        "speed-up",
        "CPU speed-up",
        "diff vs f32 dB",
        "LSD dB",
        "prepare s",
        "verdict",
    ):
        table.add_column(col, justify="right")
    for name, r in report["variants"].items():
        if "error" in r:
            table.add_row(name, *[""] * 7, f"unavailable: {r['error'][:60]}")
            continue
        diff = r["diff_db_vs_float32"]
        if name == "float32":
            verdict = "reference"
        elif r["pays"]:
            verdict = "pays"
        elif not r["same_sound"]:
            verdict = f"changes the sound (> {report['same_sound_db']:.0f} dB)"
        else:
            verdict = f"same sound, < {report['min_speed_up']}x"
        table.add_row(
            name,
            f"{r['ms_per_audio_s']:.0f}",
            f"{r['cpu_ms_per_audio_s']:.0f}",
            f"{r['speed_up']:.2f}x",
            f"{r['cpu_speed_up']:.2f}x",
            "identical" if diff is None else f"{diff:.1f}",
            f"{r['lsd_db']:.3f}",
            f"{r['prepare_s']:.1f}",
            verdict,
        )
    return table


def vocoder_variants_main(args) -> dict:
    """`vcstream bench --vocoder-variants`."""
    from vcstream.bench.report import console, machine_description
    from vcstream.config import load_config

    cfg = load_config(args.config)
    if cfg.device.cpu_threads > 0:
        torch.set_num_threads(cfg.device.cpu_threads)
    repeat = getattr(args, "repeat", None) or 5
    report = {"machine": machine_description(), **measure_vocoder_variants(repeat=repeat)}
    console().print(vocoder_variants_table(report))
    return report
