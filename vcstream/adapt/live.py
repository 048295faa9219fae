"""Adaptation of the live voice in the daemon: the voiced audio heard is kept (bounded), and
on the ``adapt`` command, or every ``auto_every_s`` seconds of new voice, it is handed to
the adaptation process (``vcstream.adapt.worker``); the adapted voice it sends back is what
the live voice speaks in from then on (until the voice is reset or a profile is loaded).

Threads: ``feed`` runs on the engine's embed thread (a copy into a preallocated ring, no
model calls); ``request``/``state``/``reset`` on control threads; one reader thread
receives the process's messages and publishes them as events (``adapt_progress``,
``adapted``, ``adapt_error``). Everything shared is guarded by one lock.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vcstream.adapt import NotEnoughVoiceError
from vcstream.adapt.voice import AdaptedVoice
from vcstream.config import AdaptConfig
from vcstream.errors import InputError, NoVoiceError, VcstreamError

log = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 16000  # what the embedder's voice-activity gate passes on
# Loading Whisper, GE2E, FastPitch and HiFi-GAN at low priority: over 5 minutes measured on
# a 2-core machine shared with seven other heavy jobs.
READY_TIMEOUT_S = 900.0


class AlreadyAdaptingError(VcstreamError):
    code = "already_adapting"


class AdaptUnavailableError(VcstreamError):
    code = "adapt_unavailable"


class VoicedRing:
    """The last ``seconds`` of voiced audio. Overflow policy: drop-oldest."""

    def __init__(self, seconds: float) -> None:
        self.capacity = max(1, int(seconds * SAMPLE_RATE_HZ))
        self._buf = np.zeros(self.capacity, np.float32)
        self._end = 0  # samples ever written
        self.dropped = 0

    def write(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)[-self.capacity :]
        n = len(x)
        start = self._end % self.capacity
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = x[:first]
        self._buf[: n - first] = x[first:]
        self._end += n
        self.dropped = max(0, self._end - self.capacity)

    def __len__(self) -> int:
        return min(self._end, self.capacity)

    @property
    def total(self) -> int:
        return self._end

    def snapshot(self) -> np.ndarray:
        n = len(self)
        start = (self._end - n) % self.capacity
        return np.roll(self._buf, -start)[:n].copy()

    def clear(self) -> None:
        self._end = 0
        self.dropped = 0


class LiveAdapter:
    def __init__(
        self,
        cfg: AdaptConfig,
        publish: Callable[[str, dict[str, Any]], None],
        *,
        checkpoint: str | None,
        checkpoint_id: str | None,
    ) -> None:
        self.cfg = cfg
        self._publish = publish
        self._checkpoint = checkpoint
        self.checkpoint_id = checkpoint_id  # None: the synthesiser cannot be adapted
        self._lock = threading.Lock()
        self._ring = VoicedRing(cfg.max_buffer_s)
        self._state = "idle"  # idle | starting | adapting | adapted | error
        self._job = 0  # generation: results of an older job (before a reset) are ignored
        self._running: int | None = None
        self._progress: dict[str, Any] = {}
        self._voice: AdaptedVoice | None = None
        self._last_error: dict[str, str] | None = None
        self._adapted_at_total = 0  # ring total when the last job was started
        self._proc = None
        self._jobs = None
        self._results = None
        self._reader: threading.Thread | None = None
        self._closed = threading.Event()

    # ---- audio (embed thread) -----------------------------------------------------
    def feed(self, voiced_16k: np.ndarray) -> None:
        if self.checkpoint_id is None or len(voiced_16k) == 0:
            return
        auto = False
        with self._lock:
            self._ring.write(voiced_16k)
            every = self.cfg.auto_every_s
            if every > 0 and self._running is None and self._state != "starting":
                new = (self._ring.total - self._adapted_at_total) / SAMPLE_RATE_HZ
                auto = new >= every and len(self._ring) / SAMPLE_RATE_HZ >= self.cfg.min_seconds
        if auto:
            try:
                self.request(reason="auto")
            except VcstreamError as err:  # e.g. a race with a manual request: not an error
                log.debug("automatic adaptation not started: %s", err)

    # ---- control ------------------------------------------------------------------
    def request(self, seed: int = 0, reason: str = "command") -> dict[str, Any]:
        """Start adapting to the voice heard so far; the state. Raises ``NoVoiceError``
        (nothing heard), ``NotEnoughVoiceError`` (how much more is needed),
        ``AlreadyAdaptingError``, ``AdaptUnavailableError`` (a backend that cannot adapt)."""
        if self.checkpoint_id is None:
            raise AdaptUnavailableError(
                "this synthesiser cannot be adapted (only the fastpitch backend can)"
            )
        with self._lock:
            if self._running is not None:
                raise AlreadyAdaptingError(
                    f"already adapting (job {self._running}, "
                    f"{self._progress.get('stage', 'starting')}): wait for 'adapted'"
                )
            have = len(self._ring) / SAMPLE_RATE_HZ
            if have == 0:
                raise NoVoiceError("no voice heard yet: nothing to adapt to")
            if have < self.cfg.min_seconds:
                raise NotEnoughVoiceError(have, self.cfg.min_seconds)
            audio = self._ring.snapshot()
            self._job += 1
            job = self._job
            self._running = job
            self._adapted_at_total = self._ring.total
            self._progress = {"stage": "starting", "fraction": 0.0}
            self._last_error = None
            state_before = self._state
            self._state = "adapting"
        try:
            self._ensure_process()
        except VcstreamError:
            with self._lock:
                self._running = None
                self._state = state_before
            raise
        self._jobs.put(
            (job, audio, seed, self.cfg.max_wall_s or None, self.cfg.steps, self.cfg.measure)
        )
        self._publish(
            "adapt_progress",
            {"job": job, "stage": "queued", "fraction": 0.0, "seconds": round(have, 2),
             "reason": reason},
        )  # fmt: skip
        return self.state()

    def reset(self) -> None:
        """Forget the heard audio and the adapted voice (a running job's result is ignored)."""
        with self._lock:
            self._ring.clear()
            self._voice = None
            self._job += 1
            self._running = None
            self._adapted_at_total = 0
            self._progress = {}
            self._state = "idle"

    def current(self) -> AdaptedVoice | None:
        with self._lock:
            return self._voice

    def state(self) -> dict[str, Any]:
        with self._lock:
            v = self._voice
            out: dict[str, Any] = {
                "state": self._state if self.checkpoint_id else "unavailable",
                "voice_seconds": round(len(self._ring) / SAMPLE_RATE_HZ, 2),
                "new_seconds": round(
                    (self._ring.total - self._adapted_at_total) / SAMPLE_RATE_HZ, 2
                ),
                "buffer_seconds": self.cfg.max_buffer_s,
                "auto_every_s": self.cfg.auto_every_s,
                "min_seconds": self.cfg.min_seconds,
                "progress": dict(self._progress) if self._running is not None else None,
                "adapted": None,
                "last_error": self._last_error,
            }
        if v is not None:
            m = v.metadata()
            out["adapted"] = {
                k: m[k]
                for k in (
                    "plan", "parameters", "seconds", "steps", "held_out_loss_before",
                    "held_out_loss", "wall_s", "similarity_before", "similarity",
                    "selected_by", "probe_vocoder", "prosody_offsets",
                )
            }  # fmt: skip
        return out

    def close(self) -> None:
        self._closed.set()
        proc, jobs = self._proc, self._jobs
        if proc is None:
            return
        with contextlib.suppress(Exception):  # a full or broken queue: terminated below
            jobs.put_nowait(None)
        proc.join(timeout=2)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=2)
        # A job the process never read (it was still loading its models) sits in the
        # queue's pipe: its feeder thread would block on it for ever, and the interpreter
        # joins that thread at exit (measured: the daemon hung on shutdown). It is dropped.
        jobs.cancel_join_thread()
        if self._reader is not None:
            self._reader.join(timeout=2)

    # ---- the process --------------------------------------------------------------
    def _ensure_process(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        from vcstream.adapt.worker import worker_main

        ctx = mp.get_context("spawn")
        self._jobs = ctx.Queue(maxsize=2)
        self._results = ctx.Queue()
        self._proc = ctx.Process(
            target=worker_main,
            args=(self._jobs, self._results, self._checkpoint, self.cfg.nice, self.cfg.threads),
            name="vcstream-adapt",
            daemon=True,
        )
        self._proc.start()
        log.info("adaptation process started (pid %s, nice +%d)", self._proc.pid, self.cfg.nice)
        self._reader = threading.Thread(
            target=self._read_loop, args=(self._proc, self._results), name="vcstream-adapt-rx",
            daemon=True,
        )  # fmt: skip
        self._reader.start()

    def _read_loop(self, proc, results) -> None:
        started = time.monotonic()
        ready = False
        while not self._closed.is_set():
            try:
                kind, job, data = results.get(timeout=0.5)
            except queue.Empty:
                if not proc.is_alive():
                    self._fail(
                        self._running,
                        "internal",
                        f"the adaptation process ended (exit code {proc.exitcode})",
                    )
                    return
                if not ready and time.monotonic() - started > READY_TIMEOUT_S:
                    self._fail(self._running, "internal", "the adaptation process did not start")
                    proc.terminate()
                    return
                continue
            except (EOFError, OSError):
                return
            if kind == "ready":
                ready = True
                if data.get("checkpoint") != self.checkpoint_id:
                    self._fail(
                        self._running,
                        "internal",
                        "the adaptation process loaded another checkpoint than the daemon",
                    )
                    proc.terminate()
                    return
            elif kind == "progress":
                with self._lock:
                    if job != self._running:
                        continue
                    self._progress = data
                self._publish("adapt_progress", {"job": job, **_rounded(data)})
            elif kind == "done":
                self._done(job, data)
            elif kind == "error":
                if "traceback" in data:
                    log.error("adaptation job %s failed:\n%s", job, data["traceback"])
                self._fail(job if job is not None else self._running, data["code"], data["message"])
                if job is None:  # the process could not load its models
                    return

    def _done(self, job: int, data: dict[str, Any]) -> None:
        try:
            voice = AdaptedVoice.from_json(data)
        except InputError as err:
            self._fail(job, "internal", str(err))
            return
        with self._lock:
            if job != self._running:
                return  # reset meanwhile: the voice it was made for is gone
            self._voice = voice
            self._running = None
            self._progress = {}
            self._state = "adapted"
        log.info(
            "live voice adapted: %s on %.1f s in %.1f s, similarity %s -> %s",
            voice.plan, voice.seconds, voice.wall_s, voice.similarity_before, voice.similarity,
        )  # fmt: skip
        self._publish("adapted", {"job": job, **self.state()["adapted"]})

    def _fail(self, job: int | None, code: str, message: str) -> None:
        with self._lock:
            if job is not None and job != self._running:
                return
            self._running = None
            self._progress = {}
            self._last_error = {"code": code, "message": message}
            self._state = "adapted" if self._voice is not None else "error"
        log.warning("adaptation failed: %s", message)
        self._publish("adapt_error", {"job": job, "code": code, "message": message})


def _rounded(d: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in d.items()}
