"""Every accepted request ends: those that stop making progress are found and failed.

A request can only end through the engine's threads (its audio reaches the pacer, or its
synthesis fails); if one of them wedges (a model call that never returns, a device that
blocks), the request would wait forever and its id would stay "in use". The watchdog is a
plain object the engine polls from a thread of its own, so a wedged synthesis or pacer
thread cannot stop it.

Progress is per request (started, a chunk synthesised, a frame of it published) and for
the engine as a whole (any of those for any request). A request is stalled only when
neither it nor the engine has progressed for ``stall_s``: a request queued behind a long one
that is still playing, or waiting for room in the output buffer, is not stalled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar


class Progressing(Protocol):
    progress_ns: int  # time.monotonic_ns() of its last progress


R = TypeVar("R", bound=Progressing)

STALLED = "stalled"  # the error code of a request failed by the watchdog


class RequestWatchdog:
    def __init__(self, stall_s: float, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.stall_s = float(stall_s)
        self.stall_ns = int(self.stall_s * 1e9)
        self.clock = clock
        self.last_progress_ns = clock()
        self.failed = 0  # requests found stalled so far

    @property
    def enabled(self) -> bool:
        return self.stall_ns > 0

    @property
    def period_s(self) -> float:
        """How often to poll: often enough that a stall is failed within a quarter of
        ``stall_s`` of being one, never more than once a second."""
        return min(1.0, max(0.05, self.stall_s / 4))

    def progress(self, now_ns: int | None = None) -> None:
        """The engine moved (any request): one attribute store, safe from any thread."""
        self.last_progress_ns = self.clock() if now_ns is None else now_ns

    def stalled(self, requests: Iterable[R], now_ns: int | None = None) -> list[R]:
        """The requests without progress, their own or the engine's, for ``stall_s``."""
        if not self.enabled:
            return []
        now = self.clock() if now_ns is None else now_ns
        if now - self.last_progress_ns < self.stall_ns:
            return []
        out = [r for r in requests if now - r.progress_ns >= self.stall_ns]
        self.failed += len(out)
        return out

    def message(self) -> str:
        return (
            f"no progress for {self.stall_s:g} s (synthesis or output stalled): the request "
            "was ended and its id freed"
        )
