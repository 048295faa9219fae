"""Generated audio waiting to be published at a steady cadence.

Producer: the synthesis worker (``put``/``end``). Consumer: the output pacer (``take``).
Bounded by samples; overflow policy: the producer waits (synthesis is throttled to the
playout rate), so generated audio is never dropped before publishing. ``clear`` drops a
cancelled request's audio at once and releases a waiting producer.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Segment:
    request_id: str
    chunks: deque[np.ndarray] = field(default_factory=deque)
    samples: int = 0
    ended: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class Taken:
    request_id: str
    pcm: np.ndarray  # empty when nothing could be taken
    end_of_utterance: bool
    cancelled: bool = False


class OutputBuffer:
    def __init__(self, capacity_samples: int) -> None:
        self.capacity = capacity_samples
        self._cond = threading.Condition()
        self._segments: deque[_Segment] = deque()
        self._samples = 0
        self._closed = False
        # Ids cleared recently: a producer still running for one of them must not start a
        # fresh segment after the pacer has already discarded the cancelled one.
        self._cleared: deque[str] = deque(maxlen=256)

    @property
    def buffered_samples(self) -> int:
        return self._samples

    def _segment(self, request_id: str) -> _Segment:
        for seg in reversed(self._segments):
            # A cancelled segment waiting for the pacer to discard it belongs to an earlier
            # request of the same id: a new one gets its own.
            if seg.request_id == request_id and not seg.cancelled:
                return seg
        seg = _Segment(request_id)
        self._segments.append(seg)
        return seg

    def put(
        self,
        request_id: str,
        pcm: np.ndarray,
        timeout: float | None = None,
        live: Callable[[], bool] | None = None,
    ) -> bool:
        """Append audio; waits while the buffer is full. False if the request was cleared
        or ``live()`` (checked under the buffer's lock) says its producer is stale."""
        with self._cond:
            if request_id in self._cleared or (live is not None and not live()):
                return False
            seg = self._segment(request_id)
            ok = self._cond.wait_for(
                lambda: self._closed or seg.cancelled or self._samples < self.capacity, timeout
            )
            if not ok or self._closed or seg.cancelled:
                return False
            seg.chunks.append(np.asarray(pcm, dtype=np.float32))
            seg.samples += len(pcm)
            self._samples += len(pcm)
            self._cond.notify_all()
            return True

    def end(self, request_id: str) -> None:
        with self._cond:
            if request_id in self._cleared:
                return
            self._segment(request_id).ended = True
            self._cond.notify_all()

    def clear(self, request_id: str | None = None) -> list[str]:
        """Drop buffered audio of one request (or all); returns the ids cleared."""
        with self._cond:
            cleared = []
            for seg in self._segments:
                if request_id is None or seg.request_id == request_id:
                    seg.cancelled = True
                    self._samples -= seg.samples
                    seg.chunks.clear()
                    seg.samples = 0
                    cleared.append(seg.request_id)
            # A named request is remembered even when it has no segment yet (still queued).
            for rid in cleared if request_id is None else [request_id]:
                if rid not in self._cleared:
                    self._cleared.append(rid)
            self._cond.notify_all()
            return cleared

    def forget(self, request_id: str) -> None:
        """A new request takes ``request_id``: it is no longer a cleared one."""
        with self._cond:
            if request_id in self._cleared:
                self._cleared.remove(request_id)

    def has_ready(self, n: int) -> bool:
        seg = self._segments[0] if self._segments else None
        return seg is not None and (seg.samples >= n or seg.ended or seg.cancelled)

    def wait_ready(self, n: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or self.has_ready(n), timeout)

    def wait_below(self, n: int, timeout: float) -> bool:
        """Wait until fewer than ``n`` samples are buffered; False on timeout or close."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or self._samples < n, timeout) and (
                not self._closed
            )

    def head_request(self) -> str | None:
        with self._cond:
            return self._segments[0].request_id if self._segments else None

    def take(self, n: int) -> Taken | None:
        """Exactly ``n`` samples of the head request, or its tail when it has ended.

        None when the head request has fewer than ``n`` samples and has not ended (an
        underrun: the caller publishes flagged silence) or when nothing is buffered.
        """
        with self._cond:
            if not self._segments:
                return None
            seg = self._segments[0]
            if seg.cancelled:
                self._segments.popleft()
                self._cond.notify_all()
                return Taken(seg.request_id, np.zeros(0, np.float32), True, cancelled=True)
            if seg.samples < n and not seg.ended:
                return None
            want = min(n, seg.samples)
            out = np.empty(want, dtype=np.float32)
            filled = 0
            while filled < want:
                head = seg.chunks[0]
                k = min(len(head), want - filled)
                out[filled : filled + k] = head[:k]
                filled += k
                if k == len(head):
                    seg.chunks.popleft()
                else:
                    seg.chunks[0] = head[k:]
            seg.samples -= want
            self._samples -= want
            done = seg.ended and seg.samples == 0
            if done:
                self._segments.popleft()
            self._cond.notify_all()
            return Taken(seg.request_id, out, done)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
