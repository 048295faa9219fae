"""Static files of the monitor page over plain HTTP GET, confined to one directory."""

from __future__ import annotations

import mimetypes
import posixpath
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

MAX_FILE_BYTES = 16 * 1024 * 1024

# Explicit types for what a web page uses; mimetypes' tables vary between systems.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/x-icon",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
    ".wav": "audio/wav",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True)
class FileResponse:
    status: int
    reason: str
    content_type: str
    body: bytes


def content_type_of(path: Path) -> str:
    ext = path.suffix.lower()
    if ext in CONTENT_TYPES:
        return CONTENT_TYPES[ext]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def resolve_request_path(web_dir: Path, request_path: str) -> Path | None:
    """The file a request path names inside ``web_dir``, or None if it would leave it.

    Decodes percent-escapes first, so ``/%2e%2e/secret`` is refused like ``/../secret``;
    refuses backslashes and NUL; and checks the final, symlink-resolved path is inside the
    (resolved) directory.
    """
    path = unquote(urlsplit(request_path).path, errors="strict")
    if "\\" in path or "\0" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    rel = posixpath.join(*parts) if parts else ""
    root = web_dir.resolve()
    target = (root / rel) if rel else root
    if target.is_dir():
        target = target / "index.html"
    try:
        resolved = target.resolve()
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(root):
        return None
    return resolved


def not_found(message: str = "not found") -> FileResponse:
    return FileResponse(404, "Not Found", "text/plain; charset=utf-8", f"{message}\n".encode())


def read_web_file(web_dir: Path, request_path: str) -> FileResponse:
    """Blocking (reads a file): call it off the event loop."""
    try:
        target = resolve_request_path(web_dir, request_path)
    except UnicodeDecodeError:
        return FileResponse(400, "Bad Request", "text/plain; charset=utf-8", b"bad path\n")
    if target is None:
        return not_found()
    try:
        if not target.is_file():
            return not_found()
        if target.stat().st_size > MAX_FILE_BYTES:
            return FileResponse(
                413, "Content Too Large", "text/plain; charset=utf-8", b"too large\n"
            )
        body = target.read_bytes()
    except OSError:
        return not_found()
    return FileResponse(200, "OK", content_type_of(target), body)
