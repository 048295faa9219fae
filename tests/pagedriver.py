"""What the two browser drivers (``chromium_cdp.Chromium``, ``firefox_bidi.Firefox``) share:
polling a JavaScript expression, finding an element's centre, writing screenshots, and
ending the browser with every helper process it started."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any


class PageDriver:
    """Base of the drivers: subclasses provide ``evaluate`` and ``close``."""

    def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def wait_for(self, expression: str, timeout: float = 20.0, interval: float = 0.1) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.evaluate(expression)
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout} s waiting for: {expression} (last {last!r})")

    def element_centre(self, selector: str) -> dict | None:
        """``{x, y}`` of the element's middle in viewport pixels, scrolled into view; None
        when nothing matches."""
        got = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null; el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return JSON.stringify({x: r.left + r.width / 2, y: r.top + r.height / 2}); })()"
        )
        return None if got is None else json.loads(got)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_png(path: str | Path, data_base64: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(data_base64))
    return path


def end_process_group(proc: subprocess.Popen) -> None:
    """End a browser started with ``start_new_session=True`` and all its helpers.

    The group id is the browser's pid. Helper and content processes can outlive the browser
    (and still write into its profile), so the whole group is signalled until none is left.
    """
    pgid = proc.pid
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)  # a browser asked to close ends on its own
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_members(pgid):
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            proc.poll()  # reap the browser itself
            if not _group_members(pgid):
                break
            time.sleep(0.05)
    proc.poll()


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in a process group."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(stat.parent.name))
    return out
