"""A stand-in for systemd's end of sd_notify: a real AF_UNIX datagram socket that records."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid


class NotifySocket:
    """Binds a datagram socket (a path, or ``abstract=True`` for the '@' namespace) and
    collects every assignment sent to it, with its arrival time, on a reader thread."""

    def __init__(self, path: str | None = None, *, abstract: bool = False) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"vcstream-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.sock.bind(b"\0" + name.encode())
            self.env_value = "@" + name
        else:
            assert path is not None
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.1)
        self._cond = threading.Condition()
        self.messages: list[tuple[float, list[str]]] = []  # (monotonic time, assignments)
        self._closed = False
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), data.decode().split("\n")))
                self._cond.notify_all()

    def env(self, watchdog_usec: int | None = None) -> dict[str, str]:
        out = {"NOTIFY_SOCKET": self.env_value}
        if watchdog_usec is not None:
            out["WATCHDOG_USEC"] = str(watchdog_usec)
        return out

    def assignments(self, since: float = 0.0) -> list[str]:
        with self._cond:
            return [a for t, msg in self.messages if t >= since for a in msg]

    def times_of(self, assignment: str, since: float = 0.0) -> list[float]:
        with self._cond:
            return [t for t, msg in self.messages if t >= since and assignment in msg]

    def wait_for(self, assignment: str, timeout: float = 30.0, since: float = 0.0) -> float:
        """The arrival time of the first ``assignment`` (e.g. ``READY=1``) at or after ``since``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, msg in self.messages:
                    if t >= since and assignment in msg:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [m for _, m in self.messages[-10:]]
                    raise TimeoutError(f"no {assignment!r} within {timeout} s; last: {seen}")
                self._cond.wait(left)

    def close(self) -> None:
        self._closed = True
        self._thread.join(timeout=1)
        self.sock.close()
