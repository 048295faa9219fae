"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from vcstream.encoder.ge2e import SpeakerEncoder


@pytest.fixture(scope="module")
def encoder() -> Iterator[SpeakerEncoder]:
    # One intra-op thread: batch-1 LSTM steps gain little from two, and on a shared,
    # busy machine two threads stall each other at every step's barrier.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield SpeakerEncoder.from_checkpoint()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def voices_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("voices")


@pytest.fixture(scope="module")
def page_runtime(voices_dir):
    """Models for a monitor-page test's daemon (capture: the looped speech fixture)."""
    from pageutil import page_config

    from vcstream.app import build_runtime

    return build_runtime(page_config(voices_dir))
