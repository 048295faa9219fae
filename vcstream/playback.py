"""Local loudspeaker output: a hub listener feeding a sound-device output stream."""

from __future__ import annotations

import logging

import numpy as np

from vcstream.capture import device_arg, import_sounddevice
from vcstream.errors import DeviceUnavailableError
from vcstream.hub import AudioFrame, Event
from vcstream.ringbuffer import SampleRing

log = logging.getLogger(__name__)


class SpeakerSink:
    """Plays published frames. Its ring is bounded (drop-oldest); the callback fills
    silence on underrun and counts it, never waiting."""

    def __init__(self, sample_rate_hz: int, device: str = "", buffer_seconds: float = 2.0) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.ring = SampleRing(int(buffer_seconds * sample_rate_hz))
        self._device = device_arg(device)
        self._stream = None
        self.underruns = 0
        self.output_underflows = 0

    def offer(self, item: AudioFrame | Event) -> None:
        if isinstance(item, AudioFrame):
            self.ring.write(item.pcm)

    def _callback(self, outdata: np.ndarray, frames: int, time_info, status) -> None:
        if status and status.output_underflow:
            self.output_underflows += 1
        out = outdata[:, 0]
        n = self.ring.read_into(out)
        if n < frames:
            out[n:] = 0.0
            self.underruns += 1

    def stats(self) -> dict:
        return {
            "underruns": self.underruns,
            "output_underflows": self.output_underflows,
            "dropped_samples": self.ring.dropped_samples,
        }

    def start(self) -> None:
        sd = import_sounddevice()
        try:
            self._stream = sd.OutputStream(
                samplerate=self.sample_rate_hz,
                channels=1,
                dtype="float32",
                device=self._device,
                callback=self._callback,
            )
            self._stream.start()
        except Exception as err:
            raise DeviceUnavailableError(f"cannot open output device: {err}") from err
        log.info("playing output on sound device %r", self._device)

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
