"""Unattended operation against the real daemon (real models): systemd notifications, a
watchdog that pings only while every engine loop makes progress, and recovery from faults.

systemd's end of sd_notify is a real AF_UNIX datagram socket (tests/notifyutil.py). Stalls
are injected at the edges: a listener that stops returning (the pacer), a synthesiser call
that hangs (synthesis), a capture device whose driver hangs (capture).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from netutil import daemon_config, wait_until
from notifyutil import NotifySocket

from vcstream.capture import SoundDeviceSource
from vcstream.daemon import start_daemon
from vcstream.hub import AudioFrame
from vcstream.liveness import Heartbeat, LoopWatch
from vcstream.sdnotify import Notifier
from vcstream.testing import FakeClock, FakeSoundDevice, FaultySynthesizer, RecordingPublisher
from vcstream.watchdog import ServiceWatchdog

WATCHDOG_USEC = 400_000  # pings every 0.2 s
LIMIT_S = 1.5  # the loop limit in these tests
SYNTH_LIMIT_S = 3.0  # the synthesis-call limit: a sentence's first chunk on a busy machine


@pytest.fixture(scope="module")
def runtime(voices_dir):
    from vcstream.app import build_runtime

    rt = build_runtime(daemon_config(voices_dir))
    return dataclasses.replace(rt, synthesizer=FaultySynthesizer(rt.synthesizer))


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(str(tmp_path / "notify"))
    yield sock
    sock.close()


def _config(voices_dir):
    cfg = daemon_config(voices_dir)
    cfg.watchdog.loop_stall_s = LIMIT_S
    cfg.watchdog.synth_stall_s = SYNTH_LIMIT_S
    return cfg


@pytest.fixture
def daemon(runtime, voices_dir, notify):
    d = start_daemon(
        _config(voices_dir), runtime, notifier=Notifier.from_env(notify.env(WATCHDOG_USEC))
    )
    yield d
    d.stop()


def _pings(notify: NotifySocket, since: float) -> int:
    return len(notify.times_of("WATCHDOG=1", since))


def _wait_status(notify: NotifySocket, prefix: str, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with notify._cond:
            for t, msg in notify.messages:
                if any(a.startswith("STATUS=" + prefix) for a in msg):
                    return t
            notify._cond.wait(0.1)
    raise TimeoutError(f"no STATUS={prefix}...; got {notify.assignments()[-6:]}")


def _assert_withheld(notify: NotifySocket, stalled_at: float, watch_s: float = 1.0) -> None:
    time.sleep(watch_s)
    late = notify.times_of("WATCHDOG=1", since=stalled_at)
    assert not late, f"{len(late)} watchdog pings after the stall was detected"


# ---- the rule, on a fake clock ---------------------------------------------------------
def test_loop_watch_idle_and_busy_limits():
    clock = FakeClock()
    beats = {"pacer": Heartbeat(clock.monotonic), "synth": Heartbeat(clock.monotonic)}
    watch = LoopWatch(beats, idle_limit_s=2.0, busy_limit_s=10.0, clock=clock.monotonic)
    clock.sleep(1.9)
    assert watch.stalled() == []
    beats["synth"].set_busy(True)  # entering a synthesis call counts as a beat
    clock.sleep(0.2)
    assert [s.name for s in watch.stalled()] == ["pacer"]
    beats["pacer"].beat()
    clock.sleep(5.0)  # a long synthesis step is still within the busy limit
    assert [s.name for s in watch.stalled()] == ["pacer"]
    beats["pacer"].beat()
    clock.sleep(5.1)
    stalled = watch.stalled()
    assert [(s.name, s.busy, s.limit_s) for s in stalled] == [
        ("pacer", False, 2.0),
        ("synth", True, 10.0),
    ]
    beats["synth"].set_busy(False)
    beats["pacer"].beat()
    assert watch.stalled() == []


def test_service_watchdog_pings_only_while_every_loop_beats(notify):
    clock = FakeClock()
    beats = {"pacer": Heartbeat(clock.monotonic), "capture": Heartbeat(clock.monotonic)}
    watch = LoopWatch(beats, idle_limit_s=1.0, busy_limit_s=5.0, clock=clock.monotonic)
    wd = ServiceWatchdog(Notifier.from_env(notify.env(2_000_000)), watch, describe=lambda: "idle")
    assert wd.interval_s == 1.0
    assert wd.tick() is True
    clock.sleep(1.5)
    beats["pacer"].beat()
    assert wd.tick() is False  # capture has not beaten for 1.5 s
    assert wd.stats()["state"] == "stalled" and wd.stats()["stalled"] == ["capture"]
    beats["capture"].beat()
    assert wd.tick() is True
    notify.wait_for("STATUS=idle", timeout=5, since=0)
    time.sleep(0.2)
    assert notify.assignments() == [
        "WATCHDOG=1",
        "STATUS=idle",
        "STATUS=STALLED: capture loop stuck for 2 s (limit 1 s); watchdog ping withheld",
        "WATCHDOG=1",
        "STATUS=idle",
    ]
    assert wd.stats()["pings"] == 2 and wd.stats()["withheld"] == 1


# ---- the real daemon --------------------------------------------------------------------
def test_ready_periodic_watchdog_and_stopping(runtime, voices_dir, notify):
    t0 = time.monotonic()
    d = start_daemon(
        _config(voices_dir), runtime, notifier=Notifier.from_env(notify.env(WATCHDOG_USEC))
    )
    try:
        ready_at = notify.wait_for("READY=1", timeout=10)
        # READY comes once the sockets listen (start_daemon returns after that)
        assert ready_at >= t0
        statuses = [a for a in notify.assignments() if a.startswith("STATUS=")]
        assert statuses[0] == "STATUS=starting the engine and the network"
        assert any(s.startswith("STATUS=listening; idle;") for s in statuses), statuses
        # Idle for longer than the loop limit: waiting loops still count as progress.
        time.sleep(2 * LIMIT_S)
        pings = notify.times_of("WATCHDOG=1", since=ready_at)
        assert len(pings) >= 8, pings  # one per 0.2 s, allowing for a busy machine
        assert max(b - a for a, b in itertools.pairwise(pings)) < 1.0
        assert notify.times_of("WATCHDOG=1", since=0) == notify.times_of("WATCHDOG=1", ready_at)
        status = d.engine.status()
        assert status["watchdog"]["state"] == "ok" and status["watchdog"]["systemd"] is True
        assert set(status["watchdog"]["loops"]) == {"pacer", "synth", "capture"}
    finally:
        d.stop()
    stopping_at = notify.wait_for("STOPPING=1", timeout=10)
    time.sleep(0.5)
    assert not notify.times_of("WATCHDOG=1", since=stopping_at + 0.05)


def test_stuck_pacer_stops_the_pings(daemon, notify):
    ready_at = notify.wait_for("READY=1", timeout=10)
    gate = threading.Event()
    gate.set()

    def speaker(item):  # a playback edge whose write hangs
        if isinstance(item, AudioFrame):
            gate.wait()

    daemon.engine.hub.subscribe("hung-speaker", speaker)
    time.sleep(0.6)
    assert _pings(notify, ready_at) >= 2
    gate.clear()
    try:
        stalled_at = _wait_status(notify, "STALLED: pacer loop stuck", timeout=LIMIT_S + 5)
        _assert_withheld(notify, stalled_at)
        assert daemon.engine.extra_status["watchdog"]()["stalled"] == ["pacer"]
    finally:
        gate.set()
    resumed = notify.wait_for("WATCHDOG=1", timeout=5, since=stalled_at)
    assert resumed > stalled_at


def test_hung_synthesis_call_stops_the_pings_while_listeners_get_silence(daemon, notify, runtime):
    ready_at = notify.wait_for("READY=1", timeout=10)
    rec = RecordingPublisher(daemon.engine.hub)
    release = runtime.synthesizer.hang_next()
    try:
        daemon.engine.speak(request_id="hang", text="Hang.")
        rec.wait_for("started", "hang", timeout=10)
        stalled_at = _wait_status(notify, "STALLED: synth loop stuck", timeout=SYNTH_LIMIT_S + 5)
        assert _pings(notify, ready_at) >= 2
        frames_before = len(rec.frames)
        _assert_withheld(notify, stalled_at)
        # The pacer goes on: listeners get flagged silence, never a stall.
        new = rec.frames[frames_before:]
        assert len(new) >= 10 and all(f.silence for f in new)
        seqs = [f.seq for f in rec.frames]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert daemon.engine.extra_status["watchdog"]()["loops"]["synth"]["busy"] is True
    finally:
        release.set()
    rec.wait_for("done", "hang", timeout=30)
    notify.wait_for("WATCHDOG=1", timeout=5, since=stalled_at)


def test_vcstream_serve_under_a_notify_socket(tmp_path):
    """The real command as systemd runs it: READY after loading and listening, pings, and
    STOPPING on SIGTERM, to an abstract-namespace socket."""
    config = tmp_path / "vcstream.toml"
    config.write_text(
        '[device]\ncompute = "cpu"\n[capture]\nsource = "none"\n'
        f'[voices]\ndir = "{tmp_path / "voices"}"\n[log]\nlevel = "WARNING"\n'
        "[network.websocket]\nport = 0\n"
        '[network.zmq]\npub = "tcp://127.0.0.1:*"\nrouter = "tcp://127.0.0.1:*"\n'
    )
    notify = NotifySocket(abstract=True)
    env = {**os.environ, **notify.env(WATCHDOG_USEC), "WATCHDOG_PID": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vcstream", "serve", "--config", str(config)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        ready_at = notify.wait_for("READY=1", timeout=180)
        assert notify.assignments()[0] == "STATUS=loading models"
        notify.wait_for("WATCHDOG=1", timeout=10, since=ready_at)
        time.sleep(1.0)
        assert _pings(notify, ready_at) >= 3
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", timeout=20)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


# ---- capture recovery -----------------------------------------------------------------
def _capture_daemon(runtime, voices_dir, notify, device):
    cfg = _config(voices_dir)
    cfg.capture.source = "sounddevice"
    cfg.capture.stall_s = 0.3
    cfg.capture.retry_initial_s = 0.1
    cfg.capture.retry_max_s = 0.4
    source = SoundDeviceSource(cfg.capture, backend=device)
    return start_daemon(
        cfg, runtime, notifier=Notifier.from_env(notify.env(WATCHDOG_USEC)), source=source
    )


def test_capture_device_lost_degrades_retries_and_recovers(runtime, voices_dir, notify):
    device = FakeSoundDevice()
    d = _capture_daemon(runtime, voices_dir, notify, device)
    try:
        rec = RecordingPublisher(d.engine.hub)
        wait_until(lambda: d.engine.source.callbacks > 5, 10, "audio from the device")
        assert d.engine.status()["capture"]["state"] == "ok"
        device.unplug()
        lost = rec.wait_for("capture", timeout=10)
        assert lost.data["state"] == "degraded" and "no audio" in lost.data["reason"]
        wait_until(lambda: device.open_failures >= 3, 10, "three reopen attempts")
        capture = d.engine.status()["capture"]
        assert capture["state"] == "degraded" and capture["retries"] >= 3
        assert capture["next_retry_s"] <= 0.4 and capture["degraded_s"] > 0
        _wait_status(notify, "idle; capture degraded: ", 5)  # with the latest reason
        # Degraded is not wedged: the pings go on, and so does the rest of the daemon.
        since = time.monotonic()
        d.engine.speak(request_id="deg", text="Hi.")
        assert rec.wait_for("done", "deg", timeout=60).data["cancelled"] is False
        assert _pings(notify, since) >= 2
        device.plug()
        wait_until(lambda: d.engine.status()["capture"]["state"] == "ok", 10, "recovery")
        changes = [e.data for e in rec.events if e.type == "capture"]
        # one event per change of state or of reason: gone quiet, then cannot be opened
        assert [c["state"] for c in changes] == ["degraded", "degraded", "ok"]
        assert "cannot open input device" in changes[1]["reason"]
        assert d.engine.status()["capture"]["recoveries"] == 1
        heard = d.engine.source.callbacks
        wait_until(lambda: d.engine.source.callbacks > heard + 5, 10, "audio after recovery")
    finally:
        d.stop()


def test_capture_driver_that_hangs_stops_the_pings(runtime, voices_dir, notify):
    device = FakeSoundDevice()
    device.hang_on_close = threading.Event()
    d = _capture_daemon(runtime, voices_dir, notify, device)
    try:
        ready_at = notify.wait_for("READY=1", timeout=10)
        time.sleep(0.5)
        assert _pings(notify, ready_at) >= 2
        device.unplug()  # the supervisor closes the dead stream, and the close hangs
        stalled_at = _wait_status(notify, "STALLED: capture loop stuck", timeout=LIMIT_S + 5)
        _assert_withheld(notify, stalled_at)
        device.hang_on_close.set()
        notify.wait_for("WATCHDOG=1", timeout=5, since=stalled_at)
    finally:
        device.hang_on_close.set()
        d.stop()


# ---- a failing synthesis call fails one request --------------------------------------
SENTENCE = "The quick brown fox jumps over the lazy dog."


async def _listen_while_failing(daemon, runtime) -> tuple[list, dict]:
    """A WebSocket listener that sends four requests, the first three of which fail inside
    the synthesiser, and records every frame's header with its arrival time and every event,
    until the fourth is done."""
    from websockets.asyncio.client import connect

    from vcstream.net import protocol as p

    frames, events = [], {}
    async with connect(daemon.ws_url, max_size=2**20) as ws:
        await ws.recv()  # hello
        while not isinstance(await ws.recv(), bytes):  # the stream flows
            pass
        synth = runtime.synthesizer
        synth.fail_next(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), 1)
        synth.fail_next(RuntimeError("kernel exploded"))
        synth.fail_next(MemoryError())
        for rid, text in (("oom", SENTENCE), ("boom", "Hi."), ("mem", "Hi."), ("oom2", "Hi.")):
            await ws.send(json.dumps({"type": "speak", "id": rid, "text": text}))
        async with asyncio.timeout(120):
            while "oom2" not in events:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    header, pcm = p.decode_audio(msg)
                    frames.append((time.monotonic(), header, len(pcm)))
                    continue
                ev = json.loads(msg)
                if ev["type"] in ("done", "error") and ev.get("id"):
                    events[ev["id"]] = (time.monotonic(), ev)
    return frames, events


def test_synthesis_exception_or_oom_fails_that_request_and_the_stream_goes_on(daemon, runtime):
    frames, events = asyncio.run(_listen_while_failing(daemon, runtime))
    codes = {rid: ev.get("code", ev["type"]) for rid, (_, ev) in events.items()}
    assert codes == {
        "oom": "out_of_memory",
        "boom": "internal",
        "mem": "out_of_memory",
        "oom2": "done",
    }
    assert "RuntimeError" in events["boom"][1]["message"]
    # The OOM came after its first chunk (whether that played depends on timing); the last
    # request was spoken whole.
    heard = {
        rid: sum(n for _, h, n in frames if h.request_id == rid and not h.silence) for rid in codes
    }
    assert heard["boom"] == heard["mem"] == 0 and heard["oom2"] > 4000
    assert events["oom2"][1]["cancelled"] is False
    # The listener saw a steady stream throughout: no lost frame, no stall, and flagged
    # silence while nothing could be played.
    seqs = [h.seq for _, h, _ in frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    gaps = [b - a for (a, _, _), (b, _, _) in itertools.pairwise(frames)]
    worst = gaps.index(max(gaps))
    when = {rid: round(frames[worst][0] - t, 2) for rid, (t, _) in events.items()}
    assert max(gaps) < 1.0, f"the stream stalled for {max(gaps):.2f} s (vs. ends: {when})"
    # Between the first failure and the last request, the daemon published flagged silence
    # (by its own clock: WebSocket audio and events travel in separate queues). One frame the
    # pacer had taken just before the failure cleared the request's audio may trail it.
    failed_ns, started_ns = events["oom"][1]["timestamp_ns"], events["mem"][1]["timestamp_ns"]
    between = [h for _, h, _ in frames if failed_ns < h.timestamp_ns < started_ns]
    assert between and all(h.silence for h in between if h.request_id != "oom")
    assert sum(not h.silence for h in between if h.request_id == "oom") <= 1
    status = daemon.engine.status()
    assert status["counters"].get("synth_out_of_memory") == 2
    history = {row["id"]: row for row in status["history"]}
    assert history["oom"]["error"] == "out_of_memory" and history["boom"]["error"] == "internal"
    assert not daemon.engine._active  # every id is free again
