"""Per-stage timing counters, read as snapshots by status, the dashboard and bench."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class StageTimer:
    """Counts calls and wall time of one stage; keeps a window of recent durations."""

    def __init__(self, name: str, window: int = 256) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._recent: deque[float] = deque(maxlen=window)
        self.count = 0
        self.total_ms = 0.0
        self.last_ms = 0.0
        self.units = 0.0  # work done, e.g. seconds of audio produced, for per-unit cost

    def add(self, elapsed_ms: float, units: float = 0.0) -> None:
        with self._lock:
            self.count += 1
            self.total_ms += elapsed_ms
            self.last_ms = elapsed_ms
            self.units += units
            self._recent.append(elapsed_ms)

    @contextmanager
    def time(self, units: float = 0.0) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(1000.0 * (time.perf_counter() - t0), units)

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            recent = sorted(self._recent)
            n = len(recent)
            return {
                "count": self.count,
                "total_ms": round(self.total_ms, 3),
                "last_ms": round(self.last_ms, 3),
                "p50_ms": round(recent[n // 2], 3) if n else 0.0,
                "p95_ms": round(recent[min(n - 1, int(0.95 * n))], 3) if n else 0.0,
                "units": round(self.units, 3),
            }


class Metrics:
    """A named set of stage timers and counters, safe to read from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._timers: dict[str, StageTimer] = {}
        self._counters: dict[str, int] = {}

    def timer(self, name: str) -> StageTimer:
        with self._lock:
            if name not in self._timers:
                self._timers[name] = StageTimer(name)
            return self._timers[name]

    def incr(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counters[name] = self._counters.get(name, 0) + by

    def counter(self, name: str) -> int:
        with self._lock:
            return self._counters.get(name, 0)

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            timers = list(self._timers.values())
            counters = dict(self._counters)
        return {"stages": {t.name: t.snapshot() for t in timers}, "counters": counters}
