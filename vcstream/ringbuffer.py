"""A preallocated single-producer, single-consumer ring of float32 samples.

The producer is a sound-device callback: ``write`` does one or two slice copies into
preallocated memory, takes no lock and allocates nothing. Positions are monotonically
increasing integers; under CPython each store is atomic, which is all SPSC needs.
Overflow policy: drop-oldest. A reader that fell more than a ring behind skips ahead to
the oldest sample still held and counts what it lost.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("ring capacity must be positive")
        self._buf = np.zeros(capacity, dtype=np.float32)
        self.capacity = capacity
        self._write_pos = 0  # total samples ever written (producer-owned)
        self._read_pos = 0  # total samples ever consumed (consumer-owned)
        self.dropped_samples = 0  # consumer-owned

    def write(self, samples: np.ndarray) -> None:
        """Producer side: copy samples in, overwriting the oldest when full."""
        n = len(samples)
        if n >= self.capacity:
            samples = samples[n - self.capacity :]
            start = self._write_pos + n - self.capacity
            n = self.capacity
        else:
            start = self._write_pos
        i = start % self.capacity
        first = min(n, self.capacity - i)
        self._buf[i : i + first] = samples[:first]
        if first < n:
            self._buf[: n - first] = samples[first:]
        self._write_pos = start + n

    def available(self) -> int:
        return min(self._write_pos - self._read_pos, self.capacity)

    def read(self, max_samples: int | None = None) -> np.ndarray:
        """Consumer side: take up to ``max_samples`` (all available by default)."""
        write_pos = self._write_pos
        oldest = write_pos - self.capacity
        if self._read_pos < oldest:
            self.dropped_samples += oldest - self._read_pos
            self._read_pos = oldest
        n = write_pos - self._read_pos
        if max_samples is not None:
            n = min(n, max_samples)
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        i = self._read_pos % self.capacity
        first = min(n, self.capacity - i)
        out = np.empty(n, dtype=np.float32)
        out[:first] = self._buf[i : i + first]
        if first < n:
            out[first:] = self._buf[: n - first]
        self._read_pos += n
        return out

    def read_into(self, out: np.ndarray) -> int:
        """Consumer side without allocation (for audio callbacks): fill ``out`` as far as
        possible and return the number of samples written; the rest is left untouched."""
        write_pos = self._write_pos
        oldest = write_pos - self.capacity
        if self._read_pos < oldest:
            self.dropped_samples += oldest - self._read_pos
            self._read_pos = oldest
        n = min(write_pos - self._read_pos, len(out))
        if n <= 0:
            return 0
        i = self._read_pos % self.capacity
        first = min(n, self.capacity - i)
        out[:first] = self._buf[i : i + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        self._read_pos += n
        return n
