"""Keeps the capture source running: a device that fails is reopened with backoff.

A plain object, polled by the engine's capture loop (so a driver call that hangs shows up as
a stuck capture loop to the watchdog). States:

* ``ok``: the source runs; each poll asks its ``check()`` (sources without one never fail);
* ``degraded``: it failed to start or stopped delivering audio; it is closed, and reopened
  after ``retry_initial_s``, then after twice as long each time, up to ``retry_max_s``;
  everything else (network, synthesis from saved or already heard voices) goes on;
* back to ``ok`` when a reopen succeeds (``recoveries`` counts these).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from vcstream.capture import CaptureSource
from vcstream.config import CaptureConfig

log = logging.getLogger(__name__)

OK, DEGRADED, STOPPED = "ok", "degraded", "stopped"


class CaptureSupervisor:
    def __init__(
        self,
        source: CaptureSource,
        cfg: CaptureConfig,
        *,
        on_change: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.retry_initial_s = cfg.retry_initial_s
        self.retry_max_s = max(cfg.retry_max_s, cfg.retry_initial_s)
        self._on_change = on_change
        self._clock = clock
        self.state = STOPPED
        self.reason = ""
        self.failures = 0  # times it went from ok (or starting) to degraded
        self.retries = 0  # reopen attempts
        self.recoveries = 0
        self._backoff_s = self.retry_initial_s
        self._next_retry = 0.0
        self._degraded_since = 0.0

    def start(self) -> None:
        """Open the source; a failure leaves it degraded and retried, never raises."""
        self._open(first=True)

    def stop(self) -> None:
        if self.state != STOPPED:
            self._close()
            self.state = STOPPED

    def poll(self) -> None:
        """One look: detect a failure, or retry when it is time."""
        if self.state == OK:
            check = getattr(self.source, "check", None)
            reason = check() if check is not None else None
            if reason:
                self._close()
                self._degrade(reason)
        elif self.state == DEGRADED and self._clock() >= self._next_retry:
            self.retries += 1
            log.debug("capture: reopening %s (retry %d)", self.source.name, self.retries)
            self._open(first=False)

    def _open(self, first: bool) -> None:
        try:
            self.source.start()
        except Exception as err:  # DeviceUnavailableError, or a driver's own error
            self._close()
            self._degrade(str(err))
            return
        if not first:
            self.recoveries += 1
            log.warning(
                "capture: %s is back after %.1f s (%d retries)",
                self.source.name,
                self._clock() - self._degraded_since,
                self.retries,
            )
        self.state, self.reason = OK, ""
        self._backoff_s = self.retry_initial_s
        self._changed()

    def _close(self) -> None:
        try:
            self.source.stop()
        except Exception as err:  # a device that has gone may fail to close; it is gone anyway
            log.debug("capture: closing %s failed: %s", self.source.name, err)

    def _degrade(self, reason: str) -> None:
        now = self._clock()
        if self.state != DEGRADED:
            self.failures += 1
            self._degraded_since = now
            self._backoff_s = self.retry_initial_s
            log.warning(
                'capture degraded: %s; retrying in %g s (set [capture] source = "none" or '
                "serve --no-capture to run without voice input)",
                reason,
                self._backoff_s,
            )
        self._next_retry = now + self._backoff_s
        self._backoff_s = min(2 * self._backoff_s, self.retry_max_s)
        changed = self.state != DEGRADED or reason != self.reason
        self.state, self.reason = DEGRADED, reason
        if changed:
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.stats())

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "failures": self.failures,
            "retries": self.retries,
            "recoveries": self.recoveries,
        }
        if self.state == DEGRADED:
            now = self._clock()
            out["reason"] = self.reason
            out["degraded_s"] = round(now - self._degraded_since, 1)
            out["next_retry_s"] = round(max(0.0, self._next_retry - now), 1)
        return out
