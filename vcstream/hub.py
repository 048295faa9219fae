"""Fan-out of published audio frames and events to listeners.

The engine publishes; each listener (a WebSocket client, a ZeroMQ PUB socket, a speaker,
a recorder) registers an ``offer`` callable that must never block: it copies the item
into the listener's own bounded queue and applies that queue's overflow policy. So one
slow listener never slows the engine or another listener.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioFrame:
    """One published frame of output audio (float32 mono)."""

    seq: int  # per-daemon sequence number, contiguous across requests and silence fill
    request_id: str  # "" for silence between requests
    sample_rate_hz: int
    timestamp_ns: int  # time.monotonic_ns() when published
    pcm: np.ndarray  # float32 [-1, 1]
    silence: bool = False  # True: fill inserted because synthesis fell behind or is idle
    end_of_utterance: bool = False  # last frame of a request

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.pcm) / self.sample_rate_hz


@dataclass(frozen=True)
class Event:
    """A JSON-able event: accepted, started, first_audio, done, error, embedding, metrics..."""

    type: str
    request_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    timestamp_ns: int = field(default_factory=time.monotonic_ns)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "timestamp_ns": self.timestamp_ns}
        if self.request_id is not None:
            out["id"] = self.request_id
        out.update(self.data)
        return out


Offer = Callable[[AudioFrame | Event], None]


class Hub:
    """Thread-safe registry of listeners; ``publish`` calls every listener's ``offer``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[int, tuple[str, Offer]] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(0)
        self.failed_offers = 0

    def next_seq(self) -> int:
        return next(self._seq)

    def subscribe(self, name: str, offer: Offer) -> int:
        with self._lock:
            token = next(self._ids)
            self._listeners[token] = (name, offer)
            return token

    def unsubscribe(self, token: int) -> None:
        with self._lock:
            self._listeners.pop(token, None)

    def listener_names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self._listeners.values()]

    def publish(self, item: AudioFrame | Event) -> None:
        with self._lock:
            listeners = list(self._listeners.values())
        for name, offer in listeners:
            try:
                offer(item)  # must not block
            except Exception:  # a listener's failure is its own business, not the engine's
                self.failed_offers += 1
                log.exception("listener %s failed to take a %s", name, type(item).__name__)
