"""The systemd notification protocol (sd_notify(3)) spoken directly: no libsystemd needed.

A service that systemd starts with ``Type=notify`` finds the address of a datagram socket in
``$NOTIFY_SOCKET`` (an absolute path, or ``@name`` in the abstract namespace) and sends it
newline-separated ``KEY=VALUE`` assignments: ``READY=1``, ``STATUS=...``, ``WATCHDOG=1``,
``STOPPING=1``. With ``WatchdogSec=`` set, ``$WATCHDOG_USEC`` holds the timeout (and
``$WATCHDOG_PID`` the process it is meant for). Outside systemd the variables are absent and
every call does nothing, so the daemon runs the same anywhere.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping, MutableMapping

log = logging.getLogger(__name__)

ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
SEND_TIMEOUT_S = 0.5  # the manager reads at once; never hold a caller longer than this
MAX_STATUS_CHARS = 200


def parse_address(value: str | None) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as a ``sendto`` address; None when absent or of an unsupported kind."""
    if not value:
        return None
    if value.startswith("@"):
        # Linux abstract namespace: a leading NUL instead of the '@', no terminating NUL.
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    # systemd 254+ may pass vsock:CID:PORT (to a VM); we only speak AF_UNIX.
    log.warning("NOTIFY_SOCKET=%r is not a unix socket path: not notifying systemd", value)
    return None


def parse_watchdog_usec(env: Mapping[str, str], pid: int) -> int:
    """The watchdog timeout in microseconds meant for process ``pid``; 0 when not enabled."""
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return 0
    owner = env.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != pid:
                return 0  # inherited from a parent: the pings are not ours to send
        except ValueError:
            return 0
    return max(0, usec)


def one_line(text: str) -> str:
    """A STATUS value: newlines would start a new assignment, so they become spaces."""
    text = " ".join(text.split())
    return text if len(text) <= MAX_STATUS_CHARS else text[: MAX_STATUS_CHARS - 1] + "…"


class Notifier:
    """Sends state changes to the service manager; a no-op without ``$NOTIFY_SOCKET``."""

    def __init__(self, address: str | bytes | None = None, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec if address is not None else 0
        self.sent = 0
        self.failed = 0
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(
        cls, env: MutableMapping[str, str] | None = None, *, unset: bool = False
    ) -> Notifier:
        """From ``env`` (default ``os.environ``). ``unset`` removes the variables, so that child
        processes cannot notify on our behalf or inherit our watchdog."""
        env = os.environ if env is None else env
        notifier = cls(
            parse_address(env.get("NOTIFY_SOCKET")), parse_watchdog_usec(env, os.getpid())
        )
        if unset:
            for name in ENV_VARS:
                env.pop(name, None)
        return notifier

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval_s(self) -> float | None:
        """How often to ping: half the timeout, as sd_watchdog_enabled(3) recommends."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` lines; False when it could not be sent."""
        if self.address is None or not assignments:
            return False
        data = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.settimeout(SEND_TIMEOUT_S)
            self._sock.sendto(data, self.address)
        except OSError as err:
            self.failed += 1
            if not self._warned:  # once: a missing manager must not flood the log
                self._warned = True
                log.warning("cannot notify systemd at %r: %s", self.address, err)
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *self._status(status))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={one_line(text)}")

    def watchdog(self, status: str | None = None) -> bool:
        return self.notify("WATCHDOG=1", *self._status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *self._status(status))

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        return () if text is None else (f"STATUS={one_line(text)}",)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
