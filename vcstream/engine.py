"""The daemon's engine: capture ─► embedder, requests ─► speech pipeline ─► paced output.

Three threads, each owning its stage, connected by bounded buffers:

* ``embed``: reads the capture ring, runs the incremental speaker embedder (model calls
  happen here, never on the audio callback).
* ``synth``: takes requests from the fair scheduler (a bounded queue per client, served in
  fair turns, operators first: ``vcstream.scheduler``; overflow policy: reject with
  ``QueueFullError``/``ClientQueueFullError``), runs the speech pipeline, and appends audio
  to the output buffer (overflow policy: the synthesiser waits). It takes the next request
  only once less than ``lookahead_seconds`` of audio is waiting, so the turn order holds
  at the listener's ear too, not only in synthesis.
* ``pacer``: publishes one frame every ``frame_ms`` to the hub: request audio, or
  flagged silence when synthesis is behind or idle, so listeners never see a stall.
* ``reqwatch``: fails requests that stopped making progress (``request_watchdog``), so
  every accepted request ends in exactly one ``done`` or ``error``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vcstream import safetext
from vcstream.capture import CaptureSource
from vcstream.capture_supervisor import CaptureSupervisor
from vcstream.config import Config
from vcstream.consent import (
    GRANTED,
    NOT_REQUIRED,
    ConsentGate,
    ConsentRecord,
    ConsentWorker,
    PhraseResult,
    PhraseSegmenter,
    utc_now,
)
from vcstream.encoder.embed import embed_stream
from vcstream.encoder.vad import voiced_audio
from vcstream.errors import ConsentError, ForbiddenError, InputError, VcstreamError
from vcstream.hub import AudioFrame, Event, Hub
from vcstream.liveness import Heartbeat
from vcstream.memory import recover_from_oom, release_free_memory
from vcstream.metrics import Metrics
from vcstream.outbuf import OutputBuffer
from vcstream.pipeline import PreparedText, SpeechPipeline
from vcstream.request_watchdog import STALLED, RequestWatchdog
from vcstream.scheduler import LOCAL, ClientId, FairScheduler
from vcstream.synth.base import SynthControls, VoiceConditioning
from vcstream.voices import VoiceProfile, VoiceStore, check_name

log = logging.getLogger(__name__)

MODES = ("queue", "interrupt")
OUT_OF_MEMORY = "out_of_memory"  # error code of a request that exhausted memory
# Fits the wire header's 32-byte field; fullmatch, since "$" also matches before a final "\n".
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,32}")
METRICS_PERIOD_S = 0.1
# The request history (up to 20 rows, ~6 kB) rides in a metrics event only when it changed and
# at least this often: every 100 ms it was most of the status traffic to each client.
HISTORY_REPEAT_S = 1.0
# The embed thread reads whatever the capture ring holds this often. Every wake-up takes
# the GIL from the synthesis thread, so it wakes at 20 Hz, not per 20 ms block: the
# embedder takes blocks of any length, and the 10 Hz metrics need no finer level meter.
EMBED_POLL_S = 0.05
# The embedder and the consent segmenter take what the ring holds in pieces of at most this
# long, so a source that delivers a lot at once (a file heard unpaced) is heard as a stream.
EMBED_PIECE_S = 0.1


@dataclass
class SpeakRequest:
    request_id: str
    prepared: PreparedText
    mode: str
    voice_name: str | None
    voice: VoiceConditioning | None  # fixed at submit when a saved voice was named
    client: ClientId = LOCAL
    submitted_ns: int = field(default_factory=time.monotonic_ns)
    started_ns: int = 0
    first_audio_ns: int = 0
    audio_samples: int = 0
    progress_ns: int = 0  # last sign of life (accepted, started, a chunk, a frame): watchdog
    finished: bool = False  # ended (done or error); set under the engine's lock

    def __post_init__(self) -> None:
        self.progress_ns = self.submitted_ns


class Engine:
    def __init__(
        self,
        cfg: Config,
        *,
        pipeline: SpeechPipeline,
        embedder,
        source: CaptureSource,
        voices: VoiceStore,
        model_name: str,
        device: str,
        hub: Hub | None = None,
        metrics: Metrics | None = None,
        adapter=None,
        transcriber=None,
    ) -> None:
        self.cfg = cfg
        # vcstream.adapt.live.LiveAdapter: adapts the live voice in its own process
        self.adapter = adapter
        if adapter is not None:
            embedder.voiced_tap = self._adapt_feed
        self.pipeline = pipeline
        self.embedder = embedder
        self.source = source
        # Reopens a failed capture device with backoff; polled by the capture loop.
        self.capture = CaptureSupervisor(source, cfg.capture, on_change=self._capture_changed)
        self.voices = voices
        self.model_name = model_name
        self.device = device
        self.hub = hub or Hub()
        self.metrics = metrics or pipeline.metrics
        self.sample_rate_hz = pipeline.sample_rate_hz
        self.frame_samples = round(self.sample_rate_hz * cfg.output.frame_ms / 1000)
        self._outbuf = OutputBuffer(int(cfg.engine.output_buffer_seconds * self.sample_rate_hz))
        self._lookahead_samples = max(1, round(cfg.engine.lookahead_seconds * self.sample_rate_hz))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # The embedder is fed on the embed thread and steered (freeze, reset) from control
        # threads; its state changes only under this lock.
        self._embed_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the fields below
        self._requests: FairScheduler[SpeakRequest] = FairScheduler(
            cfg.engine.request_queue, cfg.engine.client_queue
        )
        self._queued = threading.Condition(self._lock)  # notified when a request is queued
        self._cancelled: set[str] = set()
        self._active: dict[str, SpeakRequest] = {}  # accepted and not yet done
        self._current: SpeakRequest | None = None  # being synthesised
        self._loaded: VoiceProfile | None = None
        self._last_input_dbfs = -120.0
        self._voice_active = False
        self._started_ns = time.monotonic_ns()
        self._history: list[dict] = []
        self._history_changes = 0  # bumped under _lock with every finished request
        # Each loop's proof of life, watched by the composition root (vcstream.liveness).
        self.heartbeats = {name: Heartbeat() for name in ("pacer", "synth", "capture")}
        self._watchdog = RequestWatchdog(cfg.engine.request_stall_s)
        # Edges the composition root adds (e.g. playback) report here: name -> stats().
        self.extra_status: dict[str, Callable[[], dict]] = {}
        # Consent (vcstream.consent) and retention of the live voice.
        self.consent = ConsentGate(cfg.consent)
        self._segmenter: PhraseSegmenter | None = None
        self._consent_worker: ConsentWorker | None = None
        self._segmenter_fed = False
        if cfg.consent.mode == "spoken":
            if transcriber is None:
                raise InputError("consent.mode = 'spoken' needs a transcriber (Whisper)")
            self._segmenter = PhraseSegmenter(
                cfg.embedder, cfg.consent.min_phrase_seconds, cfg.consent.max_phrase_seconds
            )
            self._consent_worker = ConsentWorker(
                lambda audio: transcriber.transcribe(audio, self.source.sample_rate_hz),
                self._embed_phrase,
                self._consent_checked,
            )
        self._last_voice_t = time.monotonic()

    # ---- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        self.capture.start()  # a missing device leaves capture degraded and retried
        for name, target in (
            ("embed", self._embed_loop),
            ("synth", self._synth_loop),
            ("pacer", self._pacer_loop),
            *([("reqwatch", self._watch_loop)] if self._watchdog.enabled else []),
        ):
            t = threading.Thread(target=target, name=f"vcstream-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        if self._consent_worker is not None:
            self._consent_worker.start()
        if self.consent.mode != "none":
            log.info("consent mode %r: %s", self.consent.mode, self.consent.state()["reason"])
        if not self.pipeline.synthesizer.clones:
            log.warning(
                "synthesiser %r is a baseline: it ignores the speaker embedding and does not "
                "clone the voice",
                self.pipeline.synthesizer.name,
            )
        default_voice = self.pipeline.synthesizer.default_voice_name
        if default_voice:
            log.info("until a voice is heard, speaking in the default voice %r", default_voice)
        log.info(
            "engine started: synthesiser %s (clones=%s), device %s, frame %d ms",
            self.pipeline.synthesizer.name,
            self.pipeline.synthesizer.clones,
            self.device,
            self.cfg.output.frame_ms,
        )

    def stop(self) -> None:
        self._stop.set()
        with self._queued:
            self._queued.notify_all()
        self._outbuf.close()
        for t in self._threads:  # the capture loop owns the source until it has ended
            if t.name == "vcstream-embed":
                t.join(timeout=5)
        self.capture.stop()
        if self.adapter is not None:
            self.adapter.close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        if self._consent_worker is not None:
            self._consent_worker.stop()

    # ---- requests ----------------------------------------------------------------
    def speak(
        self,
        *,
        request_id: str | None = None,
        text: str | None = None,
        phonemes: str | None = None,
        mode: str = "queue",
        voice: str | None = None,
        client: ClientId = LOCAL,
    ) -> str:
        """Validate and enqueue a request for ``client``; raises a ``VcstreamError`` subclass
        if refused. ``interrupt`` cancels the client's own requests first; an operator's also
        cuts whatever is playing, whoever sent it."""
        if mode not in MODES:
            raise InputError(f"mode must be 'queue' or 'interrupt', not {mode!r}")
        request_id = request_id or uuid.uuid4().hex[:12]
        if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            raise InputError("id must be 1-32 characters of letters, digits, '.', '_', ':', '-'")
        text = safetext.checked(text, "text")
        phonemes = safetext.checked(phonemes, "phonemes")
        with self._lock:
            if request_id in self._active:
                raise InputError(f"request id {request_id!r} is already in use")
            if mode != "interrupt":  # (an interrupt first empties the client's own queue)
                # Refused before the text front end runs: a flood costs next to nothing.
                self._requests.check(client)
        prepared = self.pipeline.prepare(text=text, phonemes=phonemes)
        conditioning = None
        if voice is not None:
            conditioning = self._conditioning_of(self.voices.load(voice))
        req = SpeakRequest(request_id, prepared, mode, voice, conditioning, client)
        if mode == "interrupt":
            self._interrupt(client)
        with self._lock:
            if request_id in self._active:
                raise InputError(f"request id {request_id!r} is already in use")
            position = self._requests.push(client, req)
            self._active[request_id] = req
            self._cancelled.discard(request_id)
            self._outbuf.forget(request_id)  # an earlier request of this id was cleared
            self._queued.notify()
        self.hub.publish(
            Event(
                "accepted",
                request_id,
                {
                    "queue_position": position,
                    "mode": mode,
                    "text": safetext.one_line(text if text is not None else phonemes or "")[:200],
                },
            )
        )
        return request_id

    def cancel(
        self,
        request_id: str | None = None,
        *,
        client: ClientId = LOCAL,
        everyone: bool = False,
        others_allowed: bool = True,
    ) -> bool:
        """Cancel one request, or (``request_id`` None) the client's own pending and playing
        ones, or with ``everyone`` all of them. Without ``others_allowed`` a request of
        another client is ``ForbiddenError``. True if anything was cancelled."""
        with self._lock:
            if request_id is not None:
                req = self._active.get(request_id)
                if req is not None and req.client != client and not others_allowed:
                    raise ForbiddenError(
                        "that request is another client's: only the operator may cancel it"
                    )
                ids = {request_id} if req is not None else set()
            elif everyone:
                if not others_allowed:
                    raise ForbiddenError(
                        "cancelling every client's requests is for the operator only"
                    )
                ids = set(self._active)
            else:
                ids = {rid for rid, r in self._active.items() if r.client == client}
        return self._cancel_ids(ids)

    def _interrupt(self, client: ClientId) -> None:
        """Barge-in: the client's own requests go; an operator's also cuts what is playing
        or being synthesised (queued lines of other clients stay queued)."""
        with self._lock:
            ids = {
                rid
                for rid, r in self._active.items()
                if r.client == client or (client.operator and r.started_ns)
            }
        self._cancel_ids(ids)

    def _cancel_ids(self, ids: set[str]) -> bool:
        with self._lock:
            ids = {rid for rid in ids if rid in self._active}
            # Queued ones leave the queue now (their room is free at once); the others are
            # flagged for the worker and the pacer to stop.
            removed = self._requests.remove(lambda _client, r: r.request_id in ids)
            started = ids - {r.request_id for r in removed}
            self._cancelled.update(started)
            # Under the lock: a later request reusing one of these ids forgets the clear
            # after it, never before.
            for rid in started:
                self._outbuf.clear(rid)
        for req in removed:
            self._finish(req, cancelled=True)
        return bool(ids)

    def _is_cancelled(self, request_id: str) -> bool:
        return request_id in self._cancelled or self._stop.is_set()

    def _finish(self, req: SpeakRequest, **data: Any) -> None:
        entry = self._end(req, **data)
        if entry is not None:
            self.hub.publish(Event("done", req.request_id, entry))

    def _fail(self, req: SpeakRequest, code: str, message: str) -> None:
        """End ``req`` with an error event (its only ending: a no-op if it already ended)."""
        if self._end(req, error=code, clear=True) is not None:
            self.hub.publish(Event("error", req.request_id, {"code": code, "message": message}))

    def end_requests(self, code: str, message: str) -> int:
        """Fail every accepted request (shutting down); returns how many."""
        with self._lock:
            active = list(self._active.values())
        for req in active:
            self._fail(req, code, message)
        return len(active)

    def _end(self, req: SpeakRequest, clear: bool = False, **data: Any) -> dict | None:
        """Take ``req`` out of the request table exactly once; its history entry, or None
        when it had already ended."""
        with self._lock:
            if req.finished or self._active.get(req.request_id) is not req:
                return None  # already finished (pacer and worker may both see a cancel)
            req.finished = True
            del self._active[req.request_id]
            if not req.started_ns:  # failed while queued: its room is free at once
                self._requests.remove(lambda _client, r: r is req)
            self._cancelled.discard(req.request_id)
            if clear:
                self._outbuf.clear(req.request_id)
            self._watchdog.progress()
            entry = {
                "id": req.request_id,
                "text": safetext.one_line(req.prepared.text or "")[:200],
                "audio_ms": round(1000 * req.audio_samples / self.sample_rate_hz, 1),
                "first_audio_ms": round((req.first_audio_ns - req.submitted_ns) / 1e6, 1)
                if req.first_audio_ns
                else None,
                **data,
            }
            self._history = [*self._history[-49:], entry]
            self._history_changes += 1
        return entry

    # ---- voice -------------------------------------------------------------------
    def _conditioning_of(self, profile: VoiceProfile) -> VoiceConditioning:
        profile.check_checkpoint(getattr(self.pipeline.synthesizer, "checkpoint_id", None))
        return profile.conditioning()

    def _live_conditioning(self) -> VoiceConditioning:
        with self._lock:
            if self._loaded is not None:
                return self._conditioning_of(self._loaded)
        if not self.consent.allows_live():
            return VoiceConditioning(None, None, None)  # the synthesiser's default voice
        adapted = self.adapter.current() if self.adapter is not None else None
        if adapted is not None:  # the live voice, adapted: speaks as it was tuned
            return adapted.conditioning()
        with self._embed_lock:
            emb = self.embedder.embedding
            stats = self.embedder.pitch_stats
            spread = self.embedder.cepstral_std
        mean, std = stats if stats is not None else (None, None)
        return VoiceConditioning(emb, mean, std, cepstral_std=spread)

    def voice_state(self) -> dict:
        with self._lock:
            loaded = self._loaded.name if self._loaded else None
        e = self.embedder
        with self._embed_lock:
            state = {
                "loaded_voice": loaded,
                "has_embedding": e.embedding is not None,
                "voiced_seconds": round(float(e.voiced_seconds), 2),
                "n_partials": int(e.n_partials),
                "convergence": None if e.convergence is None else round(float(e.convergence), 5),
                "frozen": bool(e.frozen),
            }
        synth = self.pipeline.synthesizer
        default = synth.default_voice_name
        state["default_voice"] = default
        state["consent"] = self.consent.state()
        state["speaking_in"] = self._speaking_in(state, synth.clones, default)
        return state

    @staticmethod
    def _speaking_in(state: dict, clones: bool, default: str | None) -> str:
        """Which voice a request without its own voice is spoken in now (what the views show).

        ``loaded``, ``live`` (the estimate from the microphone, frozen or not), ``default``
        (the synthesiser's own default voice: nothing heard yet), ``fixed`` (a backend that
        ignores the embedding) or ``none`` (nothing to speak in: such a request fails).
        """
        if not clones:
            return "fixed"
        if state["loaded_voice"]:
            return "loaded"
        consented = state.get("consent", {}).get("state", NOT_REQUIRED) in (NOT_REQUIRED, GRANTED)
        if state["has_embedding"] and consented:
            return "live"
        return "default" if default else "none"

    def _capture_changed(self, state: dict) -> None:
        self.hub.publish(Event("capture", None, {"source": self.source.name, **state}))

    def _embedding_event(self) -> dict:
        """Publish the voice state and return it."""
        state = self.voice_state()
        self.hub.publish(Event("embedding", None, state))
        return state

    def voice_freeze(self) -> dict:
        with self._embed_lock:
            self.embedder.freeze()
        return self._embedding_event()

    def voice_unfreeze(self) -> dict:
        with self._embed_lock:
            self.embedder.unfreeze()
        return self._embedding_event()

    def voice_reset(self) -> dict:
        with self._lock:
            self._loaded = None
        self._forget_live("the voice was reset")
        return self._embedding_event()

    def voice_adapt(self) -> dict:
        """Start adapting the synthesiser to the live voice (``vcstream.adapt.live``)."""
        if self.adapter is None:
            from vcstream.adapt.live import AdaptUnavailableError

            raise AdaptUnavailableError("adaptation is not set up in this daemon")
        if not self.consent.allows_live():
            raise ConsentError(f"not adapted: {self.consent.state()['reason']}")
        with self._lock:
            if self._loaded is not None:
                raise InputError(
                    f"a saved voice ({self._loaded.name!r}) is loaded: `reset` to adapt to "
                    "the live voice"
                )
        return self.adapter.request()

    def voice_save(self, name: str) -> dict:
        check_name(name)
        with self._lock:
            loaded = self._loaded
        if loaded is not None:
            profile = VoiceProfile(
                name, loaded.embedding, loaded.voiced_seconds, loaded.model,
                log_f0_mean=loaded.log_f0_mean, log_f0_std=loaded.log_f0_std,
                sources=[f"voice:{loaded.name}"], adapted=loaded.adapted,
                consent=loaded.consent, cepstral_std=loaded.cepstral_std,
            )  # fmt: skip
        else:
            with self._embed_lock:
                emb = self.embedder.embedding
                stats = self.embedder.pitch_stats
                spread = self.embedder.cepstral_std
                voiced_seconds = float(self.embedder.voiced_seconds)
            if emb is None:
                raise InputError("no voice to save yet: nothing voiced has been heard")
            if not self.consent.allows_live():
                raise ConsentError(f"voice not saved: {self.consent.state()['reason']}")
            record = self.consent.record or ConsentRecord("none", utc_now())
            profile = VoiceProfile(
                name, np.asarray(emb, np.float32), voiced_seconds,
                self.model_name,
                log_f0_mean=None if stats is None else float(stats[0]),
                log_f0_std=None if stats is None else float(stats[1]),
                sources=[f"capture:{self.source.name}"],
                adapted=self.adapter.current() if self.adapter is not None else None,
                consent=record.to_json(), cepstral_std=spread,
            )  # fmt: skip
        self.voices.save(profile)
        return profile.summary()

    def voice_load(self, name: str) -> dict:
        profile = self.voices.load(name)
        self._conditioning_of(profile)  # another checkpoint's adapted voice: refused here
        with self._lock:
            self._loaded = profile
        self._embedding_event()
        return profile.summary()

    def voice_list(self) -> list[dict]:
        return self.voices.list()

    # ---- consent and retention ---------------------------------------------------
    def consent_approve(self) -> dict:
        """The operator approves the live voice as heard now (consent mode 'operator')."""
        with self._embed_lock:
            live = self.embedder.embedding
        self._publish_consent(self.consent.approve(live))
        return self._embedding_event()

    def _publish_consent(self, data: dict) -> None:
        self.hub.publish(Event("consent", None, data))

    def _forget_live(self, reason: str) -> None:
        """Forget the live voice and its consent (reset, or retention)."""
        with self._embed_lock:
            self.embedder.reset()
        if self.adapter is not None:  # its buffered voice and adapted parameters go too
            self.adapter.reset()
        self._segmenter_fed = False  # the segmenter starts afresh with the next voice
        event = self.consent.forget(reason)
        if self.consent.mode != "none":
            self._publish_consent(event)

    def _adapt_feed(self, voiced_16k: np.ndarray) -> None:
        # Adaptation keeps voiced audio (in memory) and tunes a model of the voice: only for a
        # voice that may be used, so nothing heard before consent is kept for it.
        if self.consent.allows_live():
            self.adapter.feed(voiced_16k)

    def _embed_phrase(self, audio: np.ndarray) -> np.ndarray | None:
        """GE2E embedding of an utterance (on the consent thread)."""
        voiced = voiced_audio(audio, self.cfg.embedder)
        with self._embed_lock:  # one model call at a time on the shared encoder
            result = embed_stream(self.embedder.encoder, voiced, final=True)
        return None if result is None else result.embedding

    def _consent_checked(self, result: PhraseResult) -> None:
        with self._embed_lock:
            live = self.embedder.embedding
        self._publish_consent(self.consent.judge(result, live))
        self._embedding_event()

    def _hear_phrase(self, block: np.ndarray) -> None:
        """Feed the consent segmenter (spoken mode, no consent yet), before the embedder
        takes the block: an utterance's reference is the live voice as it was before it."""
        if not self._segmenter_fed:
            self._segmenter.reset()
            self._segmenter_fed = True
        started, done = self._segmenter.process(block)
        for utterance in done:
            check = self.consent.utterance_done(utterance)
            if check is not None:
                self._consent_worker.submit(check)
                self._publish_consent(self.consent.state())
        if started:
            self.consent.utterance_started(self.embedder.embedding)

    def _retain(self) -> None:
        """Retention: the live voice is forgotten after ``forget_after_s`` without voice."""
        now = time.monotonic()
        if self._voice_active:
            self._last_voice_t = now
        after = self.cfg.consent.forget_after_s
        if after <= 0 or now - self._last_voice_t < after or self.embedder.voiced_seconds <= 0:
            return
        reason = f"the live voice was forgotten after {after:g} s without voice"
        log.info("%s (consent.forget_after_s)", reason)
        self._forget_live(reason)
        self.hub.publish(Event("voice_forgotten", None, {"after_s": after, "reason": reason}))
        self._embedding_event()

    # ---- status ------------------------------------------------------------------
    def status(self, history: bool = True) -> dict:
        """The whole state for views and `status` replies; ``history=False`` leaves out the
        request history (the metrics events between its changes)."""
        snap = self.metrics.snapshot()
        with self._lock:
            current = self._current.request_id if self._current else None
            recent = list(self._history[-20:]) if history else None
            queued, clients = len(self._requests), self._requests.depths()
        return {
            "uptime_s": round((time.monotonic_ns() - self._started_ns) / 1e9, 3),
            "device": self.device,
            "synthesizer": {
                "name": self.pipeline.synthesizer.name,
                "clones": bool(self.pipeline.synthesizer.clones),
            },
            "sample_rate_hz": self.sample_rate_hz,
            "frame_ms": self.cfg.output.frame_ms,
            "capture": {
                **self.source.stats(),
                **self.capture.stats(),
                "level_dbfs": round(self._last_input_dbfs, 1),
                "voice_active": self._voice_active,
            },
            "voice": self.voice_state(),
            "queues": {
                "requests": queued,
                "requests_max": self._requests.max_total,
                "client_max": self._requests.max_per_client,
                "clients": clients,
                "output_ms": round(1000 * self._outbuf.buffered_samples / self.sample_rate_hz, 1),
                "capture_ms": round(
                    1000 * self.source.ring.available() / self.source.sample_rate_hz, 1
                ),
            },
            "current_request": current,
            **({"history": recent} if history else {}),
            "listeners": self.hub.listener_names(),
            # A copy: the daemon adds entries while the pacer thread takes snapshots.
            **{name: stats() for name, stats in dict(self.extra_status).items()},
            **snap,
        }

    # ---- threads -----------------------------------------------------------------
    def _embed_loop(self) -> None:
        # One thread for the small LSTM: with two, it contends with the synthesis thread
        # for both cores and its latency collapses (measured: 5 ms -> 50 ms median).
        torch.set_num_threads(1)
        self.embedder.warm_up()
        ring = self.source.ring
        timer = self.metrics.timer("embed")
        heartbeat = self.heartbeats["capture"]
        piece = max(1, round(EMBED_PIECE_S * self.source.sample_rate_hz))
        while not self._stop.wait(EMBED_POLL_S):
            heartbeat.beat()
            self.capture.poll()
            if ring.available():
                audio = ring.read()
                for start in range(0, len(audio), piece):
                    self._embed_block(audio[start : start + piece], timer)
                    heartbeat.beat()
            self._retain()

    def _embed_block(self, audio: np.ndarray, timer) -> None:
        if self._segmenter is not None:
            if self.consent.listening:
                self._hear_phrase(audio)
            else:
                self._segmenter_fed = False
        try:
            with self._embed_lock, timer.time(len(audio) / self.source.sample_rate_hz):
                update = self.embedder.process(audio)
        except Exception:  # keep capturing; the error is logged with its traceback
            log.exception("speaker embedder failed on a block")
            self.metrics.incr("embed_errors")
            return
        self._last_input_dbfs = float(getattr(self.embedder, "level_dbfs", -120.0))
        self._voice_active = bool(getattr(self.embedder, "voice_active", False))
        if self._voice_active:
            self._last_voice_t = time.monotonic()
        if update is not None:
            if (lapsed := self.consent.voice_moved(update.embedding)) is not None:
                self._publish_consent(lapsed)
            self._embedding_event()

    def _synth_loop(self) -> None:
        # Threads inherit the torch thread count last set anywhere; set ours explicitly.
        torch.set_num_threads(self.cfg.device.cpu_threads or max(1, os.cpu_count() or 1))
        controls = SynthControls(
            speed=self.cfg.synth.speed, pitch_shift_semitones=self.cfg.synth.pitch_shift_semitones
        )
        # Freed heap memory goes back to the OS after a pause (vcstream.memory): trimming
        # takes 25-50 ms here, and the next request pays about 30 ms faulting its buffers
        # back in (measured in the network bench), so never between close requests.
        trim_after_s = self.cfg.engine.release_memory_after_idle_s
        last_done = time.monotonic()
        trim_pending = False
        heartbeat = self.heartbeats["synth"]
        while not self._stop.is_set():
            heartbeat.beat()
            req = self._next_request(timeout=0.1)
            if req is None:
                if trim_pending and 0 < trim_after_s <= time.monotonic() - last_done:
                    trim_pending = False
                    if release_free_memory():
                        self.metrics.incr("memory_trims")
                continue
            rid = req.request_id
            if req.finished or self._is_cancelled(rid):
                self._finish(req, cancelled=True)
                continue
            self.hub.publish(Event("started", rid, {"sentences": len(req.prepared.sentences)}))
            voice = req.voice or self._live_conditioning()
            heartbeat.set_busy(True)  # the synthesis-call limit applies until it returns
            out_of_memory = False
            # A request failed meanwhile (by the watchdog) stops here, and its stale chunks
            # are refused under the buffer's lock: its id may already be another request's.
            live = lambda req=req: not req.finished  # noqa: E731
            stopped = lambda req=req: req.finished or self._is_cancelled(req.request_id)  # noqa: E731
            try:
                for chunk in self.pipeline.render(req.prepared, voice, controls, stopped):
                    heartbeat.beat()
                    if not self._outbuf.put(rid, chunk, live=live):
                        break
                    req.progress_ns = time.monotonic_ns()
                    self._watchdog.progress(req.progress_ns)
                if req.finished:
                    pass  # failed meanwhile: its error is out and its audio cleared
                elif self._is_cancelled(rid):
                    # Cancelled before any of its audio reached the buffer: nothing will
                    # pass the pacer, so the worker reports it done.
                    self._outbuf.clear(rid)
                    self._finish(req, cancelled=True)
                else:
                    self._outbuf.end(rid)
            except (torch.OutOfMemoryError, MemoryError) as err:
                # One request too big for the memory left: it fails, the daemon goes on.
                out_of_memory = True
                log.error("synthesis ran out of memory on request %s: %s", rid, err)
                self.metrics.incr("synth_out_of_memory")
                self._fail(req, OUT_OF_MEMORY, "synthesis ran out of memory on this request")
            except VcstreamError as err:
                self._fail(req, err.code, str(err))
            except Exception as err:
                log.exception("synthesis failed for request %s", rid)
                self._fail(req, "internal", f"synthesis failed: {type(err).__name__}")
            finally:
                heartbeat.set_busy(False)
                with self._lock:
                    self._current = None
                last_done, trim_pending = time.monotonic(), True
            if out_of_memory:  # outside the handler: its traceback held the tensors
                recover_from_oom()

    def _next_request(self, timeout: float) -> SpeakRequest | None:
        """The next request in fair order, once the output buffer has room for it.

        Waiting until less than the lookahead is buffered keeps one client's finished lines
        from piling up in the (FIFO) output buffer ahead of another client's next line.
        """
        if not self._outbuf.wait_below(self._lookahead_samples, timeout):
            return None
        with self._queued:
            if not self._queued.wait_for(
                lambda: len(self._requests) or self._stop.is_set(), timeout
            ):
                return None
            got = self._requests.pop()
            if got is None:
                return None
            req = got[1]
            req.started_ns = req.progress_ns = time.monotonic_ns()
            self._watchdog.progress(req.started_ns)
            self._current = req
            return req

    def _pacer_loop(self) -> None:
        period = self.frame_samples / self.sample_rate_hz
        silence = np.zeros(self.frame_samples, dtype=np.float32)
        next_t = time.monotonic()
        next_metrics = next_t
        history_sent, next_history = -1, next_t
        idle = True
        heartbeat = self.heartbeats["pacer"]
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_t:
                # While idle, wake early when audio arrives and start the cadence from it,
                # so the first frame of a request is not held back by the frame clock.
                if idle and self._outbuf.wait_ready(self.frame_samples, next_t - now):
                    next_t = time.monotonic()
                else:
                    time.sleep(max(0.0, next_t - time.monotonic()))
                    continue
            next_t += period
            if next_t < time.monotonic() - 5 * period:  # far behind (suspended): resync
                next_t = time.monotonic() + period
            taken = self._outbuf.take(self.frame_samples)
            if taken is None:
                head = self._outbuf.head_request()
                idle = head is None
                self._publish_frame(head or "", silence, silence=True, end=False)
                if head:
                    self.metrics.incr("underrun_frames")
            elif taken.cancelled:
                idle = False
                self._request_done(taken.request_id, cancelled=True)
            else:
                idle = False
                self._publish_frame(
                    taken.request_id, taken.pcm, silence=False, end=taken.end_of_utterance
                )
                if taken.end_of_utterance:
                    self._request_done(taken.request_id, cancelled=False)
            heartbeat.beat()
            if (t := time.monotonic()) >= next_metrics:
                next_metrics = t + METRICS_PERIOD_S
                with_history = history_sent != self._history_changes or t >= next_history
                if with_history:
                    history_sent, next_history = self._history_changes, t + HISTORY_REPEAT_S
                try:
                    self.hub.publish(Event("metrics", None, self.status(history=with_history)))
                except Exception:  # a failing status source costs its metrics, not the frames
                    log.exception("status snapshot failed")
                    self.metrics.incr("status_errors")

    def _request_done(self, request_id: str, cancelled: bool) -> None:
        with self._lock:
            req = self._active.get(request_id)
            if cancelled and request_id not in self._cancelled:
                # The discarded audio of an earlier request of this id, failed and cleared:
                # the request now holding the id was not cancelled.
                return
        if req is not None:
            self._finish(req, cancelled=cancelled)

    def _watch_loop(self) -> None:
        while not self._stop.wait(self._watchdog.period_s):
            with self._lock:
                active = list(self._active.values())
            for req in self._watchdog.stalled(active):
                log.warning("request %s made no progress for %g s: failing it",
                            req.request_id, self._watchdog.stall_s)  # fmt: skip
                self.metrics.incr("requests_stalled")
                self._fail(req, STALLED, self._watchdog.message())

    def _publish_frame(self, request_id: str, pcm: np.ndarray, *, silence: bool, end: bool) -> None:
        now = time.monotonic_ns()
        frame = AudioFrame(
            seq=self.hub.next_seq(),
            request_id=request_id,
            sample_rate_hz=self.sample_rate_hz,
            timestamp_ns=now,
            pcm=pcm,
            silence=silence,
            end_of_utterance=end,
        )
        if not silence and request_id:
            with self._lock:
                req = self._active.get(request_id)
            if req is not None:
                req.progress_ns = now
                self._watchdog.progress(now)
                if not req.first_audio_ns:
                    req.first_audio_ns = now
                    latency_ms = (now - req.submitted_ns) / 1e6
                    self.metrics.timer("first_audio").add(latency_ms)
                    self.hub.publish(
                        Event("first_audio", request_id, {"latency_ms": round(latency_ms, 2)})
                    )
                req.audio_samples += len(pcm)
        self.hub.publish(frame)
