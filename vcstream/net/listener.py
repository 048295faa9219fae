"""A network listener's own bounded queue: the isolation between one client and the rest.

Three kinds of item, each bounded on its own, popped in the order they were put:

* audio frames: overflow policy drop-oldest (a late listener hears the newest audio);
* status snapshots: drop-oldest, only the latest few matter (each supersedes the last);
* events and replies: a larger bound, so under pressure audio is lost long before any
  event is; if even that overflows, the oldest event goes (counted).

Drops are counted. A listener whose audio keeps overflowing (the queue never drains back
to half full) for ``overflow_disconnect_s`` should be disconnected: ``should_disconnect``.

Single-threaded by design (the asyncio loop owns it); the clock is injectable for tests.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

AUDIO = "audio"
EVENT = "event"
STATUS = "status"
KINDS = (AUDIO, EVENT, STATUS)


@dataclass
class QueueStats:
    put: int = 0
    sent: int = 0
    dropped_audio: int = 0
    dropped_events: int = 0
    dropped_status: int = 0
    overflow_episodes: int = 0


class ListenerQueue:
    def __init__(
        self,
        audio_capacity: int,
        *,
        event_capacity: int = 256,
        status_capacity: int = 2,
        overflow_disconnect_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if audio_capacity < 1 or event_capacity < 1 or status_capacity < 1:
            raise ValueError("queue capacities must be at least 1")
        self.capacity = {AUDIO: audio_capacity, EVENT: event_capacity, STATUS: status_capacity}
        self.overflow_disconnect_s = overflow_disconnect_s
        self._clock = clock
        self._queues: dict[str, deque[tuple[int, Any]]] = {k: deque() for k in KINDS}
        self._order = itertools.count()
        self._overflow_since: float | None = None
        self.stats = QueueStats()

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def depth(self, kind: str) -> int:
        return len(self._queues[kind])

    def put(self, kind: str, item: Any) -> None:
        """Never blocks: when this kind is full its oldest item is dropped and counted."""
        q = self._queues[kind]
        if len(q) >= self.capacity[kind]:
            q.popleft()
            if kind == AUDIO:
                self.stats.dropped_audio += 1
                if self._overflow_since is None:
                    self._overflow_since = self._clock()
                    self.stats.overflow_episodes += 1
            elif kind == EVENT:
                self.stats.dropped_events += 1
            else:
                self.stats.dropped_status += 1
        q.append((next(self._order), item))
        self.stats.put += 1

    def pop(self) -> tuple[str, Any] | None:
        """The oldest item of any kind, or None when empty."""
        best_kind, best_order = None, None
        for kind, q in self._queues.items():
            if q and (best_order is None or q[0][0] < best_order):
                best_kind, best_order = kind, q[0][0]
        if best_kind is None:
            return None
        _, item = self._queues[best_kind].popleft()
        self.stats.sent += 1
        # The episode ends once the listener has caught up to half the queue.
        if (
            self._overflow_since is not None
            and len(self._queues[AUDIO]) <= self.capacity[AUDIO] // 2
        ):
            self._overflow_since = None
        return best_kind, item

    def clear(self) -> None:
        for q in self._queues.values():
            q.clear()

    @property
    def overflowing_s(self) -> float:
        """How long the current overflow episode has lasted (0 when not overflowing)."""
        if self._overflow_since is None:
            return 0.0
        return max(0.0, self._clock() - self._overflow_since)

    def should_disconnect(self) -> bool:
        return (
            self._overflow_since is not None
            and self._clock() - self._overflow_since >= self.overflow_disconnect_s
        )

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        return {
            "queued_audio": len(self._queues[AUDIO]),
            "queued_events": len(self._queues[EVENT]),
            "audio_capacity": self.capacity[AUDIO],
            "sent": s.sent,
            "dropped_audio": s.dropped_audio,
            "dropped_events": s.dropped_events,
            "dropped_status": s.dropped_status,
            "overflow_episodes": s.overflow_episodes,
            "overflowing_s": round(self.overflowing_s, 3),
        }
