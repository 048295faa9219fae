"""End to end through the real command line: `vcstream say`, `embed`, `voices`.

The speech `say` writes is transcribed by the bundled Whisper model and must read back as
the text (character error rate at most 10%).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vcstream.asr import Transcriber, character_error_rate
from vcstream.audio.io import read_wav, write_wav

FIXTURES = Path(__file__).parent / "fixtures"
REF = FIXTURES / "speech_slt.wav"
TEXT = "The quick brown fox jumps over the lazy sleeping dog."


def run_cli(*args: str, env_extra: dict | None = None, timeout: float = 300):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "vcstream", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def transcriber():
    return Transcriber()


@pytest.fixture(scope="module")
def voices_env(tmp_path_factory):
    return {"XDG_DATA_HOME": str(tmp_path_factory.mktemp("xdg"))}


def test_say_is_intelligible_and_reports_timings(tmp_path, transcriber):
    out = tmp_path / "out.wav"
    proc = run_cli("say", "--reference", str(REF), "--text", TEXT, "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"time_to_first_audio_ms", "rtf", "audio_seconds"} <= report.keys()
    audio, sr = read_wav(out)
    assert sr == 22050
    assert report["audio_seconds"] == pytest.approx(len(audio) / sr, abs=1e-3)
    assert report["time_to_first_audio_ms"] > 0 and report["rtf"] > 0
    heard = transcriber.transcribe(audio, sr)
    cer = character_error_rate(TEXT, heard)
    assert cer <= 0.10, f"Whisper heard {heard!r} (CER {cer:.2%})"


def test_say_without_a_voice_speaks_in_the_default_voice(tmp_path, transcriber):
    out = tmp_path / "default.wav"
    proc = run_cli("say", "--text", TEXT, "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["synthesizer"] == "fastpitch"
    audio, sr = read_wav(out)
    cer = character_error_rate(TEXT, transcriber.transcribe(audio, sr))
    assert cer <= 0.10


def test_embed_voices_and_say_with_phonemes(tmp_path, transcriber, voices_env):
    proc = run_cli("embed", str(REF), "--save", "slt", env_extra=voices_env)
    assert proc.returncode == 0, proc.stderr
    listing = run_cli("voices", "--json", env_extra=voices_env)
    assert listing.returncode == 0, listing.stderr
    [entry] = json.loads(listing.stdout)
    assert entry["name"] == "slt" and entry["voiced_seconds"] > 3 and entry["created"]
    assert entry["model"]

    out = tmp_path / "ph.wav"
    phonemes = "ɡʊd mˈɔːɹnɪŋ, ˈɛvɹɪwˌʌn."
    proc = run_cli(
        "say", "--voice", "slt", "--phonemes", phonemes, "-o", str(out), env_extra=voices_env
    )
    assert proc.returncode == 0, proc.stderr
    audio, sr = read_wav(out)
    cer = character_error_rate("good morning everyone", transcriber.transcribe(audio, sr))
    assert cer <= 0.15


def _silence(tmp_path: Path) -> Path:
    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(3 * 16000, np.float32), 16000)
    return path


def _corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunk")
    return path


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t: ["--reference", str(t / "missing.wav"), "--text", TEXT], "no such file"),
        (lambda t: ["--reference", str(_corrupt(t)), "--text", TEXT], "corrupt"),
        (lambda t: ["--reference", str(_silence(t)), "--text", TEXT], "no voice found"),
        (lambda t: ["--reference", str(REF), "--text", "   "], "empty"),
        (lambda t: ["--reference", str(REF), "--phonemes", "hɛloʊ ☃ Ж"], "unknown phoneme"),
        (lambda t: ["--voice", "nobody", "--text", TEXT], "unknown voice 'nobody'"),
        (lambda t: ["--voice", "x", "--reference", str(REF), "--text", TEXT], "not both"),
        (lambda t: ["--convert", "stats", "--text", TEXT], "--convert needs --reference"),
    ],
    ids=["missing-wav", "corrupt-wav", "silence-only", "empty-text", "unknown-phonemes",
         "unknown-voice", "voice-and-reference", "convert-without-reference"],
)  # fmt: skip
def test_bad_input_gives_one_line_error(tmp_path, voices_env, make_args, message):
    proc = run_cli("say", *make_args(tmp_path), "-o", str(tmp_path / "x.wav"), env_extra=voices_env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0].lower(), proc.stderr
    assert not (tmp_path / "x.wav").exists()
