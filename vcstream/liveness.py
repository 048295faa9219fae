"""Proof of life for the engine's loops, and the rule that says when one is wedged.

Each loop owns a ``Heartbeat`` and beats it whenever it completes an iteration: the pacer per
published frame, the capture loop per look at the capture ring, the synthesis loop per wait
for a request and, inside a synthesis call, per chunk of audio it hands on. So an idle loop
that is waiting still beats (its waits time out), and only a loop stuck inside one call
stops. ``LoopWatch`` applies the limits: a loop is stalled when its last beat is older than
``idle_limit_s``, or ``busy_limit_s`` while it is marked busy (inside a synthesis call,
where one step may rightly take longer: the first chunk of a long sentence).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


class Heartbeat:
    """One loop's last completed iteration. Written by that loop only; read by the watch."""

    __slots__ = ("_clock", "busy", "count", "last")

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.last = clock()
        self.count = 0
        self.busy = False

    def beat(self) -> None:
        self.last = self._clock()
        self.count += 1

    def set_busy(self, busy: bool) -> None:
        """Enter or leave a long call (the busy limit applies); counts as a beat."""
        self.busy = busy
        self.beat()


@dataclass(frozen=True)
class LoopState:
    name: str
    age_s: float
    busy: bool
    limit_s: float
    beats: int

    @property
    def stalled(self) -> bool:
        return self.age_s > self.limit_s


class LoopWatch:
    def __init__(
        self,
        heartbeats: Mapping[str, Heartbeat],
        *,
        idle_limit_s: float,
        busy_limit_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.heartbeats = heartbeats
        self.idle_limit_s = idle_limit_s
        self.busy_limit_s = busy_limit_s
        self._clock = clock

    def states(self) -> list[LoopState]:
        now = self._clock()
        out = []
        for name, hb in self.heartbeats.items():
            busy = hb.busy
            limit = self.busy_limit_s if busy else self.idle_limit_s
            out.append(LoopState(name, max(0.0, now - hb.last), busy, limit, hb.count))
        return out

    def stalled(self) -> list[LoopState]:
        return [s for s in self.states() if s.stalled]
