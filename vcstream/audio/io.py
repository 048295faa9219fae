"""WAV reading and writing, resampling. Internal audio is float32 mono in [-1, 1]."""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import numpy as np

from vcstream.errors import AudioFileError

_MAX_WAV_SECONDS = 15 * 60  # refuse absurd files rather than exhaust memory


def decode_wav(data: bytes, *, name: str = "<bytes>") -> tuple[np.ndarray, int]:
    """Decode WAV bytes (PCM 8/16/24/32-bit or IEEE float) to float32 mono."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFileError(f"{name}: not a WAV file (no RIFF/WAVE header)")
    fmt_tag = _wav_format_tag(data)
    if fmt_tag == 3:  # IEEE float: the wave module refuses it, parse by hand
        return _decode_float_wav(data, name)
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            if rate <= 0 or channels <= 0:
                raise AudioFileError(f"{name}: invalid WAV header (rate {rate}, {channels} ch)")
            if frames > _MAX_WAV_SECONDS * rate:
                raise AudioFileError(f"{name}: longer than {_MAX_WAV_SECONDS} s, refused")
            raw = w.readframes(frames)
    except (wave.Error, EOFError, ValueError, RuntimeError, struct.error) as err:
        raise AudioFileError(f"{name}: corrupt or unsupported WAV ({err})") from err
    usable = len(raw) - len(raw) % (width * channels)
    raw = raw[:usable]
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = v.astype(np.float32) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / float(1 << 31)
    else:
        raise AudioFileError(f"{name}: unsupported sample width {width} bytes")
    x = x.reshape(-1, channels).mean(axis=1) if channels > 1 else x
    if x.size == 0:
        raise AudioFileError(f"{name}: WAV holds no audio samples")
    return np.ascontiguousarray(x, dtype=np.float32), rate


def _wav_format_tag(data: bytes) -> int:
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if cid == b"fmt " and pos + 10 <= len(data):
            return int.from_bytes(data[pos + 8 : pos + 10], "little")
        pos += 8 + size + (size & 1)
    return 1


def _decode_float_wav(data: bytes, name: str) -> tuple[np.ndarray, int]:
    pos, channels, rate, bits, payload = 12, 0, 0, 0, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            channels = int.from_bytes(body[2:4], "little")
            rate = int.from_bytes(body[4:8], "little")
            bits = int.from_bytes(body[14:16], "little")
        elif cid == b"data":
            payload = body
        pos += 8 + size + (size & 1)
    if payload is None or channels <= 0 or rate <= 0 or bits not in (32, 64):
        raise AudioFileError(f"{name}: corrupt float WAV")
    dtype = "<f4" if bits == 32 else "<f8"
    step = bits // 8 * channels
    x = np.frombuffer(payload[: len(payload) - len(payload) % step], dtype).astype(np.float32)
    x = x.reshape(-1, channels).mean(axis=1)
    if x.size == 0:
        raise AudioFileError(f"{name}: WAV holds no audio samples")
    return np.clip(x, -1.0, 1.0), rate


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a WAV file as float32 mono; ``AudioFileError`` with a clear message otherwise."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError as err:
        raise AudioFileError(f"{p}: no such file") from err
    except IsADirectoryError as err:
        raise AudioFileError(f"{p}: is a directory, not a WAV file") from err
    except OSError as err:
        raise AudioFileError(f"{p}: cannot read ({err.strerror})") from err
    return decode_wav(data, name=str(p))


def to_pcm16(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] to 16-bit little-endian PCM bytes (clipped, rounded)."""
    x = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return np.round(x * 32767.0).astype("<i2").tobytes()


def from_pcm16(data: bytes) -> np.ndarray:
    return np.frombuffer(data[: len(data) - len(data) % 2], "<i2").astype(np.float32) / 32768.0


def encode_wav(audio: np.ndarray, sample_rate_hz: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate_hz))
        w.writeframes(to_pcm16(audio))
    return buf.getvalue()


def write_wav(path: str | Path, audio: np.ndarray, sample_rate_hz: int) -> None:
    """Write 16-bit mono WAV atomically (temp file then rename)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_bytes(encode_wav(audio, sample_rate_hz))
    tmp.replace(p)


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample float32 mono with resampy (kaiser_best)."""
    if sr_in == sr_out:
        return np.asarray(audio, dtype=np.float32)
    import resampy

    return resampy.resample(np.asarray(audio, dtype=np.float32), sr_in, sr_out).astype(np.float32)
