"""Frame-to-frame terminal updates: frames in, escape sequences out (no terminal involved)."""

from __future__ import annotations

import re

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from vcstream.termscreen import ScreenDiff, render_grid

SIZE = (30, 5)
CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _console() -> Console:
    return Console(width=SIZE[0], height=SIZE[1], color_system="256", force_terminal=True)


def _frame(level: str, label_style: str = "bold") -> Panel:
    return Panel(Text.assemble(("level ", label_style), level, "\nsteady line"), title="t")


def _apply(screen: list[list[str]], out: str) -> None:
    """A minimal terminal: cursor positioning and printing (styles ignored)."""
    row = col = 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z])", out):
        if not token:
            continue
        if token.startswith("\x1b["):
            if token.endswith("H") and token != "\x1b[H":
                r, c = token[2:-1].split(";")
                row, col = int(r) - 1, int(c) - 1
            elif token == "\x1b[2J":
                for line in screen:
                    line[:] = [" "] * len(line)
            continue
        for ch in token:
            screen[row][col] = ch
            col += 1


def _text(grid) -> list[str]:
    return ["".join(ch for ch, _ in row) for row in grid]


def test_first_frame_is_drawn_whole_then_only_changes():
    console = _console()
    diff = ScreenDiff(console.color_system)
    first = render_grid(console, _frame("-20.0"), SIZE)
    out = diff.update(first)
    assert out.startswith("\x1b[0m\x1b[H\x1b[2J")
    screen = [[" "] * SIZE[0] for _ in range(SIZE[1])]
    _apply(screen, out)
    assert ["".join(r) for r in screen] == _text(first)

    assert diff.update(render_grid(console, _frame("-20.0"), SIZE)) == ""  # nothing changed

    second = render_grid(console, _frame("-35.5"), SIZE)
    out = diff.update(second)
    # one row changed, and only the cells from "2" to "0" of "-20.0" -> "-35.5" are sent
    assert len(re.findall(r"\x1b\[\d+;\d+H", out)) == 1
    assert out.startswith("\x1b[2;10H")  # row 2, after "│ level -"
    assert CSI.sub("", out) == "35.5"
    _apply(screen, out)
    assert ["".join(r) for r in screen] == _text(second)


def test_a_style_change_alone_is_sent_with_its_codes():
    console = _console()
    diff = ScreenDiff(console.color_system)
    diff.update(render_grid(console, _frame("1", "bold"), SIZE))
    out = diff.update(render_grid(console, _frame("1", "red"), SIZE))
    assert CSI.sub("", out) == "level "
    assert "\x1b[31m" in out  # red, in the 256-colour system's standard range


def test_wide_characters_are_redrawn_whole():
    console = _console()
    diff = ScreenDiff(console.color_system)
    diff.update(render_grid(console, Text("ab\u4e2dcd"), SIZE))
    out = diff.update(render_grid(console, Text("ab\u4e2dce"), SIZE))
    assert CSI.sub("", out) == "e"
    out = diff.update(render_grid(console, Text("ab\u6587ce"), SIZE))
    assert out.startswith("\x1b[1;3H") and CSI.sub("", out) == "\u6587"


def test_invalidate_and_no_colour():
    console = _console()
    diff = ScreenDiff(None)  # a terminal without colour: text only
    grid = render_grid(console, _frame("x"), SIZE)
    diff.update(grid)
    diff.invalidate()  # e.g. the terminal was resized
    out = diff.update(grid)
    assert out.startswith("\x1b[0m\x1b[H\x1b[2J")
    assert not re.search(r"\x1b\[[0-9;]*m", out.removeprefix("\x1b[0m"))
    assert CSI.sub("", out).replace(" ", "") == "".join(_text(grid)).replace(" ", "")
