"""What every bench figure shares: the machine it ran on, the console its tables print
to, the JSON emitter, median/min/max summaries and the progress bar of long runs."""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch


def machine_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def console():  # returns a rich Console
    from rich.console import Console

    # Piped into a file or a note, rich would fold the tables to 80 columns and elide
    # the figures; a terminal keeps its own width.
    return Console() if sys.stdout.isatty() else Console(width=140)


def target_line(label: str, met: bool | None, value: float | None) -> str:
    """``target LABEL: met|NOT met|not measured (VALUE)``, the value to four places as
    stored (0.3498 printed as 0.350 beside "NOT met" misled)."""
    state = {True: "met", False: "NOT met", None: "not measured"}[met]
    return f"target {label}: {state} ({'-' if value is None else f'{value:.4f}'})"


def summary(values: Sequence[float], digits: int) -> dict:
    """Median, min and max of ``values``, rounded."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def emit_json(report: dict, path: str | None) -> int:
    """Print the report as JSON after its tables, and write it to ``path`` if given."""
    text = json.dumps(report, indent=1, default=float)
    print(text)
    if path:
        Path(path).write_text(text)
    return 0


@contextmanager
def scoring_progress(log_name: str | None = None) -> Iterator[Callable[[int, int, str], None]]:
    """A progress bar on stderr for a long synthesise-and-score run; yields its
    ``advance(done, total, label)``. Off a terminal the bar is hidden and, with
    ``log_name``, each step is logged instead, so a run in the background says where it is."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    err = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("synthesising and scoring", total=None)

        def advance(done: int, total: int, label: str) -> None:
            progress.update(task, completed=done, total=total, description=label)
            if log_name and not err.is_terminal:
                logging.getLogger(log_name).info("%d/%d: %s", done, total, label)

        yield advance
