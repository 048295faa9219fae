"""Automatic re-adaptation (`[adapt] auto_every_s`): the live adapter starts a job by itself
once that much new voice has been heard (and at least `min_seconds` in all), never a second
one while one runs, and counts anew after a job starts or the voice is reset.

The adapter is the daemon's own, with the shipped FastPitch checkpoint; its adaptation
process is started for real and closed before it has adapted anything (the daemon test
covers a whole job)."""

from __future__ import annotations

import numpy as np
import pytest

from vcstream.adapt.live import SAMPLE_RATE_HZ, LiveAdapter
from vcstream.config import AdaptConfig
from vcstream.synth.fastpitch import checkpoint_id
from vcstream.weights import package_file


def _voice(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE_HZ))).astype(np.float32)


@pytest.fixture
def events() -> list[tuple[str, dict]]:
    return []


def _adapter(events: list, **settings) -> LiveAdapter:
    path = package_file("vcstream", "assets/fastpitch.pt")
    return LiveAdapter(
        AdaptConfig(**settings),
        lambda kind, data: events.append((kind, data)),
        checkpoint=str(path),
        checkpoint_id=checkpoint_id(path),
    )


def test_auto_adaptation_starts_after_enough_new_voice(events: list) -> None:
    adapter = _adapter(events, auto_every_s=3.0, min_seconds=2.0, max_wall_s=5.0, steps=2)
    try:
        adapter.feed(_voice(2.5))
        assert adapter.state()["state"] == "idle" and events == []  # 2.5 s < 3 s new
        adapter.feed(_voice(1.0))
        state = adapter.state()
        assert state["state"] == "adapting" and state["new_seconds"] == 0.0
        [(kind, data)] = events
        assert kind == "adapt_progress" and data["stage"] == "queued"
        assert data["reason"] == "auto" and data["seconds"] == pytest.approx(3.5)
        # More new voice while that job runs: no second job, no error for anyone.
        adapter.feed(_voice(4.0))
        assert adapter.state()["state"] == "adapting" and len(events) == 1
        assert adapter.state()["new_seconds"] == pytest.approx(4.0)
        # A reset forgets the voice: the count starts again from nothing.
        adapter.reset()
        adapter.feed(_voice(1.0))
        assert adapter.state()["new_seconds"] == pytest.approx(1.0)
        assert adapter.state()["state"] == "idle" and len(events) == 1
    finally:
        adapter.close()


def test_auto_adaptation_waits_for_min_seconds_and_is_off_by_default(events: list) -> None:
    # auto_every_s below min_seconds: the buffer must hold min_seconds first.
    waits = _adapter(events, auto_every_s=1.0, min_seconds=3.0)
    off = _adapter(events)  # auto_every_s = 0: only the `adapt` command starts a job
    try:
        waits.feed(_voice(2.0))
        off.feed(_voice(70.0))
        assert waits.state()["state"] == "idle" and off.state()["state"] == "idle"
        assert off.state()["voice_seconds"] == off.cfg.max_buffer_s  # drop-oldest ring
        assert events == []
    finally:
        waits.close()
        off.close()


SHUTDOWN = """
import numpy as np
from vcstream.adapt.live import SAMPLE_RATE_HZ, LiveAdapter
from vcstream.config import AdaptConfig
from vcstream.synth.fastpitch import checkpoint_id
from vcstream.weights import package_file

path = package_file("vcstream", "assets/fastpitch.pt")
adapter = LiveAdapter(AdaptConfig(min_seconds=2.0), lambda kind, data: None,
                      checkpoint=str(path), checkpoint_id=checkpoint_id(path))
adapter.feed(np.full(30 * SAMPLE_RATE_HZ, 0.1, np.float32))
adapter.request()  # the process is still loading its models: the job stays queued
adapter.close()
print("closed", adapter.state()["state"])
"""


def test_a_process_closed_with_a_job_queued_exits() -> None:
    """Closing while the adaptation process has not read its job yet (it loads models for
    seconds, minutes at low priority on a busy machine) must not hang the daemon's exit:
    the queued 30 s of audio fill the queue's pipe, and its feeder thread was joined at
    interpreter exit for ever."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", SHUTDOWN], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "closed adapting"
