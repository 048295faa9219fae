"""The Piper baseline as a Piper user runs it: ``piper.PiperVoice`` (piper-tts) speaking
en_US-joe-medium from text to audio, its own phonemizer and its own per-sentence streaming.

First audio is the first ``AudioChunk`` Piper yields (its first sentence, whole); the
real-time factor is the whole text's synthesis time over its audio length. No cloning and
no vocoder of ours: this is the speed a plain TTS reaches on the same machine.

One change from ``PiperVoice.load``: its ONNX Runtime session gets the thread count the
config gives vcstream and no spin-waiting (as ``synth/piper_backend.py`` runs it). With
onnxruntime's defaults, worker threads spin between runs; on the shared 2-core machine that
measured Piper about 1.2x slower (RTF 2.4-2.6 against 2.0-2.2 under heavy load), which would
flatter vcstream.
"""

from __future__ import annotations

import time

from vcstream.bench.timing import Run
from vcstream.errors import ModelMissingError

VOICE = "en_US-joe-medium"
_WARM_UP_TEXT = "Hello there."


class PiperBaseline:
    """``__call__(text) -> Run``: one timed end-to-end synthesis."""

    def __init__(self, threads: int = 0) -> None:
        """``threads``: ONNX Runtime intra-op threads (0: one per core)."""
        try:
            import onnxruntime as ort
            from piper import PiperVoice
        except ImportError as err:
            raise ModelMissingError(
                f"piper-tts is not importable ({err}): run `pip install piper-tts==1.8.0`"
            ) from err
        from vcstream.weights import piper_voice_files

        model, config = piper_voice_files()
        self.voice = PiperVoice.load(model, config)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.voice.session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.sample_rate_hz = self.voice.config.sample_rate
        self(_WARM_UP_TEXT)  # the first run of a session pays for its allocations

    def __call__(self, text: str) -> Run:
        t0 = time.perf_counter()
        first, samples = None, 0
        for chunk in self.voice.synthesize(text):
            if first is None:
                first = time.perf_counter() - t0
            samples += len(chunk.audio_float_array)
        total = time.perf_counter() - t0
        if first is None:
            raise RuntimeError(f"piper produced no audio for {text!r}")
        return Run(first, total, samples / self.sample_rate_hz)
