"""A soak CI can afford: the real daemon for about 100 s under a looped microphone, a line
every 2 s from a well-behaved client, a listener that never reads and a flooder.

``VCSTREAM_SOAK_S`` sets the length (default 100 s: with the daemon's start-up about two
minutes, the CI budget for it); ``vcstream soak --minutes N`` runs the same load for longer
on a deployment.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from netutil import FIXTURES, daemon_config, running_daemon

from vcstream.app import build_runtime
from vcstream.soak import HEADER, format_sample, run_soak

# Frame cadence and response-time bounds: run alone, not beside other tests (make test).
pytestmark = pytest.mark.realtime

SOAK_S = float(os.environ.get("VCSTREAM_SOAK_S", "100"))
# Growth is measured over the second half: in the first, the models' first calls, thread
# pools and the allocator's arenas settle (measured on a loaded 2-core machine: +530 MB in
# the first 50 s, then +77 MB in steps over the next 60 s as arenas still grew).
RSS_GROWTH_MB = 128.0
# The load needs about 0.7 s of audio per 2 s from the client plus the flooder's turns: on a
# machine that synthesises slower than this, lines back up whatever the daemon does.
MAX_RTF = 0.8


def test_soak_holds_flat(tmp_path):
    cfg = daemon_config(tmp_path / "voices")
    cfg.capture.source = "file"
    cfg.capture.file = str(FIXTURES / "speech_joe.wav")
    cfg.capture.loop = True
    # The slow listener is dropped after 3 s of overflow (not 10): several times per soak.
    cfg.network.websocket.overflow_disconnect_seconds = 3.0
    runtime = build_runtime(cfg)
    print("\n" + HEADER)
    with running_daemon(cfg, runtime) as d:
        report = asyncio.run(
            run_soak(
                d.ws_url,
                SOAK_S,
                sample_s=10.0,
                on_sample=lambda s: print(format_sample(s), flush=True),
            )
        )
    samples = report.samples
    end = samples[-1]
    # Whatever the machine's speed: the load was real (the flooder refused, the slow listener
    # dropped), no frame was lost, and memory, threads and fds stayed flat in the second half.
    assert end.flood_refused > 0 and end.slow_dropped >= 1
    assert end.lost_frames == 0  # the well-behaved client lost no frame
    settled = [s for s in samples if s.t_s >= SOAK_S / 2]
    base = settled[0]
    assert end.rss_mb - base.rss_mb < RSS_GROWTH_MB, (base, end)
    assert max(s.threads for s in settled) - min(s.threads for s in settled) <= 2, settled
    assert max(s.fds for s in settled) - min(s.fds for s in settled) <= 2, settled
    if end.rtf is not None and end.rtf > MAX_RTF:
        pytest.skip(
            f"requests not checked: this machine synthesised at a real-time factor of "
            f"{end.rtf:.2f} (> {MAX_RTF}), too slow for a line every 2 s beside a flooder "
            f"({end.failed} of {end.ok + end.failed} lines failed); memory, threads, fds and "
            "frames were checked"
        )
    assert not report.failures, report.failures
    assert end.failed == 0 and end.ok >= 0.8 * SOAK_S / 2
