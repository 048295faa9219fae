"""Capture recovery without models: the real SoundDeviceSource on a fake sound device, and
the supervisor's backoff on a fake clock."""

from __future__ import annotations

import itertools
import time

from vcstream.capture import SoundDeviceSource
from vcstream.capture_supervisor import CaptureSupervisor
from vcstream.config import CaptureConfig
from vcstream.errors import DeviceUnavailableError
from vcstream.testing import FakeClock, FakeSoundDevice


def _cfg(**kw) -> CaptureConfig:
    return CaptureConfig(**{"stall_s": 2.0, "retry_initial_s": 1.0, "retry_max_s": 8.0, **kw})


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_device_absent_at_start_is_degraded_and_retried_with_backoff_until_it_comes():
    clock = FakeClock()
    device = FakeSoundDevice()
    device.unplug()
    source = SoundDeviceSource(_cfg(), backend=device, clock=clock.monotonic)
    changes = []
    sup = CaptureSupervisor(source, _cfg(), on_change=changes.append, clock=clock.monotonic)
    sup.start()  # never raises
    assert sup.state == "degraded" and "cannot open input device" in sup.reason
    assert sup.stats()["next_retry_s"] == 1.0
    retry_times = []
    for _ in range(60):  # 30 s of polls, two a second
        before = device.open_failures
        sup.poll()
        if device.open_failures > before:
            retry_times.append(clock.now)
        clock.sleep(0.5)
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(retry_times)]
    assert gaps[:4] == [2.0, 4.0, 8.0, 8.0]  # 1 s, then doubling, capped at retry_max_s
    assert sup.state == "degraded" and sup.retries == len(retry_times)
    device.plug()
    clock.sleep(8.0)
    sup.poll()
    assert sup.state == "ok" and sup.recoveries == 1 and "reason" not in sup.stats()
    assert [c["state"] for c in changes] == ["degraded", "ok"]
    _wait(lambda: source.callbacks > 3)
    sup.stop()


def test_a_device_that_goes_quiet_is_closed_reopened_and_resumes():
    clock = FakeClock()
    device = FakeSoundDevice()
    source = SoundDeviceSource(_cfg(), backend=device, clock=clock.monotonic)
    sup = CaptureSupervisor(source, _cfg(), clock=clock.monotonic)
    sup.start()
    assert sup.state == "ok"
    _wait(lambda: source.callbacks > 2)
    sup.poll()
    clock.sleep(1.0)
    sup.poll()
    assert sup.state == "ok"  # still delivering
    device.unplug()
    time.sleep(0.1)  # a block in flight may still arrive
    sup.poll()
    clock.sleep(2.5)
    sup.poll()
    assert sup.state == "degraded" and "no audio from the input device" in sup.reason
    assert device.streams[0].closed  # the dead stream was closed, not leaked
    device.plug()
    clock.sleep(1.0)
    sup.poll()
    assert sup.state == "ok" and sup.recoveries == 1 and device.opened == 2
    seen = source.ring.available()
    _wait(lambda: source.ring.available() > seen)  # audio flows into the same ring again
    # A second failure starts its backoff from the beginning again.
    device.unplug()
    time.sleep(0.1)
    sup.poll()
    clock.sleep(2.5)
    sup.poll()
    assert sup.state == "degraded" and sup.stats()["next_retry_s"] == 1.0
    assert sup.failures == 2
    sup.stop()


def test_a_stream_that_ends_by_itself_is_a_failure():
    device = FakeSoundDevice()
    source = SoundDeviceSource(_cfg(), backend=device)
    source.start()
    assert source.check() is None
    source._finished()  # PortAudio's finished callback: the stream stopped on an error
    assert "stopped" in source.check()
    source.stop()
    assert source.check() == "input stream is not open"


def test_missing_portaudio_is_a_degraded_capture_that_says_what_to_install(monkeypatch):
    import vcstream.capture as capture

    def no_portaudio():
        raise DeviceUnavailableError("PortAudio library not found: install libportaudio2")

    monkeypatch.setattr(capture, "import_sounddevice", no_portaudio)
    sup = CaptureSupervisor(SoundDeviceSource(_cfg()), _cfg())
    sup.start()
    assert sup.state == "degraded" and "install libportaudio2" in sup.reason
