"""A headless Chromium driven over the Chrome DevTools Protocol, for the dashboard's tests.

`launch()` starts `chromium --headless=new` in its own process group with a
throw-away profile, reads the debugging port from <profile>/DevToolsActivePort
(bounded polling), and connects to the page over a WebSocket (aiohttp). The
`Browser` it yields is synchronous, as the suite's tests are: a private event
loop runs in a thread and every call waits for its answer with a timeout.
Whatever happens, the whole process group is killed when the `with` ends.

The fixture `browser` (import `browser_fixture` into a test module) gives a
test a fresh browser. Without a `chromium` on the PATH it fails loudly: run
`make browser` (scripts/ensure-chromium.sh).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

T = TypeVar("T")
CALL_TIMEOUT = 30.0
START_TIMEOUT = 30.0


class CdpError(AssertionError):
    """A DevTools command failed, or the page's JavaScript threw."""


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise AssertionError("the dashboard tests need Chromium: no 'chromium' on the PATH; run 'make browser'")


class _Connection:
    """One DevTools WebSocket: commands by id, events kept for diagnostics."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            doc = json.loads(message.data)
            future = self.pending.pop(doc["id"], None) if "id" in doc else None
            if future is not None and not future.done():
                future.set_result(doc)
            elif "method" in doc:
                self.events.append(doc)
        for future in self.pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params or {}}))
        doc = await future
        if "error" in doc:
            raise CdpError(f"{method} failed: {doc['error'].get('message')} {doc['error'].get('data', '')}".strip())
        return dict(doc.get("result", {}))

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


class Browser:
    """A page of a running headless Chromium, with synchronous calls."""

    def __init__(self, loop: asyncio.AbstractEventLoop, connection: _Connection) -> None:
        self._loop = loop
        self._cdp = connection

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise AssertionError(f"the browser did not answer within {timeout:.0f} s") from None

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = CALL_TIMEOUT) -> dict[str, Any]:
        """One DevTools command (e.g. "Page.navigate"), its result."""
        return self._run(self._cdp.send(method, params), timeout)

    # -- the page -----------------------------------------------------------

    def evaluate(self, expression: str, timeout: float = CALL_TIMEOUT) -> Any:
        """The value of a JavaScript expression in the page (promises awaited); raises if it throws."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True, "userGesture": True},
            timeout,
        )
        details = result.get("exceptionDetails")
        if details is not None:
            description = details.get("exception", {}).get("description") or details.get("text", "")
            raise CdpError(f"JavaScript threw: {description}\n  in: {expression[:300]}")
        return result.get("result", {}).get("value")

    def wait_for(self, condition: str, what: str, timeout: float = 15.0, every: float = 0.1) -> Any:
        """Poll the JavaScript ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            last = self.evaluate(condition)
            if last:
                return last
            if time.monotonic() >= deadline:
                break
            time.sleep(every)
        raise AssertionError(
            f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}); "
            f"URL {self.url()}; page errors: {self.page_errors() or 'none'}"
        )

    def navigate(self, url: str, timeout: float = 15.0) -> None:
        result = self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigating to {url} failed: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", f"{url} to load", timeout)

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def _element(self, selector: str, timeout: float) -> str:
        js = json.dumps(selector)
        self.wait_for(f"!!document.querySelector({js})", f"an element {selector!r}", timeout)
        return js

    def click(self, selector: str, timeout: float = 10.0) -> None:
        """Click the first element that ``selector`` matches (waiting for it to be there and enabled)."""
        js = self._element(selector, timeout)
        self.wait_for(f"!document.querySelector({js}).disabled", f"{selector!r} to be enabled", timeout)
        self.evaluate(f"document.querySelector({js}).click()")

    def type(self, selector: str, text: str, timeout: float = 10.0) -> None:
        """Replace the value of the input ``selector`` with ``text``, as typed (input events fire)."""
        js = self._element(selector, timeout)
        self.evaluate(f"(e => {{ e.focus(); e.value = ''; }})(document.querySelector({js}))")
        if text:
            self.send("Input.insertText", {"text": text})

    def select(self, selector: str, value: str, timeout: float = 10.0) -> None:
        """Choose ``value`` in the <select> ``selector`` (a change event fires)."""
        js = self._element(selector, timeout)
        self.evaluate(
            f"(e => {{ e.value = {json.dumps(value)}; e.dispatchEvent(new Event('change', {{bubbles: true}})); }})"
            f"(document.querySelector({js}))"
        )

    def set_file(self, selector: str, path: Path | str, timeout: float = 10.0) -> None:
        """Put the file at ``path`` into the file input ``selector`` (its change event fires)."""
        self._element(selector, timeout)
        root = self.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = self.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        if not node:
            raise CdpError(f"no element {selector!r} for a file")
        self.send("DOM.setFileInputFiles", {"nodeId": node, "files": [str(Path(path).resolve())]})

    def text(self, selector: str) -> str:
        """The text of the first element ``selector`` matches ("" when none does)."""
        return str(self.evaluate(f"document.querySelector({json.dumps(selector)})?.textContent ?? ''"))

    def screenshot(self, path: Path | str) -> Path:
        """A PNG of the whole page (beyond the window too)."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return out

    # -- what the page did ---------------------------------------------------

    def requests(self) -> list[tuple[str, str, dict[str, str]]]:
        """Every request the page sent so far: (method, URL, headers with lower-case names)."""
        sent: list[tuple[str, str, dict[str, str]]] = []
        for event in list(self._cdp.events):
            if event["method"] == "Network.requestWillBeSent":
                request = event["params"]["request"]
                headers = {k.lower(): v for k, v in request.get("headers", {}).items()}
                sent.append((request["method"], request["url"], headers))
        return sent

    # -- what went wrong in the page ----------------------------------------

    def page_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and browser errors (CSP violations among them).

        Failed network requests are left out: an API answer of 401 or 404 is a
        test's expected outcome, and the page shows those itself.
        """
        found: list[str] = []
        for event in list(self._cdp.events):
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))
            elif method == "Log.entryAdded":
                entry = params.get("entry", {})
                if entry.get("level") == "error" and entry.get("source") != "network":
                    found.append(f"{entry.get('source')}: {entry.get('text')}")
        return found


def _read_port(profile: Path, proc: subprocess.Popen[bytes], log: Path) -> tuple[int, str]:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"chromium exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(FileNotFoundError):
            lines = marker.read_text().split("\n")
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                return int(lines[0]), lines[1].strip()
        time.sleep(0.05)
    raise AssertionError(f"chromium wrote no {marker} within {START_TIMEOUT:.0f} s")


async def _connect(port: int) -> _Connection:
    session = aiohttp.ClientSession()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            listing = session.get(f"http://127.0.0.1:{port}/json/list", timeout=aiohttp.ClientTimeout(total=5))
            async with listing as response:
                targets = await response.json(content_type=None)
            pages = [t for t in targets if t.get("type") == "page" and t.get("webSocketDebuggerUrl")]
            if pages:
                break
            if time.monotonic() >= deadline:
                raise AssertionError(f"chromium shows no page target (targets: {targets})")
            await asyncio.sleep(0.05)
        ws = await asyncio.wait_for(session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0), CALL_TIMEOUT)
    except BaseException:
        await session.close()
        raise
    connection = _Connection(session, ws)
    for domain in ("Page", "Runtime", "Log", "DOM", "Network"):
        await connection.send(f"{domain}.enable")
    return connection


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Chromium and every process it started (it leads its own group)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # helpers that outlived the browser process


@contextlib.contextmanager
def launch(width: int = 1400, height: int = 1000) -> Iterator[Browser]:
    """A headless Chromium on a blank page; killed, with its process group, when the block ends."""
    binary = chromium_path()
    profile = Path(tempfile.mkdtemp(prefix="faasd-chromium-"))
    log = profile / "chromium.log"
    args = [
        binary,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--remote-debugging-port=0",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--password-store=basic",
        "about:blank",
    ]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="cdp", daemon=True)
    thread.start()
    proc: subprocess.Popen[bytes] | None = None
    connection: _Connection | None = None
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        port, _path = _read_port(profile, proc, log)
        connection = asyncio.run_coroutine_threadsafe(_connect(port), loop).result(START_TIMEOUT + CALL_TIMEOUT)
        browser = Browser(loop, connection)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        yield browser
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(connection.close(), loop).result(10)
        if proc is not None:
            _kill_group(proc)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(name="browser")
def browser_fixture() -> Iterator[Browser]:
    """A fresh headless Chromium for one test, always killed afterwards."""
    with launch() as browser:
        yield browser
