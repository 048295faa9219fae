"""The daemon's own footprint (resident memory, threads, open file descriptors), for status.

Read from Linux ``/proc``; elsewhere the figures are absent (``{}``), never made up.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_stats(pid: int | None = None) -> dict:
    """``{"rss_mb", "threads", "fds"}`` of a process (this one by default); {} without /proc."""
    base = Path("/proc") / (str(pid) if pid else "self")
    try:
        lines = (base / "status").read_text().splitlines()
        fds = len(os.listdir(base / "fd"))
    except OSError:
        return {}
    rss_kb = threads = 0
    for line in lines:
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return {"rss_mb": round(rss_kb / 1024, 1), "threads": threads, "fds": fds}
