"""Fixtures shared by several test modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from vcstream.encoder.ge2e import SpeakerEncoder


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module's models. The test machines are shared 2-core
    boxes: two spinning OpenMP threads competing with other processes run small
    convolutions and batch-1 LSTM steps many times slower than one thread does."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def encoder(one_thread) -> SpeakerEncoder:
    return SpeakerEncoder.from_checkpoint()


@pytest.fixture(scope="module")
def voices_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("voices")


@pytest.fixture(scope="module")
def page_runtime(voices_dir):
    """Models for a monitor-page test's daemon (capture: the looped speech fixture)."""
    from pageutil import page_config

    from vcstream.app import build_runtime

    return build_runtime(page_config(voices_dir))
