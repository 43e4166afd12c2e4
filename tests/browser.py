"""Open a local HTML file in real headless Chromium and report what rendered, for the report tests.

Speaks the Chrome DevTools Protocol over `--remote-debugging-pipe` (fd 3: commands in, fd 4: events out,
NUL-separated JSON), so no websocket package or open port is needed. Install a browser on Debian/Ubuntu
with `apt-get install -y chromium`; `find_browser()` returns None when there is none and the test skips.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    env = os.environ.get("CURATE_TEST_BROWSER")
    if env:
        return env
    return next((p for p in map(shutil.which, NAMES) if p), None)


class Chromium:
    def __init__(self, binary: str, profile: Path, timeout: float = 90.0) -> None:
        self.timeout = timeout
        cmd_r, self._cmd_w = os.pipe()
        self._evt_r, evt_w = os.pipe()

        def wire_fds() -> None:  # runs in the child before exec: the protocol's fds must be exactly 3 and 4
            a, b = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(evt_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=wire_fds,
            close_fds=False,  # pipes are non-inheritable; only the dup2'd fds 3 and 4 reach the browser
        )
        os.close(cmd_r)
        os.close(evt_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the browser")
            ready, _, _ = select.select([self._evt_r], [], [], left)
            if ready:
                chunk = os.read(self._evt_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("the browser closed its pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str) -> dict:
        for e in self.events:
            if e.get("method") == method and e.get("sessionId") == session:
                return e
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read(deadline)
            self.events.append(m)
            if m.get("method") == method and m.get("sessionId") == session:
                return m

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except Exception:  # already gone: nothing to close
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._evt_r)


IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  src: i.src.slice(0, 30), complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
  shown: i.getBoundingClientRect().width })))"""


def render(binary: str, page: Path, profile: Path) -> dict:
    """Load `page` from a file:// URL; return its images, console errors and a screenshot (PNG bytes)."""
    b = Chromium(binary, profile)
    try:
        target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.send(f"{domain}.enable", session=sid)
        b.send("Page.navigate", {"url": page.resolve().as_uri()}, session=sid)
        b.wait_event("Page.loadEventFired", sid)
        images = json.loads(b.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True},
                                   session=sid)["result"]["value"])
        title = b.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=sid)
        shot = base64.b64decode(b.send("Page.captureScreenshot", {"format": "png"}, session=sid)["data"])
        errors = []
        for e in b.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text", ""))
        return {"images": images, "errors": errors, "title": title["result"]["value"], "screenshot": shot}
    finally:
        b.close()
