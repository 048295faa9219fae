"""Voice input edges: a sound device, a WAV file paced in real time, or nothing.

Each source writes float32 mono at ``sample_rate_hz`` into its own preallocated
``SampleRing``; the engine's embedder thread reads from that ring. Sources are chosen
from the ``[capture]`` config by ``open_source``. A source that can fail while running (a
sound device that is unplugged) has ``check()``, which names the fault or returns None; the
engine's ``CaptureSupervisor`` polls it and reopens the source with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from vcstream.audio.io import read_wav, resample
from vcstream.config import CaptureConfig
from vcstream.errors import DeviceUnavailableError, InputError
from vcstream.ringbuffer import SampleRing

log = logging.getLogger(__name__)


class CaptureSource(Protocol):
    name: str
    sample_rate_hz: int
    ring: SampleRing

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def stats(self) -> dict: ...


def import_sounddevice():
    """Import python-sounddevice, turning a missing PortAudio into a clear error."""
    try:
        import sounddevice
    except OSError as err:  # raised when libportaudio cannot be loaded
        raise DeviceUnavailableError(
            "PortAudio library not found: install Debian package libportaudio2 "
            "(`apt-get install libportaudio2`) to use sound devices"
        ) from err
    return sounddevice


def device_arg(device: str) -> int | str | None:
    """A config device string to PortAudio's argument: index, name, or None for default."""
    if device == "":
        return None
    return int(device) if device.isdigit() else device


class SoundDeviceSource:
    """Microphone input. The callback only copies into the ring and counts status flags.

    ``backend`` is the python-sounddevice module (imported at ``start``) or a stand-in with
    its ``InputStream`` (``vcstream.testing.FakeSoundDevice``).
    """

    def __init__(
        self,
        cfg: CaptureConfig,
        *,
        backend=None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = "sounddevice"
        self.sample_rate_hz = cfg.sample_rate_hz
        self.ring = SampleRing(int(cfg.ring_seconds * cfg.sample_rate_hz))
        self._block = int(cfg.sample_rate_hz * cfg.block_ms / 1000)
        self._device = device_arg(cfg.device)
        self._backend = backend
        self._clock = clock
        self._stall_s = cfg.stall_s
        self._stream = None
        self._ended = False  # set by PortAudio's thread when the stream stops by itself
        self._seen_callbacks = 0
        self._seen_t = 0.0
        self.input_overflows = 0
        self.input_underflows = 0
        self.callbacks = 0

    def _callback(self, indata: np.ndarray, frames: int, time_info, status) -> None:
        # Runs on PortAudio's thread: no locks, no allocation beyond the slice view, no logging.
        if status:
            if status.input_overflow:
                self.input_overflows += 1
            if status.input_underflow:
                self.input_underflows += 1
        self.ring.write(indata[:, 0])
        self.callbacks += 1

    def _finished(self) -> None:
        self._ended = True

    def start(self) -> None:
        sd = self._backend or import_sounddevice()
        self._ended = False
        stream = None
        try:
            stream = sd.InputStream(
                samplerate=self.sample_rate_hz,
                blocksize=self._block,
                device=self._device,
                channels=1,
                dtype="float32",
                callback=self._callback,
                finished_callback=self._finished,
            )
            stream.start()
        except Exception as err:  # PortAudioError, ValueError for unknown devices
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            raise DeviceUnavailableError(f"cannot open input device: {err}") from err
        self._stream = stream
        self._seen_callbacks, self._seen_t = self.callbacks, self._clock()
        log.info("capturing from sound device %r at %d Hz", self._device, self.sample_rate_hz)

    def check(self) -> str | None:
        """Why the device is not delivering audio, or None while it is."""
        if self._stream is None:
            return "input stream is not open"
        if self._ended:
            return "input stream stopped (device error or removed)"
        now = self._clock()
        if self.callbacks != self._seen_callbacks:
            self._seen_callbacks, self._seen_t = self.callbacks, now
            return None
        if now - self._seen_t > self._stall_s:
            # An unplugged USB microphone often just goes quiet: no callback, no error.
            return f"no audio from the input device for {now - self._seen_t:.1f} s"
        return None

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()

    def stats(self) -> dict:
        return {
            "source": self.name,
            "xruns": self.input_overflows + self.input_underflows,
            "input_overflows": self.input_overflows,
            "input_underflows": self.input_underflows,
            "dropped_samples": self.ring.dropped_samples,
        }


class WavFileSource:
    """A WAV file played into the ring in real time (optionally looped): a stand-in mic."""

    def __init__(
        self,
        cfg: CaptureConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not cfg.file:
            raise InputError("capture.source is 'file' but capture.file is empty")
        audio, sr = read_wav(cfg.file)
        self.name = "file"
        self.path = cfg.file
        self.sample_rate_hz = cfg.sample_rate_hz
        self.audio = resample(audio, sr, cfg.sample_rate_hz)
        self.loop = cfg.loop
        self.ring = SampleRing(int(cfg.ring_seconds * cfg.sample_rate_hz))
        self._block = int(cfg.sample_rate_hz * cfg.block_ms / 1000)
        self._clock, self._sleep = clock, sleep
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.finished = threading.Event()
        self.blocks = 0

    def _run(self) -> None:
        period = self._block / self.sample_rate_hz
        pos, next_t = 0, self._clock()
        while not self._stop.is_set():
            if pos >= len(self.audio):
                if not self.loop:
                    break
                pos = 0
            self.ring.write(self.audio[pos : pos + self._block])
            pos += self._block
            self.blocks += 1
            next_t += period
            delay = next_t - self._clock()
            if delay > 0:
                self._sleep(delay)
        self.finished.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="capture-file", daemon=True)
        self._thread.start()
        log.info("capturing from file %s (loop=%s)", self.path, self.loop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def stats(self) -> dict:
        return {"source": self.name, "xruns": 0, "dropped_samples": self.ring.dropped_samples}


class NullSource:
    """No voice input: the daemon serves the network only."""

    def __init__(self, cfg: CaptureConfig, reason: str = "") -> None:
        self.name = "none"
        self.reason = reason
        self.sample_rate_hz = cfg.sample_rate_hz
        self.ring = SampleRing(1)

    def start(self) -> None:
        log.info("no capture source: voice comes only from saved profiles")

    def stop(self) -> None:
        pass

    def stats(self) -> dict:
        out = {"source": self.name, "xruns": 0, "dropped_samples": 0}
        if self.reason:
            out["reason"] = self.reason
        return out


def open_source(cfg: CaptureConfig) -> CaptureSource:
    """Choose the capture edge named by ``cfg.source``."""
    if cfg.source == "sounddevice":
        return SoundDeviceSource(cfg)
    if cfg.source == "file":
        return WavFileSource(cfg)
    if cfg.source == "none":
        return NullSource(cfg)
    raise InputError(f"unknown capture source {cfg.source!r} (use sounddevice, file or none)")
