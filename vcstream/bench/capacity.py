"""`vcstream bench --capacity`: how many real-time output streams this machine sustains.

What one stream is: the engine synthesises one request at a time into one paced output
(one voice, broadcast to every listener), so N listeners of one daemon are still one stream.
N concurrent streams therefore means N daemons on this machine, each with one WebSocket
client asking for speech at the same moment, as N performers' daemons would run side by
side. Each daemon is, by default, its own `vcstream serve` process, as deployed (each loads
its own models; unless ``[device] cpu_threads`` is set, N daemons share the cores out, each
on cores / N torch threads, restarted when that changes: N daemons each spreading every
convolution over all cores mostly wait for each other);
``daemons="thread"`` runs them in this process sharing one set of loaded
models (the test's tiny configuration; its threads also share one interpreter).

A level N passes when, for every stream, no frame of the request arrives later than one
frame period behind the cadence set by its first frame (arrival k at or before
``first + k * period + period``), no silence frame stands in for the request's audio (an
underrun: synthesis fell behind the pacer), the request ends with ``done`` and its audio
is as long as the daemon says. The search goes N = 1, 2, 3, ... and stops at the first
level that fails (or at ``max_streams``); the capacity is the last level that passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vcstream.bench.sentences import TEXTS

DEFAULT_MAX_STREAMS = 8
WARM_UP_TEXT = "Hello there."
# Issue #10's targets: at least this many streams per quality on the 2-core machine.
TARGET_STREAMS = {"full": 2, "lite": 4}


@dataclass
class StreamLog:
    """Arrival (perf_counter seconds) of every frame of one request, as a client saw it."""

    request_id: str
    arrivals: list[float] = field(default_factory=list)
    silent: list[bool] = field(default_factory=list)
    stamps_ns: list[int] = field(default_factory=list)  # the daemon's send stamps (monotonic)
    samples: int = 0

    def add(self, now: float, silent: bool, samples: int, stamp_ns: int | None = None) -> None:
        self.arrivals.append(now)
        self.silent.append(silent)
        if stamp_ns is not None:
            self.stamps_ns.append(stamp_ns)
        if not silent:
            self.samples += samples


def judge_stream(log: StreamLog, period_s: float, sent_s: float) -> dict[str, Any]:
    """One stream's figures and whether it kept real time (see the module docstring).
    Frames before the first audible one are the wait for first audio, not underruns."""
    audible = [i for i, s in enumerate(log.silent) if not s]
    if not audible:
        return {"ok": False, "frames": len(log.arrivals), "reason": "no audio arrived"}
    start = audible[0]
    arrivals, silent = log.arrivals[start:], log.silent[start:]
    late_s = [a - (arrivals[0] + k * period_s) for k, a in enumerate(arrivals)]
    # The same cadence by the daemon's own stamps: how much of the lateness is its pacer's
    # (the rest is the transport's and this client's).
    stamps = [t / 1e9 for t in log.stamps_ns[start:]]
    pacer_late_s = [t - (stamps[0] + k * period_s) for k, t in enumerate(stamps)]
    underruns = sum(silent)
    worst = max(late_s)
    reasons = []
    if worst > period_s:
        reasons.append(f"a frame {1000 * worst:.0f} ms behind the cadence")
    if underruns:
        reasons.append(f"{underruns} underrun frames")
    return {
        "ok": not reasons,
        "reason": "; ".join(reasons) or None,
        "frames": len(arrivals),
        "underrun_frames": underruns,
        "max_late_ms": round(1000 * worst, 1),
        "pacer_max_late_ms": round(1000 * max(pacer_late_s), 1) if pacer_late_s else None,
        "time_to_first_audio_ms": round(1000 * (arrivals[0] - sent_s), 1),
        "audio_seconds": None,  # set by the caller, who knows the sample rate
    }


async def _speak_all(
    clients: list, text: str, period_s: float, timeout_s: float = 600.0
) -> list[dict[str, Any]]:
    """Every client asks for ``text`` at once; each stream judged on its own frames."""
    logs: list[StreamLog] = []
    for i, client in enumerate(clients):
        log = StreamLog(f"cap{i}")
        logs.append(log)

        def on_audio(header, pcm, now, log=log) -> None:
            if header.request_id == log.request_id:
                log.add(now, header.silence, len(pcm), header.timestamp_ns)

        client.stream.on_audio = on_audio

    async def speak(client, log: StreamLog):
        try:
            return await client.speak(text, request_id=log.request_id, timeout=timeout_s)
        except TimeoutError:
            return None

    try:
        pairs = zip(clients, logs, strict=True)
        results = await asyncio.gather(*(speak(c, g) for c, g in pairs))
    finally:
        for client in clients:
            client.stream.on_audio = None
    streams = []
    for result, log in zip(results, logs, strict=True):
        if result is None:
            streams.append({"ok": False, "reason": f"not done in {timeout_s:.0f} s"})
            continue
        row = judge_stream(log, period_s, result.sent_s)
        if result.error is not None:
            row.update(ok=False, reason=f"error: {result.error.get('message')}")
        elif result.done is None:
            row.update(ok=False, reason="no done event")
        if result.sample_rate_hz:
            row["audio_seconds"] = round(log.samples / result.sample_rate_hz, 3)
        streams.append(row)
    return streams


class _Daemons:
    """Daemons started one at a time as the search climbs, each with its WebSocket client."""

    def __init__(self, cfg, rt, daemons: str) -> None:
        from vcstream.bench.daemons import loopback_config

        if daemons not in ("process", "thread"):
            raise ValueError(f"daemons must be 'process' or 'thread', not {daemons!r}")
        self.cfg, self.rt, self.kind = loopback_config(cfg), rt, daemons
        # 0: share the cores out (threads_for); the daemons start with self.cfg's count.
        self.fixed_threads = cfg.device.cpu_threads
        self.running: list = []
        self.clients: list = []
        self._tmp = tempfile.TemporaryDirectory(prefix="vcstream-capacity-")

    def threads_for(self, n: int) -> int:
        """Torch threads of each of ``n`` process daemons: the configured count, else the
        cores shared out (N daemons each spreading every convolution over all the cores
        mostly wait for each other)."""
        return self.fixed_threads or max(1, (os.cpu_count() or 1) // n)

    async def grow(self, n: int) -> None:
        import copy

        from vcstream.net.client import WsClient

        if self.kind == "process" and self.threads_for(n) != self.cfg.device.cpu_threads:
            await self.close_daemons()  # restarted with their share of the cores
            self.cfg.device.cpu_threads = self.threads_for(n)
        while len(self.running) < n:
            if self.kind == "thread":
                from vcstream.daemon import start_daemon

                d = await asyncio.to_thread(start_daemon, copy.deepcopy(self.cfg), self.rt)
            else:
                from vcstream.bench.daemons import DaemonProcess

                workdir = Path(tempfile.mkdtemp(dir=self._tmp.name))
                d = DaemonProcess(copy.deepcopy(self.cfg), workdir)
                self.running.append(d)  # stopped even if it never becomes ready
                await asyncio.to_thread(d.wait_ready)
                self.running.pop()
            self.running.append(d)
            client = WsClient(d.ws_url)
            await client.connect()
            self.clients.append(client)
            # Each engine's first request pays for its allocations; not the machine's limit.
            r = await client.speak(WARM_UP_TEXT)
            if r.error is not None:
                raise RuntimeError(f"capacity daemon {len(self.running)} failed: {r.error}")

    async def close_daemons(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        for d in self.running:
            await asyncio.to_thread(d.stop)
        self.clients, self.running = [], []

    async def close(self) -> None:
        await self.close_daemons()
        self._tmp.cleanup()


def measure_capacity(
    cfg,
    rt,
    *,
    text: str | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    daemons: str = "process",
) -> dict[str, Any]:
    """Search N = 1, 2, ... (see the module docstring). ``rt`` (the runtime of ``cfg``)
    serves the daemons when ``daemons="thread"``; process daemons load their own."""
    if max_streams < 1:
        raise ValueError(f"max_streams must be at least 1, got {max_streams}")
    text = text or TEXTS["long"]
    period_s = cfg.output.frame_ms / 1000.0
    levels: list[dict[str, Any]] = []

    async def search() -> None:
        pool = _Daemons(cfg, rt, daemons)
        try:
            for n in range(1, max_streams + 1):
                await pool.grow(n)
                streams = await _speak_all(pool.clients[:n], text, period_s)
                ok = all(s["ok"] for s in streams)
                level = {"streams": n, "ok": ok, "per_stream": streams}
                if daemons == "process":
                    level["torch_threads_per_daemon"] = pool.cfg.device.cpu_threads
                levels.append(level)
                if not ok:
                    break
        finally:
            await pool.close()

    asyncio.run(search())
    passed = [lv["streams"] for lv in levels if lv["ok"]]
    return {
        "what": "concurrent daemons on this machine, one real-time output stream each "
        "(the engine speaks one request at a time), each asked for speech at once over "
        "WebSocket",
        "daemons": daemons,
        "text_words": len(text.split()),
        "frame_ms": cfg.output.frame_ms,
        "max_streams": max_streams,
        "capacity": max(passed) if passed else 0,
        "reached_max": bool(levels) and levels[-1]["ok"] and levels[-1]["streams"] == max_streams,
        "levels": levels,
    }


def capacity_table(report: dict[str, Any]):  # returns a rich Table
    """One row per quality and level: the worst stream's figures."""
    from rich.table import Table

    first = next(iter(report["capacity"].values()))
    table = Table(
        title=f"capacity: {first['what']} ({first['daemons']} daemons, {first['text_words']}-word "
        f"text, {first['frame_ms']} ms frames)"
    )
    for col in (
        "quality",
        "streams",
        "threads each",
        "result",
        "worst late ms",
        "of which pacer ms",
        "underrun frames",
        "TTFA max ms",
        "why not",
    ):
        table.add_column(col, justify="right")
    for quality, r in report["capacity"].items():
        for lv in r["levels"]:
            s = lv["per_stream"]
            late = [x["max_late_ms"] for x in s if "max_late_ms" in x]
            pacer = [x["pacer_max_late_ms"] for x in s if x.get("pacer_max_late_ms") is not None]
            ttfa = [x["time_to_first_audio_ms"] for x in s if "time_to_first_audio_ms" in x]
            table.add_row(
                quality,
                str(lv["streams"]),
                str(lv.get("torch_threads_per_daemon", "-")),
                "real time" if lv["ok"] else "FAILED",
                f"{max(late):.0f}" if late else "-",
                f"{max(pacer):.0f}" if pacer else "-",
                str(sum(x.get("underrun_frames", 0) for x in s)),
                f"{max(ttfa):.0f}" if ttfa else "-",
                "; ".join(sorted({x["reason"] for x in s if x.get("reason")})),
            )
        table.add_section()
    return table


def capacity_main(args) -> dict[str, Any]:
    """`vcstream bench --capacity`: the search for each quality of ``--quality``."""
    from vcstream.app import build_runtime
    from vcstream.bench import quality as quality_mod
    from vcstream.bench.report import console, machine_description
    from vcstream.config import load_config

    cfg = load_config(args.config)
    qualities = quality_mod.parse_qualities(getattr(args, "quality", None), cfg.vocoder.quality)
    if args.device:
        cfg.device.compute = args.device
    daemons = getattr(args, "capacity_daemons", None) or "process"
    max_streams = getattr(args, "capacity_max", None) or DEFAULT_MAX_STREAMS
    report: dict[str, Any] = {"machine": machine_description(), "capacity": {}, "targets": {}}
    rt = build_runtime(cfg) if daemons == "thread" else None
    for q in qualities:
        qcfg = quality_mod.config_for(cfg, q)
        qrt = quality_mod.runtime_for(cfg, q, rt) if daemons == "thread" else None
        r = measure_capacity(qcfg, qrt, max_streams=max_streams, daemons=daemons)
        report["capacity"][q] = r
        if q in TARGET_STREAMS:
            report["targets"][f"{q}.capacity_ge_{TARGET_STREAMS[q]}"] = (
                r["capacity"] >= TARGET_STREAMS[q]
            )
    out = console()
    out.print(capacity_table(report))
    for q, r in report["capacity"].items():
        more = " (the search's maximum)" if r["reached_max"] else ""
        out.print(f"capacity {q}: {r['capacity']} concurrent real-time streams{more}")
    for name, ok in report["targets"].items():
        out.print(f"target {name}: {'met' if ok else 'NOT met'}")
    return report
