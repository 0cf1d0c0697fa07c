"""The Ruby runtime (runtimes/ruby/server.rb) in its image, faasd/runtime-ruby:latest.

Every test starts the server as faasd does: a container with a read-only root,
a tmpfs at /tmp, no capabilities and a fresh specialization token, labelled
faasd.test=runtimes and removed afterwards. Needs a running Docker engine and the
image (make images); when either is missing the tests FAIL (they do not skip).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .support import Response, RuntimeClient, wait_until

pytestmark = pytest.mark.docker

DEPLOY_DIR = "/faasd/deploy"
MiB = 1024 * 1024

FORMS_RB = """\
# Every return form, chosen by the path.
def main(context)
  case context.request.path
  when "/string" then "hello"
  when "/interpolated" then "#{context.request.method} #{context.request.headers['x-a']} #{context.request.path}"
  when "/hash" then { "ok" => true, "n" => 1 }
  when "/array" then [1, "two", nil]
  when "/nil" then nil
  when "/pair" then ["created", 201]
  when "/triple" then ["<b>hi</b>", 202, { "Content-Type" => "text/html", "Set-Cookie" => ["a=1", "b=2"] }]
  when "/pairs" then [{ "x" => 1 }, 200, [["X-One", "1"], ["X-One", "2"]]]
  when "/binary" then "\\x00\\x01\\xff".b
  when "/json-pair" then [[1, 2], 200]
  when "/latin1" then ["ok", 200, { "X-Name" => "Zo\\u00eb" }]
  when "/object" then Object.new
  when "/status" then ["x", 700]
  end
end
"""

ECHO_RB = """\
def main(context)
  r = context.request
  {
    "method" => r.method, "path" => r.path, "url" => r.url, "query_string" => r.query_string,
    "query" => r.query, "headers" => r.headers, "params" => r.params, "body" => r.body,
    "json" => (r.headers["content-type"] == "application/json" ? r.json : nil),
  }
end
"""

TOKEN_RB = """\
def main
  { "env" => ENV.key?("FAASD_SPECIALIZE_TOKEN"), "child" => `env`.include?("FAASD_SPECIALIZE_TOKEN"),
    "greeting" => ENV["GREETING"], "n" => ENV["N"] }
end
"""

ERRORS_RB = """\
def helper(n)
  10 / n
end

def main(context)
  case context.request.path
  when "/raise" then raise "boom"
  when "/zero" then helper(0)
  when "/exit" then exit 3
  when "/json" then context.request.json
  end
end
"""

HEADERS_RB = """\
def main(context)
  case context.request.path
  when "/crlf" then ["x", 200, { "X-Bad" => "a\\r\\nInjected: 1" }]
  when "/snowman" then ["x", 200, { "X-Name" => "snow \\u2603" }]
  when "/name" then ["x", 200, { "Bad Name" => "1" }]
  end
end
"""


# -- the container ------------------------------------------------------------


@pytest.fixture
def start(start_container: Callable[..., RuntimeClient]) -> Callable[..., RuntimeClient]:
    """Starts the Ruby runtime as faasd does (conftest's start_container); ``start(token=None)``:
    without a token, ``start(deploy=path)``: the host folder mounted read-only at /faasd/deploy."""
    return lambda **options: start_container("ruby", **options)


def logs(rt: RuntimeClient, wanted: str) -> str:
    """The container's output once it contains ``wanted`` (the engine ships it asynchronously)."""
    container = rt.container  # type: ignore[attr-defined]

    def output() -> str:
        out = container.logs().decode()
        return out if wanted in out else ""

    return str(wait_until(output, f"{wanted!r} logged"))


def error(r: Response, status: int, code: str) -> dict[str, Any]:
    assert r.status == status, r
    assert r.headers["content-type"] == "application/json", r.headers
    err = r.json()["error"]
    assert err["code"] == code, err
    return dict(err)


def specialize_deploy(rt: RuntimeClient, deploy_dir: str, entrypoint: str | None = None) -> Response:
    doc: dict[str, Any] = {"deploy_dir": deploy_dir}
    if entrypoint is not None:
        doc["entrypoint"] = entrypoint
    headers = {"Content-Type": "application/json", **rt.auth_headers()}
    return rt.request("POST", "/v2/specialize", json.dumps(doc), headers)


# -- health, token, states ----------------------------------------------------


def test_health_always_and_calls_wait_for_the_specialization(start) -> None:
    rt = start()
    assert re.fullmatch(r"faasd-runtime: ruby 3\.\d+\.\d+ listening on 0\.0\.0\.0:8888", logs(rt, "listening").strip())
    for method in ("GET", "HEAD"):
        r = rt.request(method, "/healthz")
        assert (r.status, r.headers["content-length"]) == (200, "2")
        assert r.body == (b"ok" if method == "GET" else b"")
    error(rt.get("/"), 503, "not_specialized")
    error(rt.request("POST", "/healthz", b"x"), 503, "not_specialized")  # only GET/HEAD /healthz are reserved
    assert rt.specialize("hello.rb", "def main = 'hi'\n").status == 200
    assert rt.get("/healthz").body == b"ok"
    assert rt.request("POST", "/healthz").text == "hi"


def test_the_token_is_required_checked_and_gone_from_the_environment(start) -> None:
    rt = start()
    r = rt.specialize("t.rb", TOKEN_RB, token=None)
    err = error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in err["message"]
    err = error(rt.specialize("t.rb", TOKEN_RB, token="x" * 43), 401, "unauthorized")
    assert err["message"] == "the specialization token is wrong"
    error(rt.specialize("t.rb", TOKEN_RB, token=rt.token[:-1]), 401, "unauthorized")
    assert rt.request("POST", "/v2/specialize", b"{}", {"Authorization": f"Basic {rt.token}"}).status == 401
    error(rt.get("/"), 503, "not_specialized")  # a 401 is not an attempt: still generic
    # The right token, with another scheme spelling; env values are set before the load.
    headers = {"Content-Type": "application/json", "Authorization": f"BEARER {rt.token}"}
    doc = {"filename": "t.rb", "code": TOKEN_RB, "env": {"GREETING": "hey", "N": 3}}
    r = rt.request("POST", "/v2/specialize", json.dumps(doc), headers)
    assert r.status == 200, r
    assert r.json()["status"] == "specialized" and r.json()["load_ms"] >= 0
    assert rt.get("/").json() == {"env": False, "child": False, "greeting": "hey", "n": "3"}
    assert "faasd-runtime: specialized t.rb (main()) in " in logs(rt, "specialized t.rb")
    error(rt.specialize("t.rb", TOKEN_RB), 409, "already_specialized")
    error(rt.specialize("t.rb", TOKEN_RB, token=None), 401, "unauthorized")  # the token first, then the state


def test_without_a_token_at_start_specialization_is_open(start) -> None:
    rt = start(token=None)
    assert "no FAASD_SPECIALIZE_TOKEN" in logs(rt, "listening")
    assert rt.specialize("h.rb", "def main = 'open'\n", token="anything").status == 200
    assert rt.get("/").text == "open"


def test_malformed_specializations_leave_the_container_generic(start) -> None:
    rt = start()
    auth = {"Content-Type": "application/json", **rt.auth_headers()}
    for body in (b"{not json", b"[1]", b'{"filename": "../x.rb", "code": ""}', b'{"filename": "x.rb"}', b"\xff\xfe"):
        error(rt.request("POST", "/v2/specialize", body, auth), 400, "bad_request")
    bad_env = {"filename": "x.rb", "code": "", "env": {"A=B": "1"}}
    error(rt.request("POST", "/v2/specialize", json.dumps(bad_env), auth), 400, "bad_request")
    err = error(specialize_deploy(rt, "/nowhere"), 400, "bad_request")
    assert "not a directory" in err["message"]
    big = json.dumps({"filename": "x.rb", "code": "#" * (8 * MiB)}).encode()
    r = rt.request("POST", "/v2/specialize", big, auth, new_connection=True)
    error(r, 413, "bad_request")
    assert rt.specialize("ok.rb", "def main(ctx) = 'fine'\n").status == 200
    assert rt.get("/").text == "fine"


# -- calls --------------------------------------------------------------------


def test_every_return_form(start) -> None:
    rt = start()
    assert rt.specialize("forms.rb", FORMS_RB).status == 200
    r = rt.get("/string")
    assert (r.status, r.headers["content-type"], r.text) == (200, "text/plain; charset=utf-8", "hello")
    r = rt.get("/interpolated", headers={"X-A": "b"})  # every String the function gets is UTF-8
    assert (r.headers["content-type"], r.text) == ("text/plain; charset=utf-8", "GET b /interpolated")
    r = rt.get("/hash")
    assert (r.status, r.headers["content-type"], r.json()) == (200, "application/json", {"ok": True, "n": 1})
    assert rt.get("/array").json() == [1, "two", None]
    r = rt.get("/nil")
    assert (r.status, r.body) == (204, b"")
    assert "content-length" not in r.headers
    r = rt.get("/pair")
    assert (r.status, r.text) == (201, "created")
    r = rt.get("/triple")
    assert (r.status, r.headers["content-type"], r.text) == (202, "text/html", "<b>hi</b>")
    assert r.all("Set-Cookie") == ["a=1", "b=2"]
    r = rt.get("/pairs")
    assert (r.json(), r.all("X-One")) == ({"x": 1}, ["1", "2"])
    r = rt.get("/binary")
    assert (r.headers["content-type"], r.body) == ("application/octet-stream", b"\x00\x01\xff")
    assert rt.get("/json-pair").json() == [1, 2]  # [body, status] wrapping a JSON array
    r = rt.get("/latin1")  # latin-1 header values go out as latin-1 bytes
    assert r.headers["x-name"] == "Zo\u00eb"
    err = error(rt.get("/object"), 500, "function_error")
    assert err["message"].startswith("FunctionResultError: cannot send a Object as a response"), err
    err = error(rt.get("/status"), 500, "function_error")
    assert err["message"] == "FunctionResultError: invalid status code 700: expected 200-599"
    r = rt.request("HEAD", "/string")
    assert (r.status, r.headers["content-length"], r.body) == (200, "5", b"")


def test_the_request_the_function_sees(start) -> None:
    rt = start()
    assert rt.specialize("echo.rb", ECHO_RB).status == 200
    headers = {
        "X-Faasd-Params": json.dumps({"id": "42", "name": "café"}),
        "X-Faasd-Anything": "hidden",
        "X-Custom": "one",
        "Content-Type": "application/json",
    }
    r = rt.request("PUT", "/items/42?a=1&b=%C3%A9+x&a=2&flag", b'{"k": [1, 2]}', headers)
    assert r.status == 200, r
    seen = r.json()
    assert seen["method"] == "PUT"
    assert (seen["path"], seen["url"], seen["query_string"]) == (
        "/items/42",
        "/items/42?a=1&b=%C3%A9+x&a=2&flag",
        "a=1&b=%C3%A9+x&a=2&flag",
    )
    assert seen["query"] == {"a": ["1", "2"], "b": "é x", "flag": ""}
    assert seen["params"] == {"id": "42", "name": "café"}
    assert seen["headers"]["x-custom"] == "one"
    assert not [k for k in seen["headers"] if k.startswith("x-faasd-") or k != k.lower()]
    assert (seen["body"], seen["json"]) == ('{"k": [1, 2]}', {"k": [1, 2]})
    # A chunked body, on the same keep-alive connection.
    r = rt.request("POST", "/up", b"chunked body here", {"Content-Type": "text/plain"}, chunked=True)
    assert r.json()["body"] == "chunked body here"
    assert rt.get("/").json()["params"] == {}
    error(rt.get("/", headers={"X-Faasd-Params": "{oops"}), 400, "bad_request")
    error(rt.get("/", headers={"X-Faasd-Params": "[1]"}), 400, "bad_request")


def test_a_function_without_arguments_reads_request(start) -> None:
    rt = start()
    code = "# café ☃\ndef main\n  \"hello #{request.params['name']} #{request.query['x']} ☃\"\nend\n"
    assert rt.specialize("hello.rb", code, entrypoint="hello.main").status == 200
    r = rt.get("/?x=1", headers={"X-Faasd-Params": '{"name": "Zoë"}'})
    assert r.text == "hello Zoë 1 ☃"


def test_a_raised_error_is_a_500_with_its_location(start) -> None:
    rt = start()
    assert rt.specialize("errors.rb", ERRORS_RB).status == 200
    assert error(rt.get("/raise"), 500, "function_error") == {
        "code": "function_error",
        "message": "RuntimeError: boom",
        "location": "errors.rb:7",
    }
    err = error(rt.get("/zero"), 500, "function_error")
    assert (err["message"], err["location"]) == ("ZeroDivisionError: divided by 0", "errors.rb:2")
    err = error(rt.get("/exit"), 500, "function_error")
    assert err["message"].startswith("SystemExit"), err
    error(rt.request("POST", "/json", b"{bad", {"Content-Type": "application/json"}), 400, "bad_request")
    assert rt.get("/healthz").body == b"ok"  # the container lives on
    out = logs(rt, "divided by 0")
    assert "faasd-runtime: function error:" in out and "/tmp/faasd-function/errors.rb:2" in out


@pytest.mark.parametrize(
    ("code", "message", "location"),
    [
        ("a = 1\ndef main\n  return a +\nend\n", "SyntaxError: syntax error, unexpected `end'", "broken.rb:4"),
        ("require 'nope'\ndef main = 1\n", "LoadError: cannot load such file -- nope", "broken.rb:1"),
        ("def other = 1\n\nraise ArgumentError, 'at load'\n", "ArgumentError: at load", "broken.rb:3"),
        (
            "def other = 1\ndef helper(x) = x\n",
            "EntrypointError: broken.rb has no function named 'main'; functions defined: helper, other",
            "broken.rb",
        ),
        ("def main(a, b) = 1\n", "EntrypointError: 'main' in broken.rb takes 2 arguments", "broken.rb"),
    ],
)
def test_a_load_error_is_a_500_for_good_and_a_409_after(start, code: str, message: str, location: str) -> None:
    rt = start()
    err = error(rt.specialize("broken.rb", code), 500, "load_error")
    assert err["message"].startswith(message), err
    assert err["location"] == location, err
    assert "/tmp/faasd-function" not in err["message"]
    assert error(rt.get("/"), 500, "load_error") == err  # every call: the same answer
    error(rt.specialize("fixed.rb", "def main = 1\n"), 409, "already_specialized")
    assert "faasd-runtime: specialization of broken.rb failed: " in logs(rt, "failed:")


def test_a_header_that_cannot_be_sent_is_a_500_naming_it(start) -> None:
    rt = start()
    assert rt.specialize("headers.rb", HEADERS_RB).status == 200
    err = error(rt.get("/crlf"), 500, "function_error")
    assert err["message"] == (
        'FunctionResultError: header "X-Bad" has a value that cannot be sent in HTTP/1.1 (it contains a CR at index 1)'
    )
    err = error(rt.get("/snowman"), 500, "function_error")
    assert 'header "X-Name"' in err["message"] and "U+2603" in err["message"], err
    assert "injected" not in rt.get("/crlf").headers
    err = error(rt.get("/name"), 500, "function_error")
    assert err["message"].startswith('FunctionResultError: header name "Bad Name" cannot be sent'), err
    assert rt.get("/healthz").body == b"ok"  # the same connection: nothing half-written


def test_a_package_from_its_deployment_directory(start, tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "lib").mkdir(parents=True)
    (deploy / "lib" / "greet.rb").write_text(
        "module Greet\n  def self.greet(name)\n    raise 'no name' if name.empty?\n    \"hi #{name}\"\n  end\nend\n"
    )
    (deploy / "main.rb").write_text(
        "require 'lib/greet'\n\ndef handler(context)\n  Greet.greet(context.request.query.fetch('name', ''))\nend\n"
    )
    rt = start(deploy=deploy)
    r = specialize_deploy(rt, DEPLOY_DIR, "main.handler")
    assert r.status == 200, r
    assert rt.get("/?name=ruby").text == "hi ruby"
    err = error(rt.get("/"), 500, "function_error")
    assert (err["message"], err["location"]) == ("RuntimeError: no name", "lib/greet.rb:3")
    assert f"specialized main.handler (in {DEPLOY_DIR}, handler(context))" in logs(rt, "specialized")

    # A missing file or method is an EntrypointError at the file it looked for.
    rt = start(deploy=deploy)
    err = error(specialize_deploy(rt, DEPLOY_DIR, "api.get"), 500, "load_error")
    assert err["message"].startswith("EntrypointError: no file 'api' in the deployment (entrypoint api.get)"), err
    assert err["location"] == "api.rb"
    rt = start(deploy=deploy)
    err = error(specialize_deploy(rt, DEPLOY_DIR), 500, "load_error")  # default main.main
    assert err["message"] == (
        "EntrypointError: main.rb has no function named 'main' (entrypoint main.main); functions defined: handler"
    )
    assert err["location"] == "main.rb"


def test_calls_run_side_by_side_and_sigterm_ends_it_at_once(start) -> None:
    rt = start()
    code = "def main(context)\n  sleep 1 if context.request.path == '/slow'\n  'done'\nend\n"
    assert rt.specialize("slow.rb", code).status == 200
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(rt.get("/slow", new_connection=True).text))
    t0 = time.monotonic()
    thread.start()
    time.sleep(0.2)
    assert rt.get("/healthz", new_connection=True).body == b"ok"
    assert rt.get("/fast", new_connection=True).text == "done"
    assert time.monotonic() - t0 < 0.9  # neither waited for the slow call
    thread.join(5)
    assert results == ["done"]
    container = rt.container  # type: ignore[attr-defined]
    t0 = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - t0 < 3
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
