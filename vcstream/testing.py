"""Shipped fakes for the edges, so tests and users can run the pipeline without hardware.

* ``ArraySource`` / ``SineSource``: capture sources that put given audio in the ring.
* ``RecordingPublisher``: a hub listener that records frames and events and can wait.
* ``FakeClock``: a monotonic clock whose ``sleep`` advances time instantly.
* ``FakeSoundDevice``: a stand-in for the python-sounddevice module with one input device
  that can be unplugged, plugged in again, or made to hang when closed.
* ``FaultySynthesizer``: wraps a real synthesiser and injects a fault into its next call
  (an exception such as an out-of-memory, or a call that hangs).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from vcstream.hub import AudioFrame, Event, Hub
from vcstream.ringbuffer import SampleRing


class ArraySource:
    """Writes a whole array into its ring when started (unpaced): a file 'heard' at once."""

    def __init__(self, audio: np.ndarray, sample_rate_hz: int = 16000) -> None:
        self.name = "array"
        self.sample_rate_hz = sample_rate_hz
        self.audio = np.asarray(audio, dtype=np.float32)
        self.ring = SampleRing(max(len(self.audio), 1))

    def start(self) -> None:
        if len(self.audio):
            self.ring.write(self.audio)

    def stop(self) -> None:
        pass

    def stats(self) -> dict:
        return {"source": self.name, "xruns": 0, "dropped_samples": self.ring.dropped_samples}


class SineSource(ArraySource):
    def __init__(
        self,
        frequency_hz: float = 220.0,
        seconds: float = 2.0,
        amplitude: float = 0.3,
        sample_rate_hz: int = 16000,
    ) -> None:
        t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
        super().__init__(amplitude * np.sin(2 * np.pi * frequency_hz * t), sample_rate_hz)
        self.name = "sine"


class RecordingPublisher:
    """Records everything the hub publishes. Thread-safe; ``wait_for`` blocks on a condition."""

    def __init__(self, hub: Hub | None = None) -> None:
        self._cond = threading.Condition()
        self.frames: list[AudioFrame] = []
        self.events: list[Event] = []
        if hub is not None:
            hub.subscribe("recorder", self.offer)

    def offer(self, item: AudioFrame | Event) -> None:
        with self._cond:
            if isinstance(item, AudioFrame):
                self.frames.append(item)
            else:
                self.events.append(item)
            self._cond.notify_all()

    def find(self, type_: str, request_id: str | None = None) -> Event | None:
        with self._cond:
            for e in self.events:
                if e.type == type_ and (request_id is None or e.request_id == request_id):
                    return e
        return None

    def wait_for(self, type_: str, request_id: str | None = None, timeout: float = 30.0) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self.events:
                    if e.type == type_ and (request_id is None or e.request_id == request_id):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({e.type for e in self.events})
                    raise TimeoutError(f"no {type_!r} event for {request_id!r}; saw {seen}")
                self._cond.wait(left)

    def audio(self, request_id: str) -> np.ndarray:
        """The request's audio as a listener would record it: silence fill excluded."""
        with self._cond:
            parts = [f.pcm for f in self.frames if f.request_id == request_id and not f.silence]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class FakeClock:
    """``monotonic()`` and ``sleep()`` for paced code under test: sleeping advances time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)


class FaultySynthesizer:
    """A real synthesiser whose next calls can fail: ``fail_next`` raises the given exception
    after ``after_chunks`` good mel chunks, ``hang_next`` blocks before the first chunk until
    the returned event is set. Everything else is the wrapped synthesiser's."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self._faults: deque[tuple[BaseException | threading.Event, int]] = deque()
        self.calls = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def fail_next(self, error: BaseException, after_chunks: int = 0) -> None:
        self._faults.append((error, after_chunks))

    def hang_next(self) -> threading.Event:
        release = threading.Event()
        self._faults.append((release, 0))
        return release

    def synthesize(self, phonemes: Sequence[str], voice, controls) -> Iterator:
        self.calls += 1
        fault, after = self._faults.popleft() if self._faults else (None, 0)
        for i, mel in enumerate(self.inner.synthesize(phonemes, voice, controls)):
            if fault is not None and i == after:
                if isinstance(fault, threading.Event):
                    fault.wait()
                else:
                    raise fault
            yield mel


class FakeSoundDevice:
    """The part of python-sounddevice that ``SoundDeviceSource`` uses, with one microphone.

    While plugged in, an open stream calls its callback with ``audio`` (looped) in real-time
    paced blocks on its own thread, as PortAudio does. ``unplug()`` makes open streams go
    quiet (no callback, no error: what an ALSA USB microphone does when pulled) and opening
    fail; ``plug()`` lets it open again. ``hang_on_close`` makes ``close()`` block until it is
    set: a driver that hangs.
    """

    class PortAudioError(Exception):
        pass

    def __init__(self, audio: np.ndarray | None = None, sample_rate_hz: int = 16000) -> None:
        self.audio = (
            np.asarray(audio, np.float32)
            if audio is not None
            else (0.1 * np.sin(2 * np.pi * 220 * np.arange(sample_rate_hz) / sample_rate_hz))
        ).astype(np.float32)
        self.present = threading.Event()
        self.present.set()
        self.hang_on_close: threading.Event | None = None
        self.opened = 0
        self.open_failures = 0
        self.streams: list[FakeInputStream] = []

    def unplug(self) -> None:
        self.present.clear()

    def plug(self) -> None:
        self.present.set()

    def InputStream(self, **kwargs) -> FakeInputStream:  # sounddevice's name
        if not self.present.is_set():
            self.open_failures += 1
            raise self.PortAudioError("Error querying device -1")
        self.opened += 1
        stream = FakeInputStream(self, **kwargs)  # kwargs as sounddevice.InputStream takes
        self.streams.append(stream)
        return stream


class _NoFlags:
    input_overflow = input_underflow = False

    def __bool__(self) -> bool:
        return False


class FakeInputStream:
    def __init__(
        self, owner: FakeSoundDevice, *, samplerate, blocksize, callback, **_ignored
    ) -> None:
        self._device = owner
        self._block = int(blocksize)
        self._period = self._block / float(samplerate)
        self._callback = callback
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.closed = False

    def _run(self) -> None:
        audio, pos = self._device.audio, 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            if self._device.present.is_set():
                block = np.take(audio, np.arange(pos, pos + self._block), mode="wrap")
                pos = (pos + self._block) % len(audio)
                self._callback(block[:, None], self._block, None, _NoFlags())
            next_t += self._period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-portaudio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def close(self) -> None:
        self._stop.set()
        if self._device.hang_on_close is not None:
            self._device.hang_on_close.wait()
        self.closed = True
