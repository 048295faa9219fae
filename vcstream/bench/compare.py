"""vcstream against Piper, per vocoder quality: the ratio of each figure to Piper's from
the same run, on the same sentences, and the speed targets of issue #10."""

from __future__ import annotations

from typing import Any

# Issue #10's targets, per quality: (name, figure, bound, as a multiple of Piper's or None).
TARGETS: dict[str, tuple[tuple[str, str, float, float | None], ...]] = {
    "full": (("rtf_le_0.30", "rtf", 0.30, None),),
    "lite": (
        ("rtf_le_0.10", "rtf", 0.10, None),
        ("rtf_le_2x_piper", "rtf", None, 2.0),
        ("ttfa_medium_le_80ms", "ttfa_medium", 80.0, None),
        ("ttfa_medium_le_0.5x_piper", "ttfa_medium", None, 0.5),
    ),
}


def _ratio(ours: float, piper: float) -> float | None:
    return round(ours / piper, 3) if piper > 0 else None


def versus_piper(ours: dict[str, dict], piper: dict[str, dict]) -> dict[str, dict]:
    """Per text label: our median time to first audio and RTF over Piper's."""
    out = {}
    for label, r in ours.items():
        p = piper[label]
        out[label] = {
            "ttfa_ratio": _ratio(
                r["time_to_first_audio_ms"]["median"], p["time_to_first_audio_ms"]["median"]
            ),
            "rtf_ratio": _ratio(r["rtf"]["median"], p["rtf"]["median"]),
        }
    return out


def quality_targets(quality: str, ours: dict[str, dict], piper: dict | None) -> dict[str, bool]:
    """The issue's targets for ``quality``; those relative to Piper only with Piper's run.
    "rtf" is the worst text's median, "ttfa_medium" the 10-word sentence's median."""

    def figures(rows: dict[str, dict]) -> dict[str, float]:
        out = {"rtf": max(r["rtf"]["median"] for r in rows.values())}
        if "medium" in rows:
            out["ttfa_medium"] = rows["medium"]["time_to_first_audio_ms"]["median"]
        return out

    ours_f, theirs = figures(ours), None if piper is None else figures(piper)
    met = {}
    for name, figure, bound, times_piper in TARGETS.get(quality, ()):
        if figure not in ours_f:
            continue
        if times_piper is not None:
            if theirs is None:
                continue
            bound = times_piper * theirs[figure]
        met[name] = ours_f[figure] <= bound
    return met


def comparison_table(report: dict[str, Any]):  # returns a rich Table
    """Median time to first audio and RTF of each quality next to Piper's, with ratios."""
    from rich.table import Table

    table = Table(
        title=f"vcstream vs Piper ({report['piper_voice']}, piper-tts, text to audio), same run, "
        f"same sentences, median of {report['repeat']} interleaved runs"
    )
    for col in ("text", "subject", "TTFA median ms", "RTF median", "TTFA / piper", "RTF / piper"):
        table.add_column(col, justify="right")
    piper = report["piper"]
    for label, p in piper.items():
        for quality, rows in report["pipeline"].items():
            r, ratio = rows[label], report["vs_piper"][quality][label]
            table.add_row(
                label,
                f"vcstream {quality}",
                f"{r['time_to_first_audio_ms']['median']:.0f}",
                f"{r['rtf']['median']:.3f}",
                f"{ratio['ttfa_ratio']:.2f}x",
                f"{ratio['rtf_ratio']:.2f}x",
            )
        table.add_row(
            label,
            "piper",
            f"{p['time_to_first_audio_ms']['median']:.0f}",
            f"{p['rtf']['median']:.3f}",
            "",
            "",
        )
        table.add_section()
    return table
