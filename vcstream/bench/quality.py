"""Which vocoder qualities a bench run measures (``--quality full,lite``), and a runtime
for each: the figures compare qualities in one run, on the same sentences."""

from __future__ import annotations

import copy

from vcstream.errors import InputError

QUALITIES = ("full", "lite", "auto")


def parse_qualities(spec: str | None, default: str = "full") -> list[str]:
    """``"full,lite"`` -> ``["full", "lite"]``; None or empty -> ``[default]`` (the
    config's ``[vocoder] quality``)."""
    names = [q.strip() for q in (spec or default).split(",") if q.strip()] or [default]
    for q in names:
        if q not in QUALITIES:
            raise InputError(
                f"unknown vocoder quality {q!r}: use one or more of {', '.join(QUALITIES)}"
            )
    if len(set(names)) != len(names):
        raise InputError(f"--quality names a quality twice: {spec!r}")
    return names


def config_for(cfg, quality: str):
    """``cfg`` with its vocoder set to ``quality`` (``cfg`` itself when it already is)."""
    if cfg.vocoder.quality == quality:
        return cfg
    cfg = copy.deepcopy(cfg)
    cfg.vocoder.quality = quality
    return cfg


def runtime_for(cfg, quality: str, base=None):
    """A ``Runtime`` whose vocoder runs ``quality``; ``base`` (a runtime of ``cfg``) is
    reused when it already does."""
    from vcstream.app import build_runtime

    qcfg = config_for(cfg, quality)
    if qcfg is cfg and base is not None:
        return base
    return build_runtime(qcfg)
