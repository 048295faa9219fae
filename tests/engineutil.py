"""The engine on a test's settings, built from a loaded runtime the way the daemon builds it
(``vcstream.daemon``), with no capture unless a test gives a source."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vcstream.capture import NullSource
from vcstream.config import Config
from vcstream.engine import Engine
from vcstream.voices import VoiceStore


def new_engine(runtime, cfg: Config, voices_dir: Path, source=None, **parts) -> Engine:
    """An engine, not started; ``parts`` go to ``Engine`` as they are (a transcriber...)."""
    return Engine(
        cfg,
        pipeline=runtime.new_pipeline(),
        embedder=runtime.new_embedder(),
        source=NullSource(cfg.capture) if source is None else source,
        voices=VoiceStore(voices_dir),
        model_name=runtime.encoder_name,
        device=str(runtime.device),
        **parts,
    )


@contextmanager
def started_engine(runtime, cfg: Config, voices_dir: Path, source=None) -> Iterator[Engine]:
    eng = new_engine(runtime, cfg, voices_dir, source)
    eng.start()
    try:
        yield eng
    finally:
        eng.stop()
