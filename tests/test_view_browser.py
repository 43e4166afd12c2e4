"""`curate view` in real headless Chromium: a `curate view` server started as a user would, pages that load with no
console error (a CSP violation is one), a filter that changes the list through htmx and lands in the URL,
keyboard navigation from the list into a trace and on to the next, a hostile trace that does not execute,
long thinking shown in chunks, and the static export opened from disk.

Screenshots are written as artifacts to $CURATE_TEST_ARTIFACTS (else the test's tmp folder); docs/images/ holds
copies. Needs Chromium (`apt-get install -y chromium`); skipped only when none is found.
Run: python -m pytest -q tests/test_view_browser.py
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import view_store  # noqa: E402

from tests.browser import Chromium, find_browser, render  # noqa: E402
from tests.helpers import ROOT  # noqa: E402

pytestmark = pytest.mark.skipif(find_browser() is None, reason="no Chromium/Chrome binary (apt-get install -y chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return view_store.build(tmp_path_factory.mktemp("viewb"))


@pytest.fixture(scope="module")
def server(built):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "curate", "view", "--store", str(built["store"].path),
                             "--mixtures", str(built["mixtures"]), "--port", str(port)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/static/view.css", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"curate view did not start: {err}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    d = Path(os.environ.get("CURATE_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    d.mkdir(parents=True, exist_ok=True)
    return d


class Tab:
    """One page in the browser: navigate, evaluate JavaScript, press keys, read console errors, screenshot."""

    def __init__(self, browser: Chromium) -> None:
        self.b = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.sid = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=self.sid)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 860, "deviceScaleFactor": 1,
                                                            "mobile": False}, session=self.sid)

    def _loaded(self, before: int) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(e.get("method") == "Page.loadEventFired" and e.get("sessionId") == self.sid for e in self.b.events[before:]):
                return
            self.b.send("Runtime.evaluate", {"expression": "1"}, session=self.sid)  # pumps events
            time.sleep(0.05)
        raise TimeoutError("page did not load")

    def goto(self, url: str) -> None:
        before = len(self.b.events)
        self.b.send("Page.navigate", {"url": url}, session=self.sid)
        self._loaded(before)

    def js(self, expr: str, await_promise: bool = False):
        r = self.b.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": await_promise},
                        session=self.sid)
        if "exceptionDetails" in r:
            raise RuntimeError(r["exceptionDetails"])
        return r["result"].get("value")

    def wait_for(self, expr: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expr)
            if value:
                return value
            time.sleep(0.1)
        raise TimeoutError(expr)

    def key(self, key: str, navigates: bool = False) -> None:
        before = len(self.b.events)
        code = {"Enter": 13}.get(key, ord(key.upper()) if len(key) == 1 else 0)
        params = {"key": key, "windowsVirtualKeyCode": code, "code": "Enter" if key == "Enter" else f"Key{key.upper()}"}
        self.b.send("Input.dispatchKeyEvent", {"type": "keyDown", **params, **({"text": key} if len(key) == 1 else {})},
                    session=self.sid)
        self.b.send("Input.dispatchKeyEvent", {"type": "keyUp", **params}, session=self.sid)
        if navigates:
            self._loaded(before)

    def errors(self) -> list[str]:
        out = []
        for e in self.b.events:
            if e.get("sessionId") != self.sid:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(p["exceptionDetails"].get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def shot(self, path: Path) -> bytes:
        data = base64.b64decode(self.b.send("Page.captureScreenshot", {"format": "png"}, session=self.sid)["data"])
        path.write_bytes(data)
        return data


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    b = Chromium(find_browser(), tmp_path_factory.mktemp("profile"))
    try:
        yield Tab(b)
    finally:
        b.close()


ROWS = "document.querySelectorAll('#trace-table tbody tr.row').length"
STATUSES = "JSON.stringify(Array.from(document.querySelectorAll('#trace-table tbody tr.row .status')).map(s => s.textContent))"


def test_pages_load_without_console_errors(tab, server, built, artifacts):
    mixed = built["store"].query("""SELECT problem_id FROM traces WHERE source = 'openr1-math' GROUP BY problem_id
        HAVING count(*) FILTER (status = 'correct') > 0 AND count(*) FILTER (status = 'incorrect') > 0
        ORDER BY problem_id LIMIT 1""").column(0)[0].as_py()
    for name, path in [("overview", "/"), ("traces", "/traces"), ("problem", f"/problem/{mixed}"),
                       ("problem-hostile", f"/problem/{built['hostile_problem']}"),
                       ("evals", "/evals/grid?run=run-a&benchmark=toy"), ("mixture", "/mixture/half-incorrect")]:
        tab.goto(server + path)
        assert tab.js("document.title").endswith("curate view"), name
        assert tab.errors() == [], (name, tab.errors())
        assert len(tab.shot(artifacts / f"view-{name}.png")) > 10_000


def test_a_filter_changes_the_list_and_the_url(tab, server, built, artifacts):
    tab.goto(server + "/traces")
    total = tab.js("document.querySelector('#list .count strong').textContent")
    assert tab.js(ROWS) == 50
    tab.js("const s = document.getElementById('f-status'); s.value = 'incorrect';"
           "s.dispatchEvent(new Event('change', {bubbles: true}))")
    tab.wait_for(f"document.querySelector('#list .count strong').textContent !== {json.dumps(total)}")
    tab.wait_for("location.search.includes('status=incorrect')")
    n = built["store"].query("SELECT count(*) FROM traces WHERE status = 'incorrect'").column(0)[0].as_py()
    assert tab.js("document.querySelector('#list .count strong').textContent") == f"{n:,}"
    assert set(json.loads(tab.js(STATUSES))) == {"incorrect"}
    tab.js("const w = document.getElementById('where'); w.value = 'backtrack_count >= 8';"
           "w.dispatchEvent(new Event('change', {bubbles: true}))")
    m = built["store"].query("SELECT count(*) FROM traces WHERE status = 'incorrect' AND backtrack_count >= 8").column(0)[0].as_py()
    assert 0 < m < n
    tab.wait_for(f"document.querySelector('#list .count strong').textContent === {json.dumps(f'{m:,}')}")
    tab.wait_for("location.search.includes('where=')")
    shared = tab.js("location.href")
    tab.shot(artifacts / "view-traces-filtered.png")
    tab.goto(shared)  # the URL holds the filter: opening it again shows the same list
    assert tab.js("document.querySelector('#list .count strong').textContent") == f"{m:,}"
    assert tab.js("document.getElementById('f-status').value") == "incorrect"
    assert tab.errors() == []


def test_keyboard_moves_through_the_list_and_between_traces(tab, server):
    tab.goto(server + "/traces?status=correct")
    ids = json.loads(tab.js("JSON.stringify(Array.from(document.querySelectorAll('#trace-table a.open')).map(a => a.textContent))"))
    tab.key("j")
    tab.key("j")
    assert tab.js("Array.from(document.querySelectorAll('#trace-table tr.row')).findIndex(r => r.classList.contains('selected'))") == 1
    tab.key("Enter", navigates=True)
    assert "/trace/" in tab.js("location.pathname") and "pos=1" in tab.js("location.search")
    assert tab.js("document.querySelector('h1 code').textContent").startswith(ids[1])
    tab.key("j", navigates=True)
    assert "pos=2" in tab.js("location.search")
    assert tab.js("document.querySelector('h1 code').textContent").startswith(ids[2])
    tab.key("k", navigates=True)
    tab.key("k", navigates=True)
    assert tab.js("document.querySelector('h1 code').textContent").startswith(ids[0])
    tab.key("u", navigates=True)
    assert tab.js("location.pathname") == "/traces" and "status=correct" in tab.js("location.search")
    assert tab.errors() == []


def test_hostile_trace_does_not_execute_and_long_thinking_arrives_in_chunks(tab, server, built, artifacts):
    tab.goto(server + f"/trace/{built['hostile_id']}")
    assert tab.js("typeof window.__pwned") == "undefined"
    assert tab.js("document.querySelectorAll('img').length") == 0
    assert tab.js("document.querySelector('section pre.text').textContent").startswith("Evil prompt <script>window.__pwned")
    tab.key("t")  # opens the thinking
    assert tab.js("document.getElementById('thinking').open") is True
    pre = "document.querySelector('#thinking pre.lazy')"
    first = tab.js(f"{pre}.textContent.length")
    assert first == 20000
    tab.js(f"{pre}.scrollTop = {pre}.scrollHeight; {pre}.dispatchEvent(new Event('scroll'))")
    tab.wait_for(f"{pre}.textContent.length > 20000")
    assert tab.js("typeof window.__pwned") == "undefined"
    assert tab.errors() == []
    tab.js("window.scrollTo(0, 0)")
    tab.shot(artifacts / "view-trace-hostile.png")


def test_the_static_export_opens_from_disk_without_errors(built, tmp_path, artifacts):
    from curate.view.export import export

    out = tmp_path / "copy"
    summary = export(built["store"], out, [built["mixtures"]], limit=20)
    seen = render(find_browser(), Path(summary["index"]), tmp_path / "profile")
    assert seen["errors"] == [] and seen["title"] == "overview · curate view"
    grid = next(out.glob("grid-*.html"))
    seen = render(find_browser(), grid, tmp_path / "profile2")
    assert seen["errors"] == []
    (artifacts / "view-export-grid.png").write_bytes(seen["screenshot"])
