"""Giving freed heap memory back to the operating system.

Tensors of a new length on every request (sentence lengths vary) leave glibc's per-thread
malloc arenas holding freed blocks that it does not return by itself: a daemon speaking
sentence after sentence grew from 0.9 to 1.4 GB before levelling off (measured over 8
minutes), and ``malloc_trim`` brought a process that had grown to 1.1 GB back to 0.65 GB.
The engine calls ``release_free_memory`` after a pause without requests
(``[engine] release_memory_after_idle_s``), so an idle daemon's resident size reflects what
the models need, not the history of sentence lengths; not sooner, because the next request
then faults its buffers back in (about 30 ms more time to first audio, measured).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return free heap pages of every malloc arena to the OS; False where unsupported."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


def recover_from_oom() -> None:
    """After an out-of-memory (once the failed request's tensors are released): hand the
    CUDA allocator's cached blocks back and trim the heap, so the next request has room.

    No ``gc.collect()``: the tensors go by reference counting once the exception is dropped,
    and a full collection of the daemon's heap holds the GIL for about a second (measured on
    2 busy cores), which stalls the pacer and every listener.
    """
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    release_free_memory()
