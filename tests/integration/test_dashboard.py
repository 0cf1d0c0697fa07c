"""The web dashboard at /ui, in a real headless Chromium against a real faasd.

One flow does what a user does: logs in (after a wrong token is refused),
creates a function by uploading a file, calls it from the invoke form, and
finds that call again in the charts, the live log tail (by its request id) and
the usage table; every other page renders without an API error. A screenshot
of each page goes to build/screenshots/ (CI keeps them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.integration.browser import Browser, browser_fixture  # noqa: F401 (the `browser` fixture)
from tests.integration.harness import ROOT, FaasdProcess

pytestmark = pytest.mark.docker

SHOTS = ROOT / "build" / "screenshots"
PRINTED = "dashboard says hi"
HELLO = f'''def main():
    print("{PRINTED}")
    return "Hello from the dashboard\\n"
'''


def js(value: str) -> str:
    return json.dumps(value)


def shown(selector: str) -> str:
    """JS: the element is there and not hidden."""
    return f"(e => !!e && !e.hidden && e.offsetParent !== null)(document.querySelector({js(selector)}))"


def no_api_error() -> str:
    """JS: the text of the page's error lines, joined ('' when none shows)."""
    return "[...document.querySelectorAll('#page .error')].map(e => e.textContent).filter(Boolean).join(' | ')"


@contextmanager
def shot_on_failure(browser: Browser, name: str) -> Iterator[None]:
    """A screenshot build/screenshots/failed-NAME.png when the block fails (an older one goes first)."""
    (SHOTS / f"failed-{name}.png").unlink(missing_ok=True)
    try:
        yield
    except BaseException:
        try:
            browser.screenshot(SHOTS / f"failed-{name}.png")
        finally:
            raise


def log_in(browser: Browser, daemon: FaasdProcess) -> None:
    browser.navigate(daemon.url + "/ui/")
    browser.wait_for(shown("#token"), "the log-in form")
    browser.type("#token", daemon.token)
    browser.click("#login button[type=submit]")
    browser.wait_for(shown("#logout"), "the dashboard after logging in")


def visit(browser: Browser, hash_: str, ready: str, what: str, timeout: float = 15.0) -> None:
    """Go to a page of the dashboard and wait until ``ready`` holds, and no error line shows."""
    browser.evaluate(f"location.hash = {js(hash_)}")
    browser.wait_for(ready, what, timeout)
    errors = browser.evaluate(no_api_error())
    assert not errors, f"{hash_} shows an error: {errors}"


def test_assets_are_public_with_a_strict_policy_and_the_api_is_not(faasd: FaasdProcess) -> None:
    page = requests.get(faasd.url + "/ui/", timeout=10)
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-cache"
    assert '<script type="module" src="app.js"></script>' in page.text
    assert "<script>" not in page.text  # no inline script: the policy would block it anyway

    moved = requests.get(faasd.url + "/ui", timeout=10, allow_redirects=False)
    assert moved.status_code in (301, 302, 307, 308) and moved.headers["Location"] == "/ui/"
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = requests.get(f"{faasd.url}/ui/{name}", timeout=10)
        assert asset.status_code == 200 and asset.headers["Content-Type"].startswith(kind), name
        assert "Content-Security-Policy" in asset.headers
        again = requests.get(f"{faasd.url}/ui/{name}", headers={"If-None-Match": asset.headers["ETag"]}, timeout=10)
        assert again.status_code == 304

    for path in ("/ui/nope.js", "/ui/%2e%2e/%2e%2e/faasd/app.py", "/ui/..%2fcontrol%2fui.py", "/ui/%2Fetc%2Fpasswd"):
        assert requests.get(faasd.url + path, timeout=10).status_code == 404, path
    assert requests.get(faasd.url + "/v1/status", timeout=10).status_code == 401
    assert requests.get(faasd.url + "/v1/functions", timeout=10).status_code == 401


def test_the_token_stays_in_the_tab_and_out_of_every_url(faasd: FaasdProcess, browser: Browser) -> None:
    token = faasd.token
    assert token
    with shot_on_failure(browser, "token"):
        browser.navigate(faasd.url + "/ui/#/environments")
        browser.wait_for(shown("#token"), "the log-in form")
        browser.type("#token", token + "x")
        browser.click("#login button[type=submit]")
        browser.wait_for("document.querySelector('#login-error').textContent", "the refusal")
        assert browser.text("#login-error") == "the token was refused"
        assert browser.evaluate("sessionStorage.length") == 0

        browser.type("#token", token)
        browser.click("#login button[type=submit]")
        browser.wait_for("!!document.querySelector('#environments')", "the environments page")
        assert browser.evaluate("sessionStorage.getItem('faasd.token')") == token
        assert browser.evaluate("localStorage.length") == 0
        assert browser.evaluate("document.cookie") == ""
        assert browser.evaluate("document.querySelector('#token').value") == ""  # not left in the form
        for hash_ in ("#/functions", "#/routes", "#/triggers", "#/usage", "#/new"):
            browser.evaluate(f"location.hash = {js(hash_)}")
            browser.wait_for(f"document.querySelector('#page').dataset.page === {js(hash_[2:])}", hash_)
            assert token not in browser.url()

        browser.navigate(faasd.url + "/ui/#/routes")  # a reload: the tab keeps its session
        browser.wait_for("!!document.querySelector('#routes')", "the routes page after a reload")

        sent = browser.requests()
        assert sent, "the browser recorded no request"
        for method, url, _headers in sent:
            assert token not in url, f"the token is in the URL of {method} {url}"
        api = [(m, u, hs) for m, u, hs in sent if "/v1/" in u]
        assert api and all(hs.get("authorization", "").startswith("Bearer ") for _, _, hs in api)
        assert all("authorization" not in hs for _, u, hs in sent if "/ui/" in u and "/v1/" not in u)

        browser.click("#logout")
        browser.wait_for(shown("#token"), "the log-in form after logging out")
        assert browser.evaluate("sessionStorage.getItem('faasd.token')") is None
        assert browser.page_errors() == []


def test_a_function_from_upload_to_usage(faasd: FaasdProcess, browser: Browser, tmp_path: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "hello_dash.py"
    source.write_text(HELLO)
    name = "hello-dash"  # from the file's name, as `faas deploy` makes it
    with shot_on_failure(browser, "flow"):
        browser.navigate(faasd.url + "/ui/")
        browser.wait_for(shown("#token"), "the log-in form")
        browser.screenshot(SHOTS / "login.png")
        log_in(browser, faasd)

        # Create: the file input, the environment guessed from the extension, the route GET /NAME.
        visit(browser, "#/new", "document.querySelectorAll('#create-env option').length > 0", "the environments list")
        browser.set_file("#create-file", source)
        browser.wait_for("document.querySelector('#create-env').value === 'python'", "python chosen for a .py file")
        browser.screenshot(SHOTS / "create.png")
        browser.click("#create button[type=submit]")
        browser.wait_for(
            f"location.hash === {js('#/functions/' + name)} || document.querySelector('#create .error').textContent",
            "the new function's page",
        )
        assert browser.evaluate("location.hash") == f"#/functions/{name}", browser.text("#create .error")

        # Its page: settings and code, then a call from the invoke form.
        browser.wait_for(f"document.querySelector('#code').textContent.includes({js(PRINTED)})", "the code view")
        browser.wait_for("document.querySelector('#settings')?.textContent.includes('python')", "the settings")
        browser.wait_for("document.querySelector('#log-state').textContent === 'following'", "the log tail")
        browser.click("#invoke button[type=submit]")
        browser.wait_for(shown("#invoke-result"), "the invoke form's answer")
        assert browser.text("#invoke-status") == "200 OK"
        assert browser.text("#invoke-output") == "Hello from the dashboard\n"
        request_id = browser.text("#invoke-request-id")
        assert re.fullmatch(r"[0-9A-Za-z._:-]{8,}", request_id), f"no X-Request-Id shown: {request_id!r}"

        # The call's own log line, in the live tail, tagged with its request id.
        line = browser.wait_for(
            "document.querySelector('#log').textContent.split('\\n')"
            f".find(l => l.includes({js('[' + request_id + ']')}) && l.includes({js(PRINTED)}))",
            f"the log line of request {request_id}",
            timeout=20,
        )
        assert " stdout " in line
        # The call, counted at once (the last minute is the current one) and its instance.
        browser.wait_for(
            "Number(document.querySelector('figure[data-series=calls] figcaption span').textContent"
            ".replace('total ', '')) >= 1",
            "the call in the calls chart",
            timeout=20,
        )
        browser.wait_for("document.querySelectorAll('#instances tbody tr code').length >= 1", "its instance")
        assert browser.evaluate(no_api_error()) == ""
        browser.screenshot(SHOTS / "function.png")
        requests_sent = browser.requests()
        calls = [hs for m, u, hs in requests_sent if f"/function/{name}" in u]
        assert calls and all("authorization" not in hs for hs in calls), "a function call carried the admin token"

        # The functions page: its row, with the call in its totals and a chart per series.
        visit(
            browser,
            "#/functions",
            f"Number(document.querySelector('#functions tr[data-name={name}] .total-calls')?.textContent) >= 1",
            "the call counted on the functions page",
            timeout=20,
        )
        assert browser.evaluate(f"document.querySelectorAll('#functions tr[data-name={name}] svg.chart').length") == 5
        browser.screenshot(SHOTS / "functions.png")

        visit(
            browser,
            "#/usage",
            f"Number(document.querySelector('#usage tr[data-name={name}] td:nth-child(3)')?.textContent) >= 1",
            "the function in the usage table",
            timeout=20,
        )
        assert browser.evaluate("!!document.querySelector('#usage tfoot')")
        browser.screenshot(SHOTS / "usage.png")

        visit(browser, "#/routes", f"document.querySelector('#routes')?.textContent.includes('/{name}')", "its route")
        browser.screenshot(SHOTS / "routes.png")
        faasd.ok("POST", "/v1/timers", json={"name": "dash-yearly", "function": name, "cron": "0 0 1 1 *"})
        visit(
            browser,
            "#/triggers",
            "['watches', 'mqtriggers'].every(id => !!document.getElementById(id)) && "
            "!!document.querySelector('#timers tr[data-name=dash-yearly]')",
            "the three trigger tables, the timer in the first",
        )
        browser.screenshot(SHOTS / "triggers.png")
        visit(
            browser,
            "#/environments",
            "!!document.querySelector('#environments tr[data-name=python]') && "
            f"!!document.querySelector('#function-status tr[data-name={name}]')",
            "the environments and their pools",
        )
        browser.screenshot(SHOTS / "environments.png")
        assert browser.page_errors() == []

    # What the page did, the API agrees with.
    assert faasd.ok("GET", f"/v1/functions/{name}")["filename"] == "hello_dash.py"
