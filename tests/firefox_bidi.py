"""A small headless-Firefox driver over WebDriver BiDi, for the UI tests.

Firefox dropped its CDP server; it speaks WebDriver BiDi itself, so no geckodriver is
needed. This starts Debian's ``firefox-esr`` with a fresh profile (prefs in ``user.js``
that keep it off the network and let pages play audio without a gesture), opens a BiDi
session over its WebSocket (``websockets``' synchronous client) and offers the same public
methods as ``chromium_cdp.Chromium``: navigate, evaluate JavaScript, real mouse clicks and
key presses, screenshots, and the page's console errors and uncaught exceptions.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from pagedriver import PageDriver, end_process_group, write_png
from websockets.sync.client import connect

# Prefs for an unattended, offline browser. The remote agent sets most of its own
# "recommended" prefs too, but only once it starts, after some services have already run.
PREFS: dict[str, bool | int | str] = {
    # Pages may start audio without a click (the page also resumes on pointerdown).
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.autoplay.block-webaudio": False,
    # Firefox's built-in mock audio backend: with no sound server or card (a test machine,
    # CI), its PulseAudio/ALSA backends fail and an AudioContext then stays "suspended"
    # for good (resume() never settles, no worklet ever runs). The mock output stream
    # pulls the graph at real-time pace and plays nowhere, also where a card exists.
    "media.cubeb.force_mock_context": True,
    # First run, default browser, session restore.
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.startup.page": 0,
    "browser.aboutwelcome.enabled": False,
    "browser.sessionstore.resume_from_crash": False,
    "toolkit.startup.max_resumed_crashes": -1,
    "startup.homepage_welcome_url": "about:blank",
    "browser.newtabpage.enabled": False,
    "browser.tabs.warnOnClose": False,
    # Nothing that phones home: telemetry, updates, remote settings, studies, safe browsing.
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "services.settings.server": "data:,#remote-settings-dummy/v1",
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.update.enabled": False,
    "browser.search.update": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "browser.ping-centre.telemetry": False,
    "geo.provider.network.url": "",
}

# WebDriver's code points for the keys that are not characters.
KEYS = {
    "Enter": "\ue007",
    "Escape": "\ue00c",
    "Tab": "\ue004",
    "Backspace": "\ue003",
    "Delete": "\ue017",
    "Shift": "\ue008",
    "Control": "\ue009",
    "Alt": "\ue00a",
    "Meta": "\ue03d",
    "ArrowLeft": "\ue012",
    "ArrowUp": "\ue013",
    "ArrowRight": "\ue014",
    "ArrowDown": "\ue015",
    "Space": " ",
}

LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")


def firefox_binary() -> str | None:
    for name in ("firefox-esr", "firefox"):
        path = shutil.which(name)
        if path:
            return path
    return None


class BidiError(RuntimeError):
    pass


class Firefox(PageDriver):
    def __init__(
        self,
        width: int = 1440,
        height: int = 900,
        timeout: float = 30.0,
        prefs: dict[str, bool | int | str] | None = None,
    ) -> None:
        """``prefs`` add to or replace ``PREFS`` for this browser."""
        binary = firefox_binary()
        if binary is None:
            raise FileNotFoundError("firefox is not installed (apt-get install firefox-esr)")
        self.timeout = timeout
        self.width, self.height = width, height
        self.ws = None
        self.proc: subprocess.Popen | None = None
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []  # BiDi events seen (log and network)
        self._stack = contextlib.ExitStack()
        self._tmp = tempfile.TemporaryDirectory(prefix="vcstream-firefox-")
        tmp = Path(self._tmp.name)
        profile = tmp / "profile"
        profile.mkdir()
        (profile / "user.js").write_text(
            "".join(
                f"user_pref({json.dumps(k)}, {json.dumps(v)});\n"
                for k, v in {**PREFS, **(prefs or {})}.items()
            )
        )
        self.log_path = tmp / "firefox.log"
        env = {**os.environ, "MOZ_CRASHREPORTER_DISABLE": "1", "MOZ_HEADLESS": "1"}
        try:
            with self.log_path.open("wb") as log:
                # Its own process group, so that close() ends the content processes too.
                self.proc = subprocess.Popen(
                    [binary, "--headless", "--no-remote", "--new-instance",
                     "--remote-debugging-port=0", "--profile", str(profile),
                     f"--window-size={width},{height}", "about:blank"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )  # fmt: skip
            url = self._wait_for_listening(timeout)
            self.ws = self._stack.enter_context(
                connect(
                    f"{url}/session", max_size=64 * 2**20, open_timeout=timeout, ping_interval=None
                )
            )
            self.send("session.new", {"capabilities": {}})
            tree = self.send("browsingContext.getTree", {"maxDepth": 0})
            self.context = tree["contexts"][0]["context"]
            self.send(
                "browsingContext.setViewport",
                {"context": self.context, "viewport": {"width": width, "height": height},
                 "devicePixelRatio": 1},
            )  # fmt: skip
            self.send("session.subscribe", {"events": ["log.entryAdded", "network"]})
        except BaseException:
            self.close()
            raise

    def _wait_for_listening(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.proc.poll() is not None:
                raise BidiError(
                    f"firefox exited with code {self.proc.returncode} at start: {self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise BidiError(f"firefox did not open its BiDi port: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of Firefox's own stdout and stderr (for failure messages)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    # ---- protocol ------------------------------------------------------------------------
    def send(self, method: str, params: dict | None = None) -> dict:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BidiError(f"no answer to {method} in {self.timeout} s")
            reply = json.loads(self.ws.recv(timeout=left))
            if reply.get("type") == "event":
                self.events.append(reply)
            elif reply.get("id") == msg_id:
                if reply.get("type") == "error":
                    raise BidiError(f"{method}: {reply.get('error')}: {reply.get('message')}")
                return reply.get("result", {})

    def evaluate(self, expression: str, *, await_promise: bool = True) -> Any:
        """The expression's value: primitives as Python values, arrays and plain objects as
        lists and dicts (as far as BiDi serialises them; JSON.stringify in the page is
        simplest for anything nested)."""
        result = self.send(
            "script.evaluate",
            {"expression": expression, "target": {"context": self.context},
             "awaitPromise": await_promise, "resultOwnership": "none"},
        )  # fmt: skip
        if result.get("type") == "exception":
            details = result.get("exceptionDetails", {})
            text = details.get("text") or _deserialize(details.get("exception", {}))
            raise BidiError(f"JavaScript error: {text}")
        return _deserialize(result["result"])

    # ---- page actions --------------------------------------------------------------------
    def navigate(self, url: str, timeout: float = 20.0) -> None:
        saved, self.timeout = self.timeout, max(self.timeout, timeout)
        try:
            self.send(
                "browsingContext.navigate",
                {"context": self.context, "url": url, "wait": "complete"},
            )
        finally:
            self.timeout = saved

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        rect = self.element_centre(selector)
        if rect is None:
            raise BidiError(f"no element matches {selector!r}")
        # WebDriver pointer positions are whole CSS pixels.
        x, y = math.floor(rect["x"]), math.floor(rect["y"])
        self._actions(
            {
                "type": "pointer",
                "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "x": x, "y": y, "origin": "viewport"},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }
        )

    def type_text(self, selector: str, text: str) -> None:
        """Click the element, then type the text key by key (real key events)."""
        self.click(selector)
        actions = []
        for ch in text:
            actions += [{"type": "keyDown", "value": ch}, {"type": "keyUp", "value": ch}]
        self._actions({"type": "key", "id": "keyboard", "actions": actions})

    def press(self, *keys: str) -> None:
        """Press keys together, like ``press("Control", "Enter")``: each goes down in order
        and up in reverse. Names from ``KEYS`` or single characters."""
        values = [KEYS.get(k, k) for k in keys]
        for k, v in zip(keys, values, strict=True):
            if len(v) != 1:
                raise ValueError(f"unknown key {k!r}")
        actions = [{"type": "keyDown", "value": v} for v in values]
        actions += [{"type": "keyUp", "value": v} for v in reversed(values)]
        self._actions({"type": "key", "id": "keyboard", "actions": actions})

    def _actions(self, source: dict) -> None:
        self.send("input.performActions", {"context": self.context, "actions": [source]})
        self.send("input.releaseActions", {"context": self.context})

    def screenshot(self, path: str | Path) -> Path:
        data = self.send(
            "browsingContext.captureScreenshot", {"context": self.context, "origin": "viewport"}
        )["data"]
        return write_png(path, data)

    def screenshot_element(self, selector: str, path: str | Path) -> Path:
        """A PNG of one element's whole box (document origin: no viewport resize needed)."""
        rect = json.loads(
            self.evaluate(
                f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                ".getBoundingClientRect(); return JSON.stringify({x: r.left + scrollX,"
                " y: r.top + scrollY, w: r.width, h: r.height}); })()"
            )
        )
        clip = {"type": "box", "x": rect["x"], "y": rect["y"], "width": rect["w"],
                "height": rect["h"]}  # fmt: skip
        data = self.send(
            "browsingContext.captureScreenshot",
            {"context": self.context, "origin": "document", "clip": clip},
        )["data"]
        return write_png(path, data)

    def page_errors(self) -> list[str]:
        """Uncaught exceptions, console errors and failed loads (HTTP >= 400) seen so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "log.entryAdded" and p.get("level") == "error":
                out.append(p.get("text") or "")
            elif m == "network.responseCompleted":
                status = p.get("response", {}).get("status", 0)
                if status >= 400:
                    out.append(f"{p['request'].get('url')}: HTTP {status}")
            elif m == "network.fetchError":
                out.append(f"{p['request'].get('url')}: {p.get('errorText')}")
        return out

    def close(self) -> None:
        try:
            if self.ws is not None:
                with contextlib.suppress(Exception):  # already gone
                    self.send("browser.close")
                self._stack.close()
                self.ws = None
        finally:
            try:
                if self.proc is not None:
                    end_process_group(self.proc)
            finally:
                self._tmp.cleanup()


def _deserialize(value: dict) -> Any:
    """A BiDi RemoteValue as a Python value (primitives, arrays, plain objects)."""
    kind = value.get("type")
    if kind in ("undefined", "null"):
        return None
    if kind in ("string", "boolean"):
        return value["value"]
    if kind == "number":
        v = value["value"]
        specials = {"NaN": math.nan, "-0": -0.0, "Infinity": math.inf, "-Infinity": -math.inf}
        return specials[v] if isinstance(v, str) else v
    if kind == "bigint":
        return int(value["value"])
    if kind == "array":
        return [_deserialize(v) for v in value.get("value", [])]
    if kind == "object":
        return {
            (k if isinstance(k, str) else str(_deserialize(k))): _deserialize(v)
            for k, v in value.get("value", [])
        }
    if kind == "error":
        return "error"
    return value.get("value", f"<{kind}>")
