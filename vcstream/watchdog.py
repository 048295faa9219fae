"""The service watchdog: systemd hears ``WATCHDOG=1`` only while every engine loop progresses.

Once a second (or twice per ``WatchdogSec=``, whichever is sooner) the watchdog asks the
``LoopWatch`` whether the pacer, synthesis and capture loops have all beaten recently. If
they have, it pings systemd; if one is stuck, it withholds the ping and says which loop in
``STATUS=``, so systemd restarts a wedged daemon after ``WatchdogSec=`` (the unit's
``Restart=``). Outside systemd it still watches, for the log and the ``watchdog`` status.
The task runs on the daemon's event loop, so a stuck event loop stops the pings as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from vcstream.liveness import LoopState, LoopWatch
from vcstream.sdnotify import Notifier

log = logging.getLogger(__name__)


def describe_stall(stalled: list[LoopState]) -> str:
    loops = ", ".join(
        f"{s.name} loop stuck for {s.age_s:.0f} s (limit {s.limit_s:g} s)" for s in stalled
    )
    return f"STALLED: {loops}; watchdog ping withheld"


def status_line(status: dict[str, Any], clients: int | None = None) -> str:
    """What the daemon is doing, in one short line for ``systemctl status``."""
    parts = []
    current = status.get("current_request")
    queued = status.get("queues", {}).get("requests", 0)
    parts.append(f"speaking {current}" if current else "idle")
    if queued:
        parts.append(f"{queued} queued")
    capture = status.get("capture", {})
    state = capture.get("state", "ok")
    if capture.get("source") == "none":
        parts.append("no capture")
    elif state == "ok":
        parts.append(f"capture {capture.get('source', '?')} ok")
    else:
        parts.append(f"capture {state}: {capture.get('reason', '')}".rstrip(": "))
    voice = status.get("voice", {}).get("speaking_in")
    if voice:
        parts.append(f"voice {voice}")
    if clients is not None:
        parts.append(f"{clients} client{'s' if clients != 1 else ''}")
    return "; ".join(parts)


class ServiceWatchdog:
    def __init__(
        self,
        notifier: Notifier,
        watch: LoopWatch,
        *,
        describe: Callable[[], str],
        check_interval_s: float = 1.0,
    ) -> None:
        self.notifier = notifier
        self.watch = watch
        self.describe = describe
        ping = notifier.watchdog_interval_s
        self.interval_s = min(check_interval_s, ping) if ping else check_interval_s
        self.pings = 0
        self.withheld = 0
        self._stalled: list[str] = []
        self._last_status: str | None = None

    def tick(self) -> bool:
        """One check: ping and report when every loop progresses; True when it did."""
        stalled = self.watch.stalled()
        names = [s.name for s in stalled]
        if names != self._stalled:
            if stalled:
                log.error("%s", describe_stall(stalled))
            else:
                log.warning("every loop is making progress again (was stuck: %s)", self._stalled)
            self._stalled = names
        if stalled:
            # Only the stall is described: asking a wedged engine for its status could block.
            self.withheld += 1
            self._send_status(describe_stall(stalled))
            return False
        if self.notifier.watchdog_interval_s:
            self.notifier.watchdog()  # first, before anything that could itself be slow
            self.pings += 1
        try:
            text = self.describe()
        except Exception:  # a report must never stop the pings
            log.exception("could not describe the daemon's state")
            return True
        self._send_status(text)
        return True

    def _send_status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)

    def stats(self) -> dict[str, Any]:
        return {
            "state": "stalled" if self._stalled else "ok",
            "stalled": list(self._stalled),
            "loops": {
                s.name: {"age_s": round(s.age_s, 2), "busy": s.busy, "limit_s": s.limit_s}
                for s in self.watch.states()
            },
            "systemd": self.notifier.enabled,
            "systemd_watchdog_s": self.notifier.watchdog_usec / 1e6 or None,
            "pings": self.pings,
            "withheld": self.withheld,
        }

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
