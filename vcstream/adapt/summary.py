"""A short line about the live voice's adaptation (status ``adapt``), for `vcstream top`."""

from __future__ import annotations

from typing import Any


def describe(a: dict[str, Any] | None) -> str:
    """E.g. ``decoder, 12.3 s, sim 0.61→0.78``, ``tune 40%``, ``needs 1.2 s more``."""
    if not a:
        return "–"
    state = a.get("state")
    if state == "unavailable":
        return "not available"
    if state == "adapting":
        pr = a.get("progress") or {}
        frac = pr.get("fraction")
        pct = f" {100 * frac:.0f}%" if isinstance(frac, int | float) else ""
        return f"{pr.get('stage', 'starting')}{pct}"
    done = a.get("adapted")
    if done:
        line = f"{done['plan']}, {done['seconds']:.1f} s"
        if done.get("similarity") is not None and done.get("similarity_before") is not None:
            line += f", sim {done['similarity_before']:.2f}→{done['similarity']:.2f}"
        return line
    if state == "error":
        return f"failed: {(a.get('last_error') or {}).get('code', '?')}"
    need = a.get("min_seconds", 0) - a.get("voice_seconds", 0)
    return f"needs {need:.1f} s more" if need > 0 else "ready (not adapted)"
