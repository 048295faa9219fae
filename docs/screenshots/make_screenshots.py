"""Take the README's screenshots from the real thing: a daemon with all its models, the
monitor page in headless Chromium, and `vcstream top` in a tmux terminal, while a
performer (a looped WAV) talks and a few lines are spoken.

    .venv/bin/python docs/screenshots/make_screenshots.py

Needs chromium and tmux (the test set-up installs both). Writes monitor.png and top.png
next to this file.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from chromium_cdp import Chromium  # noqa: E402
from netutil import FIXTURES, daemon_config  # noqa: E402
from test_top import Tmux, save_screenshot  # noqa: E402

LINES = [
    "Good evening, and welcome to the installation.",
    "Speak into the microphone, and I will learn your voice.",
]
TOP_LINE = "Every word you say changes how I sound."
STATS = "window.vcstreamStats"


def _entry(text: str) -> str:
    return f"{STATS}.history.some(e => e.text === {json.dumps(text)}"


def main() -> int:
    import tempfile

    from vcstream.app import build_runtime
    from vcstream.daemon import start_daemon

    voices = Path(tempfile.mkdtemp(prefix="vcstream-shots-"))
    cfg = daemon_config(voices)
    cfg.capture.source = "file"
    cfg.capture.file = str(FIXTURES / "speech_joe.wav")
    cfg.capture.loop = True
    d = start_daemon(cfg, build_runtime(cfg))
    tmux = Tmux()
    try:
        with Chromium(width=1440, height=900) as b:
            b.navigate(f"http://127.0.0.1:{d.ws_port}/")
            b.wait_for(f"{STATS}.connection === 'connected' && {STATS}.audio.ready")
            tmux.start("top", f"{shlex.quote(sys.executable)} -m vcstream.top --connect {d.ws_url}")
            tmux.wait("top", r"● connected")
            time.sleep(12)  # the voice estimate builds up while the performer talks
            for text in LINES:
                b.type_text("#speak-text", text)
                b.click("#speak")
                b.wait_for(f"{_entry(text)} && e.state === 'done')", 60)
            tmux.keys("top", "s")
            tmux.keys("top", TOP_LINE, literal=True)
            tmux.keys("top", "Enter")
            # Another client's request: the page learns its text only when it is done.
            b.wait_for(
                f"{STATS}.history.some(e => e.id.startsWith('top') && e.state === 'playing')", 60
            )
            time.sleep(1.2)  # into the sentence: meters and spectrogram show it
            b.screenshot(HERE / "monitor.png")
            save_screenshot(tmux.screen("top", ansi=True), "top", HERE)
            for extra in ("top.txt", "top.html"):
                (HERE / extra).unlink()
    finally:
        tmux.kill()
        d.stop()
    print(f"wrote {HERE / 'monitor.png'} and {HERE / 'top.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
