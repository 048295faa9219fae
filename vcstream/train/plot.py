"""Loss curves as a PNG, with no plotting library: a small raster, a 3x5 pixel font and
the PNG encoder from the standard library's zlib.

The y axis is logarithmic (losses span decades); each series gets a colour and a legend
entry; validation series are drawn as dots.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# 3 columns x 5 rows per glyph, "#" = ink. Letters are drawn in capitals.
_FONT_ROWS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("##.", "..#", ".#.", "#..", "###"),
    "3": ("##.", "..#", ".#.", "..#", "##."),
    "4": ("#.#", "#.#", "###", "..#", "..#"),
    "5": ("###", "#..", "##.", "..#", "##."),
    "6": (".##", "#..", "###", "#.#", "###"),
    "7": ("###", "..#", ".#.", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"),
    "9": ("###", "#.#", "###", "..#", "##."),
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"),
    "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"),
    "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"),
    "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."),
    "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "##.", ".##"),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"),
    "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."),
    "Z": ("###", "..#", ".#.", "#..", "###"),
    ".": ("...", "...", "...", "...", ".#."),
    "-": ("...", "...", "###", "...", "..."),
    "+": ("...", ".#.", "###", ".#.", "..."),
    "_": ("...", "...", "...", "...", "###"),
    ":": ("...", ".#.", "...", ".#.", "..."),
    "/": ("..#", "..#", ".#.", "#..", "#.."),
    "(": (".#.", "#..", "#..", "#..", ".#."),
    ")": (".#.", "..#", "..#", "..#", ".#."),
    "=": ("...", "###", "...", "###", "..."),
    " ": ("...", "...", "...", "...", "..."),
}
_FONT = {
    ch: np.array([[c == "#" for c in row] for row in rows], dtype=bool)
    for ch, rows in _FONT_ROWS.items()
}

PALETTE = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
    (188, 189, 34),
    (127, 127, 127),
]


def encode_png(rgb: np.ndarray) -> bytes:
    """8-bit RGB ``[H, W, 3]`` to PNG bytes (filter 0 on every row)."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


# Dark blue through red to pale yellow: silence stays dark, harmonics stand out.
_HEAT = np.array(
    [(0, 0, 4), (40, 11, 84), (101, 21, 110), (159, 42, 99), (212, 72, 66), (245, 125, 21),
     (250, 193, 39), (252, 255, 164)],
    dtype=np.float64,
)  # fmt: skip


def spectrogram_rgb(log_mel: np.ndarray, lo: float = -11.5, hi: float = 2.0) -> np.ndarray:
    """Log-mel ``[n_mels, frames]`` to an RGB image, low bands at the bottom."""
    x = np.clip((np.asarray(log_mel, np.float64) - lo) / (hi - lo), 0.0, 1.0)[::-1]
    pos = x * (len(_HEAT) - 1)
    i = np.minimum(pos.astype(int), len(_HEAT) - 2)
    frac = (pos - i)[..., None]
    return (_HEAT[i] * (1 - frac) + _HEAT[i + 1] * frac).round().astype(np.uint8)


def spectrograms_png(log_mels: list[np.ndarray], scale: int = 2, gap: int = 4) -> bytes:
    """Several log-mels stacked top to bottom (e.g. target over prediction) as PNG bytes."""
    width = max(m.shape[1] for m in log_mels)
    rows = []
    for k, mel in enumerate(log_mels):
        img = np.zeros((mel.shape[0], width, 3), np.uint8)
        img[:, : mel.shape[1]] = spectrogram_rgb(mel)
        rows.append(img.repeat(scale, axis=0).repeat(scale, axis=1))
        if k < len(log_mels) - 1:
            rows.append(np.full((gap, width * scale, 3), 255, np.uint8))
    return encode_png(np.concatenate(rows, axis=0))


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.img = np.full((height, width, 3), 255, dtype=np.uint8)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color) -> None:
        h, w, _ = self.img.shape
        xa, xb = sorted((max(0, min(w, x0)), max(0, min(w, x1))))
        ya, yb = sorted((max(0, min(h, y0)), max(0, min(h, y1))))
        self.img[ya:yb, xa:xb] = color

    def line(self, x0: float, y0: float, x1: float, y1: float, color, width: int = 1) -> None:
        n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        xs = np.rint(np.linspace(x0, x1, n)).astype(int)
        ys = np.rint(np.linspace(y0, y1, n)).astype(int)
        h, w, _ = self.img.shape
        for dx in range(width):
            for dy in range(width):
                xx, yy = xs + dx - width // 2, ys + dy - width // 2
                ok = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
                self.img[yy[ok], xx[ok]] = color

    def text(self, x: int, y: int, s: str, color=(0, 0, 0), scale: int = 2) -> int:
        """Draw ``s`` with its top-left corner at (x, y); returns the width drawn."""
        cx = x
        for ch in s.upper():
            glyph = _FONT.get(ch, _FONT[" "])
            ys, xs = np.nonzero(glyph)
            for gy, gx in zip(ys, xs, strict=True):
                self.rect(
                    cx + gx * scale,
                    y + gy * scale,
                    cx + (gx + 1) * scale,
                    y + (gy + 1) * scale,
                    color,
                )
            cx += 4 * scale
        return cx - x


def text_width(s: str, scale: int = 2) -> int:
    return 4 * scale * len(s)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.4g}"
    return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")


def _nice_steps(lo: float, hi: float, n: int = 6) -> list[float]:
    span = max(hi - lo, 1e-12)
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def plot_series(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    title: str = "",
    dotted: Sequence[str] = (),
    width: int = 1000,
    height: int = 560,
) -> None:
    """Write a log-y line plot of ``name -> (steps, values)`` to ``path`` as PNG.
    Non-positive and non-finite values are left out (they have no place on a log axis)."""
    c = Canvas(width, height)
    left, right, top, bottom = 80, width - 230, 40, height - 50
    clean = {}
    for name, (xs, ys) in series.items():
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        ok = np.isfinite(x) & np.isfinite(y) & (y > 0)
        if ok.any():
            clean[name] = (x[ok], y[ok])
    c.text(left, 12, title)
    c.line(left, bottom, right, bottom, (0, 0, 0))
    c.line(left, top, left, bottom, (0, 0, 0))
    if not clean:
        c.text(left + 20, (top + bottom) // 2, "no data yet")
        _write(path, c)
        return
    all_x = np.concatenate([v[0] for v in clean.values()])
    all_y = np.log10(np.concatenate([v[1] for v in clean.values()]))
    x_lo, x_hi = float(all_x.min()), float(all_x.max())
    if x_hi <= x_lo:
        x_hi = x_lo + 1
    y_lo, y_hi = math.floor(all_y.min() * 4) / 4, math.ceil(all_y.max() * 4) / 4
    if y_hi <= y_lo:
        y_hi = y_lo + 0.25

    def px(x: np.ndarray) -> np.ndarray:
        return left + (x - x_lo) / (x_hi - x_lo) * (right - left)

    def py(logy: np.ndarray) -> np.ndarray:
        return bottom - (logy - y_lo) / (y_hi - y_lo) * (bottom - top)

    # Grid: decades and their 2x / 5x, labelled.
    for dec in range(math.floor(y_lo), math.ceil(y_hi) + 1):
        for m in (1, 2, 5):
            ly = dec + math.log10(m)
            if y_lo <= ly <= y_hi:
                yy = float(py(np.array(ly)))
                c.line(left, yy, right, yy, (225, 225, 225) if m > 1 else (190, 190, 190))
                label = _fmt(10**ly)
                c.text(left - 8 - text_width(label), int(yy) - 5, label, (60, 60, 60))
    for xv in _nice_steps(x_lo, x_hi):
        xx = float(px(np.array(xv)))
        c.line(xx, top, xx, bottom, (235, 235, 235))
        label = _fmt(xv)
        c.text(int(xx) - text_width(label) // 2, bottom + 8, label, (60, 60, 60))
    c.text((left + right) // 2 - text_width("step") // 2, bottom + 28, "step", (60, 60, 60))

    # A validation series "val_X" takes the colour of its training series "X" (as dots).
    colors: dict[str, tuple[int, int, int]] = {}
    for name in clean:
        base = name[4:] if name.startswith("val_") else name
        if base in colors:
            colors[name] = colors[base]
        else:
            colors[name] = colors[base] = PALETTE[len(set(colors.values())) % len(PALETTE)]
    for k, (name, (x, y)) in enumerate(clean.items()):
        color = colors[name]
        xs, ys = px(x), py(np.log10(y))
        if name in dotted or len(xs) == 1:
            for a, b in zip(xs, ys, strict=True):
                c.rect(int(a) - 2, int(b) - 2, int(a) + 3, int(b) + 3, color)
        else:
            for i in range(len(xs) - 1):
                c.line(xs[i], ys[i], xs[i + 1], ys[i + 1], color, width=2)
        ly = top + 10 + 22 * k
        if name in dotted:
            c.rect(right + 27, ly + 2, right + 33, ly + 8, color)
        else:
            c.rect(right + 20, ly + 3, right + 40, ly + 7, color)
        c.text(right + 48, ly, f"{name} {_fmt(float(y[-1]))}")
    _write(path, c)


def _write(path: Path, canvas: Canvas) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(encode_png(canvas.img))
    tmp.replace(path)
