"""The daemon: engine + network edges + optional playback, run until SIGINT, SIGTERM or SIGHUP.

SIGHUP is a clean shutdown like the other two (exit status 0): requests still open end with
an ``error`` event (``shutting_down``), clients get WebSocket close frames. The daemon reads
its configuration once; to apply a changed one, restart it (systemd: ``systemctl restart``).

Under systemd (``Type=notify``) it reports through ``$NOTIFY_SOCKET``: ``STATUS=`` while it
loads and serves, ``READY=1`` once the models are loaded and the sockets listen,
``WATCHDOG=1`` only while the engine's loops make progress (vcstream.watchdog), and
``STOPPING=1`` when it shuts down.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from vcstream.app import Runtime, build_runtime
from vcstream.capture import CaptureSource, open_source
from vcstream.config import Config
from vcstream.engine import Engine
from vcstream.errors import DeviceUnavailableError
from vcstream.hub import Event, Hub
from vcstream.liveness import LoopWatch
from vcstream.procstats import process_stats
from vcstream.sdnotify import Notifier
from vcstream.watchdog import ServiceWatchdog, status_line

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SHUTDOWN_FLUSH_S = 0.2
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def build_engine(
    cfg: Config, runtime: Runtime | None = None, source: CaptureSource | None = None
) -> Engine:
    """``source`` replaces the capture edge the config names (a fake device in tests)."""
    runtime = runtime or build_runtime(cfg)
    source = source or open_source(cfg.capture)
    hub = Hub()
    adapter = _build_adapter(cfg, runtime, hub)
    transcriber = None
    if cfg.consent.mode == "spoken":
        from vcstream.consent import load_transcriber

        transcriber = load_transcriber()  # a clear ModelMissingError when Whisper is absent
    engine = Engine(
        cfg,
        pipeline=runtime.new_pipeline(),
        embedder=runtime.new_embedder(),
        source=source,
        voices=runtime.voice_store(),
        model_name=runtime.encoder_name,
        device=str(runtime.device),
        hub=hub,
        adapter=adapter,
        transcriber=transcriber,
    )
    vocoder = engine.pipeline.vocoder
    # status.vocoder: which quality runs and why, with the streaming settings in effect
    engine.extra_status["vocoder"] = lambda: {**vocoder.describe(), **runtime.vocoder_status}
    engine.extra_status["adapt"] = adapter.state
    engine.extra_status["process"] = process_stats  # status.process: rss_mb, threads, fds
    if cfg.embedder.initial_voice:
        engine.voice_load(cfg.embedder.initial_voice)
    return engine


def _build_adapter(cfg: Config, runtime: Runtime, hub: Hub):
    from vcstream.adapt.live import LiveAdapter

    synth = runtime.synthesizer
    path = getattr(synth, "checkpoint_path", None)
    return LiveAdapter(
        cfg.adapt,
        lambda kind, data: hub.publish(Event(kind, None, data)),
        checkpoint=None if path is None else str(path),
        checkpoint_id=getattr(synth, "checkpoint_id", None),
    )


def _start_playback(cfg: Config, engine: Engine):
    if not cfg.output.playback:
        return None
    from vcstream.playback import SpeakerSink

    sink = SpeakerSink(engine.sample_rate_hz, cfg.output.playback_device)
    try:
        sink.start()
    except DeviceUnavailableError as err:
        log.warning("%s; playback disabled, audio goes to the network only", err)
        return None
    engine.hub.subscribe("speaker", sink.offer)
    engine.extra_status["playback"] = sink.stats
    return sink


def _watchdog(cfg: Config, engine: Engine, service, notifier: Notifier) -> ServiceWatchdog:
    watch = LoopWatch(
        engine.heartbeats,
        idle_limit_s=cfg.watchdog.loop_stall_s,
        busy_limit_s=cfg.watchdog.synth_stall_s,
    )

    def describe() -> str:
        clients = service.ws.client_count if service.ws else None
        return status_line(engine.status(history=False), clients)

    return ServiceWatchdog(
        notifier, watch, describe=describe, check_interval_s=cfg.watchdog.check_interval_s
    )


async def run(
    cfg: Config,
    stop: asyncio.Event,
    engine: Engine,
    on_ready=None,
    web_dir: Path = WEB_DIR,
    notifier: Notifier | None = None,
) -> None:
    from vcstream.net.service import NetworkService

    notifier = notifier or Notifier()
    notifier.status("starting the engine and the network")
    engine.start()  # a missing sound device: capture degraded and retried, network on
    sink = _start_playback(cfg, engine)
    service = NetworkService(cfg, engine, web_dir)
    watchdog_task = None
    try:
        await service.start()
        watchdog = _watchdog(cfg, engine, service, notifier)
        engine.extra_status["watchdog"] = watchdog.stats
        notifier.ready(f"listening; {watchdog.describe()}")
        watchdog_task = asyncio.create_task(watchdog.run(stop), name="vcstream-watchdog")
        if on_ready is not None:
            on_ready(service)
        await stop.wait()
    finally:
        log.info("shutting down")
        notifier.stopping("shutting down")
        if watchdog_task is not None:
            watchdog_task.cancel()
        if engine.end_requests("shutting_down", "the daemon is shutting down"):
            await asyncio.sleep(SHUTDOWN_FLUSH_S)  # the error events reach the clients first
        await service.stop()
        if sink is not None:
            sink.stop()
        engine.stop()


def serve(cfg: Config) -> int:
    logging.getLogger().setLevel(cfg.log.level.upper())
    # Taken out of the environment: a child process must not speak for the daemon.
    notifier = Notifier.from_env(unset=True)
    notifier.status("loading models")
    engine = build_engine(cfg)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, _stopper(stop, sig))
        await run(cfg, stop, engine, notifier=notifier)

    asyncio.run(main())
    log.info("stopped cleanly")
    return 0


def _stopper(stop: asyncio.Event, sig: signal.Signals):
    def handler() -> None:
        log.info("%s received: shutting down cleanly", sig.name)
        stop.set()

    return handler


@dataclass
class RunningDaemon:
    """A daemon on a background thread (for tests and benchmarks)."""

    engine: Engine
    service: object
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event

    @property
    def ws_port(self) -> int:
        return self.service.ws_port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.service.ws_port}/"

    @property
    def zmq_pub_endpoint(self) -> str:
        return self.service.zmq_pub_endpoint

    @property
    def zmq_router_endpoint(self) -> str:
        return self.service.zmq_router_endpoint

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout=15)


def start_daemon(
    cfg: Config,
    runtime: Runtime | None = None,
    timeout: float = 60.0,
    web_dir: Path = WEB_DIR,
    notifier: Notifier | None = None,
    source: CaptureSource | None = None,
) -> RunningDaemon:
    """Start the full daemon on a background thread and return once it is listening."""
    engine = build_engine(cfg, runtime, source)
    ready = threading.Event()
    box: dict = {}

    def target() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        box["loop"], box["stop"] = loop, stop

        def on_ready(service) -> None:
            box["service"] = service
            ready.set()

        try:
            loop.run_until_complete(run(cfg, stop, engine, on_ready, web_dir, notifier))
        except BaseException as err:  # surfaced to the caller below
            box["error"] = err
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=target, name="vcstream-daemon", daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise RuntimeError("daemon did not start in time")
    if "error" in box:
        raise box["error"]
    return RunningDaemon(engine, box["service"], thread, box["loop"], box["stop"])
