"""A small headless-Chromium driver over the Chrome DevTools Protocol, for the UI tests.

Starts Debian's ``chromium`` with a fresh profile, attaches to one page over the DevTools
WebSocket (``websockets``' synchronous client) and offers what the tests need: navigate,
evaluate JavaScript, real mouse clicks and typing, screenshots, and the page's console
errors and uncaught exceptions.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pagedriver import PageDriver, end_process_group, write_png
from websockets.sync.client import connect

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    pass


class Chromium(PageDriver):
    def __init__(self, width: int = 1440, height: int = 900, timeout: float = 30.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
        self.timeout = timeout
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(prefix="vcstream-chromium-")
        profile = Path(self._profile.name)
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its helper processes can be ended as one group
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.proc.poll() is not None:
                raise CdpError(f"chromium exited with code {self.proc.returncode} at start")
            if time.monotonic() > deadline:
                self.close()
                raise CdpError("chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(
            connect(
                f"ws://127.0.0.1:{port}{path}",
                max_size=64 * 2**20,
                open_timeout=timeout,
                ping_interval=None,
            )
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.send(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=False,
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    # ---- protocol ------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None, *, session: bool = True) -> dict:
        msg_id = next(self._ids)
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CdpError(f"no answer to {method} in {self.timeout} s")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"JavaScript error: {text}")
        return result["result"].get("value")

    # ---- page actions --------------------------------------------------------------------
    def navigate(self, url: str, timeout: float = 20.0) -> None:
        self.send("Page.navigate", {"url": url})
        self.wait_for("document.readyState === 'complete'", timeout)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        rect = self.element_centre(selector)
        if rect is None:
            raise CdpError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1},
            )

    def type_text(self, selector: str, text: str) -> None:
        self.click(selector)
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path: str | Path) -> Path:
        return write_png(path, self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def screenshot_element(self, selector: str, path: str | Path) -> Path:
        """A PNG of one element's box (the viewport grows to fit it)."""
        rect = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height}; })()"
        )
        w, h = math.ceil(rect["x"] + rect["w"]), math.ceil(rect["y"] + rect["h"])
        if w > self.width or h > self.height:
            self.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": max(w, self.width), "height": max(h, self.height),
                 "deviceScaleFactor": 1, "mobile": False},
            )  # fmt: skip
        clip = {"x": rect["x"], "y": rect["y"], "width": rect["w"], "height": rect["h"], "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "clip": clip})["data"]
        return write_png(path, data)

    def page_errors(self) -> list[str]:
        """Uncaught exceptions and console errors seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in p.get("args", []))
                )
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                with contextlib.suppress(Exception):  # already gone
                    self.send("Browser.close", session=False)
                self._stack.close()
        finally:
            # Helpers (crashpad, utility processes) can outlive the browser by a moment and
            # still write into the profile: the whole group ends before it is removed.
            end_process_group(self.proc)
            self._profile.cleanup()
