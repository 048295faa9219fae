"""Frame-to-frame updates for a full-screen terminal view: only the cells that changed are sent.

rich's ``Live`` in screen mode rewrites the whole screen on every refresh: for `vcstream top`
at 120x40 and 10 redraws a second that was about 110 kB/s, nearly all of it unchanged, which
is a lot to push through SSH on a venue's network. Here a frame is a grid of cells (character,
style); :class:`ScreenDiff` compares it with the previous frame and returns the escape
sequences that turn the old screen into the new one: for each changed row, the span from its
first to its last changed cell, with styles grouped into runs. No I/O: the caller writes the
string (and tests compare strings).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TextIO

from rich.cells import get_character_cell_size
from rich.console import COLOR_SYSTEMS, Console, RenderableType
from rich.segment import Segment
from rich.style import Style

Cell = tuple[str, Style | None]  # "" = the right half of the wide character before it
Grid = list[list[Cell]]

ENTER = "\x1b[?1049h\x1b[?25l\x1b[0m\x1b[H\x1b[2J"  # alternate screen, cursor hidden, cleared
LEAVE = "\x1b[0m\x1b[?25h\x1b[?1049l"  # cursor shown, back to the normal screen


def cells_of(lines: list[list[Segment]]) -> Grid:
    """Rendered lines (``Console.render_lines``) as rows of one cell per terminal column."""
    grid: Grid = []
    for line in lines:
        row: list[Cell] = []
        for seg in line:
            if seg.control:
                continue
            for ch in seg.text:
                width = get_character_cell_size(ch)
                if width == 0:  # a combining mark belongs to the cell before it
                    if row:
                        row[-1] = (row[-1][0] + ch, row[-1][1])
                    continue
                row.append((ch, seg.style))
                if width == 2:
                    row.append(("", seg.style))
        grid.append(row)
    return grid


def render_grid(console: Console, renderable: RenderableType, size: tuple[int, int]) -> Grid:
    """``renderable`` laid out on a screen of ``size`` (columns, rows), as cells."""
    cols, rows = size
    options = console.options.update_dimensions(cols, rows)
    return cells_of(console.render_lines(renderable, options, pad=True)[:rows])


class ScreenDiff:
    """The escape sequences from the last frame sent to the next one (a full redraw first,
    and after :meth:`invalidate`, e.g. when the terminal was resized)."""

    def __init__(self, color_system: str | None) -> None:
        self._color_system = COLOR_SYSTEMS.get(color_system or "")  # Console.color_system
        self._previous: Grid | None = None

    def invalidate(self) -> None:
        self._previous = None

    def update(self, grid: Grid) -> str:
        previous = self._previous
        out: list[str] = []
        if previous is None:
            out.append("\x1b[0m\x1b[H\x1b[2J")
        for r, row in enumerate(grid):
            old = previous[r] if previous is not None and r < len(previous) else None
            if old == row:
                continue
            first, last = _changed_span(old, row)
            out.append(f"\x1b[{r + 1};{first + 1}H")
            out.append(self._run(row[first:last]))
        self._previous = grid
        return "".join(out)

    def _run(self, cells: list[Cell]) -> str:
        parts: list[str] = []
        i = 0
        while i < len(cells):
            style = cells[i][1]
            j = i
            while j < len(cells) and cells[j][1] == style:
                j += 1
            text = "".join(ch for ch, _ in cells[i:j])
            if style is None or self._color_system is None:
                parts.append(text)
            else:
                parts.append(style.render(text, color_system=self._color_system))
            i = j
        return "".join(parts)


def _changed_span(old: list[Cell] | None, row: list[Cell]) -> tuple[int, int]:
    """[first, last) columns of ``row`` that differ from ``old``, widened to whole characters."""
    if old is None or len(old) != len(row):
        return 0, len(row)
    first = 0
    while old[first] == row[first]:
        first += 1
    last = len(row)
    while old[last - 1] == row[last - 1]:
        last -= 1
    while first > 0 and row[first][0] == "":
        first -= 1
    while last < len(row) and row[last][0] == "":
        last += 1
    return first, last


@contextlib.contextmanager
def full_screen(stream: TextIO) -> Iterator[None]:
    """The alternate screen with the cursor hidden; the terminal is given back on the way out."""
    stream.write(ENTER)
    stream.flush()
    try:
        yield
    finally:
        stream.write(LEAVE)
        stream.flush()
