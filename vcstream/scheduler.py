"""Fair request scheduling: one queue per client, served in fair turns, operators first.

A single FIFO lets one client's backlog hold up everyone else's lines for as long as the
backlog lasts. Here each client has its own bounded queue and lines are served by
start-time fair queueing with a cost of one line each (round-robin that also treats
newcomers fairly): every line gets a start tag ``max(V, the client's previous tag + 1)``,
where ``V`` is the tag of the line served last, and the smallest tag is served next (ties
in arrival order). A client that had nothing queued therefore starts at ``V``, ahead of
the rest of any backlog: its next line waits for the line being served and at most one
line of each other client, however many lines those clients have queued. Plain
round-robin would put the newcomer behind the backlogged client's next line as well.

Operators' lines are served before anyone else's (the same fair turns among operators).

A plain object with no lock and no threads: the engine calls it under its own lock.
Overflow policy: reject. A client over its own limit gets ``ClientQueueFullError``
(``client_queue_full``); a plain client when all plain clients together hold ``max_total``
lines gets ``QueueFullError`` (``queue_full``). Operators are held only to their own
limit, so a flood from plain clients never locks the operator out.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from vcstream.errors import ClientQueueFullError, QueueFullError

T = TypeVar("T")


@dataclass(frozen=True)
class ClientId:
    """Who sent a request. Two are equal when their ``key`` is.

    ``key`` is private (a connection number, a ZeroMQ identity) and is never shown;
    ``label`` is what status shows, so it must leak nothing (no token, no address);
    ``operator`` marks the configured operator, whose lines go first.
    """

    key: Hashable
    label: str = field(compare=False)
    operator: bool = field(default=False, compare=False)


# In-process callers (`vcstream say`, tests) share one identity.
LOCAL = ClientId(("local",), "local")


@dataclass
class _Line(Generic[T]):
    tag: int  # start tag, in lines
    seq: int  # arrival order, breaks ties
    item: T


class _Class(Generic[T]):
    """The queues of one priority class (operators, or everyone else)."""

    def __init__(self) -> None:
        self.queues: dict[ClientId, deque[_Line[T]]] = {}
        self.vtime = 0  # tag of the line served last
        self.total = 0

    def head(self) -> ClientId | None:
        best, best_key = None, None
        for client, q in self.queues.items():
            key = (q[0].tag, q[0].seq)
            if best_key is None or key < best_key:
                best, best_key = client, key
        return best


class FairScheduler(Generic[T]):
    def __init__(self, max_total: int, max_per_client: int) -> None:
        if max_total < 1 or max_per_client < 1:
            raise ValueError("queue limits must be at least 1")
        self.max_total = max_total
        self.max_per_client = max_per_client
        self._operators: _Class[T] = _Class()
        self._plain: _Class[T] = _Class()
        self._seq = itertools.count()

    def __len__(self) -> int:
        return self._operators.total + self._plain.total

    def _class_of(self, client: ClientId) -> _Class[T]:
        return self._operators if client.operator else self._plain

    def queued(self, client: ClientId) -> int:
        q = self._class_of(client).queues.get(client)
        return len(q) if q else 0

    def check(self, client: ClientId) -> None:
        """Raise the error ``push`` would raise for ``client`` now (a cheap early refusal)."""
        cls = self._class_of(client)
        q = cls.queues.get(client)
        n = len(q) if q else 0
        if n >= self.max_per_client:
            raise ClientQueueFullError(
                f"this client already has {n} lines queued (limit {self.max_per_client}): "
                "wait for one to finish"
            )
        if not client.operator and cls.total >= self.max_total:
            raise QueueFullError(f"request queue full ({self.max_total} pending): try again later")

    def push(self, client: ClientId, item: T, *, front: bool = False) -> int:
        """Queue ``item`` for ``client``; returns how many queued lines come before it.

        ``front`` serves it before the client's own other lines (never before others').
        """
        self.check(client)
        cls = self._class_of(client)
        q = cls.queues.get(client)
        if q is None:
            q = cls.queues[client] = deque()
        if front and q:
            # Take the head's turn; the client's other lines each move one turn later.
            line = _Line(q[0].tag, q[0].seq, item)
            for later in q:
                later.tag += 1
            q.appendleft(line)
        else:
            tag = max(cls.vtime, q[-1].tag + 1) if q else cls.vtime
            line = _Line(tag, next(self._seq), item)
            q.append(line)
        cls.total += 1
        return self._position(client, line)

    def _position(self, client: ClientId, line: _Line[T]) -> int:
        mine = (line.tag, line.seq)
        ahead = 0 if client.operator else self._operators.total
        for q in self._class_of(client).queues.values():
            ahead += sum(1 for other in q if (other.tag, other.seq) < mine)
        return ahead

    def pop(self) -> tuple[ClientId, T] | None:
        """The next line to serve and its client, or None when nothing is queued."""
        for cls in (self._operators, self._plain):
            client = cls.head()
            if client is None:
                continue
            q = cls.queues[client]
            line = q.popleft()
            if not q:
                del cls.queues[client]
            cls.total -= 1
            cls.vtime = max(cls.vtime, line.tag)
            return client, line.item
        return None

    def remove(self, match: Callable[[ClientId, T], bool]) -> list[T]:
        """Take every queued line for which ``match(client, item)`` holds out of the queues."""
        removed: list[T] = []
        for cls in (self._operators, self._plain):
            for client in list(cls.queues):
                keep: deque[_Line[T]] = deque()
                for line in cls.queues[client]:
                    if match(client, line.item):
                        removed.append(line.item)
                        cls.total -= 1
                    else:
                        keep.append(line)
                if keep:
                    cls.queues[client] = keep
                else:
                    del cls.queues[client]
        return removed

    def depths(self) -> list[dict]:
        """Per-client queue depth for status, operators first (labels only, never keys)."""
        return [
            {"client": c.label, "queued": len(q), "operator": c.operator}
            for cls in (self._operators, self._plain)
            for c, q in cls.queues.items()
        ]
