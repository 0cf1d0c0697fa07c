"""The runtime servers (runtimes/*/server.*) run as host processes.

Both languages must behave the same on the wire; see runtimes/README.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .support import LANGS, HostRuntime

FILENAME = {"nodejs": "hello.js", "python": "hello.py"}

ECHO = {
    "nodejs": """
module.exports = async (context) => {
  const r = context.request;
  const body = Buffer.isBuffer(r.body) ? {base64: r.body.toString('base64')} : r.body;
  return {status: 200, headers: {'X-Echo': 'yes'},
          body: {method: r.method, path: r.path, query: r.query, headers: r.headers,
                 params: r.params, body, raw: r.rawBody.toString('base64')}};
};
""",
    "python": """
import base64

def main(context):
    r = context.request
    ctype = r.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        body = r.json()
    elif ctype.startswith("text/") or ctype.startswith("application/x-www-form"):
        body = r.text
    else:
        body = {"base64": base64.b64encode(r.body).decode()}
    return ({"method": r.method, "path": r.path, "query": r.query, "headers": r.headers,
             "params": r.params, "body": body, "raw": base64.b64encode(r.body).decode()},
            200, {"X-Echo": "yes"})
""",
}

BINARY_ECHO = {
    "nodejs": "module.exports = async (context) => context.request.rawBody;\n",
    "python": "def main(context):\n    return context.request.body\n",
}

THROWS = {
    "nodejs": "module.exports = async () => {\n  throw new TypeError('boom ' + 42);\n};\n",
    "python": "def main(context):\n    raise ValueError('boom ' + str(42))\n",
}
THROWN = {"nodejs": "TypeError: boom 42", "python": "ValueError: boom 42"}

ENV = {
    "nodejs": "module.exports = () => `${process.env.GREETING}, ${process.env.WHO}`;\n",
    "python": "import os\n\ndef main():\n    return f\"{os.environ['GREETING']}, {os.environ['WHO']}\"\n",
}

ENTRYPOINT = {
    "nodejs": "exports.first = () => 'first';\nexports.second = () => 'second';\n",
    "python": "def first():\n    return 'first'\n\ndef second():\n    return 'second'\n",
}

# (code, expected error type, expected location)
LOAD_ERRORS = {
    "syntax": {
        "nodejs": (
            "const a = 1;\nconst b = 2;\nconst c = ;\nmodule.exports = () => 1;\n",
            "SyntaxError",
            "hello.js:3",
        ),
        "python": ("a = 1\nb = 2\ndef main(:\n    return 1\n", "SyntaxError", "hello.py:3"),
    },
    "missing_export": {
        "nodejs": ("exports.other = () => 1;\n", "EntrypointError", "hello.js"),
        "python": ("def other():\n    return 1\n", "EntrypointError", "hello.py"),
    },
    "bad_import": {
        "nodejs": (
            "const a = 1;\nconst x = require('no-such-module-faasd');\nmodule.exports = () => x;\n",
            "Error [MODULE_NOT_FOUND]",
            "hello.js:2",
        ),
        "python": (
            "import os\nimport no_such_module_faasd\n\ndef main():\n    return 1\n",
            "ModuleNotFoundError",
            "hello.py:2",
        ),
    },
    "top_level_throw": {
        "nodejs": ("const a = 1;\n\nthrow new RangeError('bad config');\n", "RangeError", "hello.js:3"),
        "python": ("a = 1\n\nraise RuntimeError('bad config')\n", "RuntimeError", "hello.py:3"),
    },
}
LOAD_TEXT = {
    "syntax": "",
    "missing_export": "main",
    "bad_import": "no",
    "top_level_throw": "bad config",
}


@pytest.fixture(params=LANGS)
def rt(request, start_runtime) -> HostRuntime:
    return start_runtime(request.param)


def specialized(rt: HostRuntime, code: dict[str, str] | str, **kw) -> HostRuntime:
    source = code[rt.lang] if isinstance(code, dict) else code
    r = rt.specialize(kw.pop("filename", FILENAME[rt.lang]), source, **kw)
    assert r.status == 200, (r, rt.output())
    return rt


# ---------------------------------------------------------------- lifecycle


def test_healthz_before_and_after_specialization(rt):
    for _ in range(2):
        r = rt.get("/healthz")
        assert (r.status, r.body) == (200, b"ok")
    r = rt.specialize(FILENAME[rt.lang], BINARY_ECHO[rt.lang])
    assert r.status == 200
    doc = r.json()
    assert doc["status"] == "specialized"
    assert isinstance(doc["load_ms"], int | float) and 0 <= doc["load_ms"] < 5000
    assert (rt.get("/healthz").status, rt.get("/healthz").body) == (200, b"ok")
    assert "specialized hello" in rt.output()


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_not_specialized_503(rt, method):
    r = rt.request(method, "/anything?x=1", b"data" if method == "POST" else None)
    assert r.status == 503
    assert r.json()["error"]["code"] == "not_specialized"
    assert r.json()["error"]["message"]


def test_second_specialization_409(rt):
    specialized(rt, BINARY_ECHO)
    r = rt.specialize(FILENAME[rt.lang], THROWS[rt.lang])
    assert r.status == 409
    assert r.json()["error"]["code"] == "already_specialized"
    # The first function is still the one answering.
    assert rt.request("POST", "/", b"still").body == b"still"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        json.dumps({"filename": "hello.x"}).encode(),  # no code
        json.dumps({"filename": "../evil.js", "code": "x"}).encode(),
        json.dumps({"filename": "a.js", "code": "x", "env": {"A": {"b": 1}}}).encode(),
        json.dumps({"filename": "a.js", "code": "x", "entrypoint": 3}).encode(),
    ],
)
def test_malformed_specialization_400(rt, body):
    r = rt.request("POST", "/v2/specialize", body, {"Content-Type": "application/json", **rt.auth_headers()})
    assert r.status == 400, r
    assert r.json()["error"]["code"] == "bad_request"
    assert r.json()["error"]["message"]
    # Still generic: a valid specialization works afterwards.
    specialized(rt, BINARY_ECHO)


# ---------------------------------------------------------------- load errors


@pytest.mark.parametrize("kind", sorted(LOAD_ERRORS))
def test_load_error(rt, kind):
    code, etype, location = LOAD_ERRORS[kind][rt.lang]
    r = rt.specialize(FILENAME[rt.lang], code)
    assert r.status == 500, r
    err = r.json()["error"]
    assert err["code"] == "load_error"
    assert err["location"] == location
    assert err["message"].startswith(etype + ": "), err
    assert LOAD_TEXT[kind] in err["message"]
    if ":" in location:
        assert err["message"].endswith(f"({location})"), err
    # Every later call answers the same error; a new specialization is refused.
    for method in ("GET", "POST"):
        again = rt.request(method, "/x")
        assert again.status == 500
        assert again.json() == {"error": err}
    assert rt.specialize(FILENAME[rt.lang], BINARY_ECHO[rt.lang]).status == 409
    assert rt.get("/healthz").status == 200


def test_load_error_esm_syntax_has_line(start_runtime):
    rt = start_runtime("nodejs")
    r = rt.specialize("hello.mjs", "const a = 1;\n\nexport default (c) => {\n  return (;\n};\n")
    assert r.status == 500
    err = r.json()["error"]
    assert err["message"].startswith("SyntaxError: ")
    assert err["location"] == "hello.mjs:4"


def test_load_error_non_error_thrown(start_runtime):
    rt = start_runtime("nodejs")
    r = rt.specialize("hello.js", "throw {reason: 'nope'};\n")
    err = r.json()["error"]
    assert r.status == 500 and err["code"] == "load_error"
    assert "reason" in err["message"] and err["message"] != "{}"


# ---------------------------------------------------------------- calls


def test_request_fields_and_faasd_headers_stripped(rt):
    specialized(rt, ECHO)
    r = rt.request(
        "PUT",
        "/users/42/items?tag=a&tag=b&q=hello%20world&empty=",
        json.dumps({"name": "ada", "n": [1, 2]}),
        {
            "Content-Type": "application/json",
            "X-Custom-Thing": "Value-1",
            "X-Faasd-Params": json.dumps({"id": "42", "item": "x"}),
            "X-Faasd-Call-Id": "abc",
        },
    )
    assert r.status == 200, r
    assert r.headers["x-echo"] == "yes"
    assert r.headers["content-type"].startswith("application/json")
    doc = r.json()
    assert doc["method"] == "PUT"
    assert doc["path"] == "/users/42/items"
    assert doc["query"] == {"tag": ["a", "b"], "q": "hello world", "empty": ""}
    assert doc["params"] == {"id": "42", "item": "x"}
    assert doc["body"] == {"name": "ada", "n": [1, 2]}
    assert doc["headers"]["x-custom-thing"] == "Value-1"
    assert all(k == k.lower() for k in doc["headers"])
    assert not [k for k in doc["headers"] if k.startswith("x-faasd-")]


def test_text_and_form_bodies_are_strings(rt):
    specialized(rt, ECHO)
    for ctype in ("text/plain; charset=utf-8", "application/x-www-form-urlencoded"):
        r = rt.request("POST", "/", "a=1&b=h\u00e9", {"Content-Type": ctype})
        assert r.json()["body"] == "a=1&b=h\u00e9"
        assert r.json()["params"] == {}


def test_binary_body_round_trip(rt):
    specialized(rt, BINARY_ECHO)
    payload = bytes(range(256)) * 64 + os.urandom(4096) + b"\r\n\r\n\x00"
    r = rt.request("POST", "/bin", payload, {"Content-Type": "application/octet-stream"})
    assert r.status == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-length"] == str(len(payload))
    assert r.body == payload
    # Chunked request bodies arrive whole.
    r = rt.request("POST", "/bin", payload, chunked=True)
    assert r.body == payload


def test_function_error_500(rt):
    specialized(rt, THROWS)
    r = rt.get("/")
    assert r.status == 500
    err = r.json()["error"]
    assert err["code"] == "function_error"
    assert err["message"] == THROWN[rt.lang]
    assert err["location"] == f"{FILENAME[rt.lang]}:2"
    assert "boom 42" in rt.output()  # the stack went to stderr
    assert rt.get("/healthz").status == 200
    assert rt.get("/").status == 500  # the container keeps serving


BAD_HEADER = {
    "nodejs": "module.exports = async () => ({headers: {'X-Bad': 'a\\r\\nb'}, body: 'x'});\n",
    "python": "def main():\n    return 'x', 200, {'X-Bad': 'a\\r\\nb'}\n",
}


def test_invalid_response_header_is_function_error(rt):
    specialized(rt, BAD_HEADER)
    r = rt.get("/")
    assert r.status == 500
    assert r.json()["error"]["code"] == "function_error"
    assert "X-Bad" in r.json()["error"]["message"]
    assert "x-bad" not in r.headers
    assert rt.get("/healthz").body == b"ok"  # same connection, still in sync


def test_env_and_entrypoint(rt, start_runtime):
    specialized(rt, ENV, env={"GREETING": "hola", "WHO": "mundo"})
    r = rt.get("/")
    assert (r.status, r.text) == (200, "hola, mundo")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    other = specialized(start_runtime(rt.lang), ENTRYPOINT, entrypoint="second")
    assert other.get("/").text == "second"


def test_keep_alive_connection_reused(rt):
    specialized(rt, BINARY_ECHO)
    rt.get("/healthz")
    sock = rt.conn.sock
    assert sock is not None
    for i in range(20):
        assert rt.request("POST", f"/{i}", str(i)).text == str(i)
    rt.get("/healthz")
    assert rt.conn.sock is sock


def test_invalid_params_header_400(rt):
    specialized(rt, ECHO)
    r = rt.get("/", headers={"X-Faasd-Params": "{not json"})
    assert r.status == 400 and r.json()["error"]["code"] == "bad_request"


# ---------------------------------------------------------------- Node forms


def test_node_callback_form(start_runtime):
    rt = start_runtime("nodejs")
    code = (
        "module.exports = function (context, callback) {\n"
        "  setTimeout(() => callback(201, 'created ' + context.request.params.id,"
        " {'X-Form': 'callback'}), 1);\n};\n"
    )
    specialized(rt, code)
    r = rt.get("/", headers={"X-Faasd-Params": '{"id": "7"}'})
    assert (r.status, r.text, r.headers["x-form"]) == (201, "created 7", "callback")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


ESM_DEFAULT = "export default async function (context) {\n  return 'esm ' + context.request.method;\n}\n"
ESM_IMPORT = (
    "import os from 'node:os';\nexport default async (context) => 'esm ' + context.request.method + (os ? '' : '!');\n"
)


@pytest.mark.parametrize("filename,code", [("hello.mjs", ESM_DEFAULT), ("hello.js", ESM_IMPORT)])
def test_node_esm(start_runtime, filename, code):
    rt = start_runtime("nodejs")
    specialized(rt, code, filename=filename)
    assert rt.request("PATCH", "/").text == "esm PATCH"


@pytest.mark.parametrize(
    "ret,status,ctype,body",
    [
        ("'plain'", 200, "text/plain; charset=utf-8", b"plain"),
        ("Buffer.from([0, 1, 2])", 200, "application/octet-stream", b"\x00\x01\x02"),
        ("[1, 'two']", 200, "application/json", b'[1,"two"]'),
        ("({a: 1})", 200, "application/json", b'{"a":1}'),
        ("({status: 202})", 202, None, b""),
        ("({body: {x: 1}})", 200, "application/json", b'{"x":1}'),
        (
            "({status: 203, body: 'hi', headers: {'Content-Type': 'text/html'}})",
            203,
            "text/html",
            b"hi",
        ),
        ("undefined", 204, None, b""),
    ],
)
def test_node_return_values(start_runtime, ret, status, ctype, body):
    rt = start_runtime("nodejs")
    specialized(rt, f"module.exports = async () => {ret};\n")
    r = rt.get("/")
    assert (r.status, r.headers.get("content-type"), r.body) == (status, ctype, body)


def test_node_invalid_json_body_400(start_runtime):
    rt = start_runtime("nodejs")
    specialized(rt, ECHO)
    r = rt.request("POST", "/", "{oops", {"Content-Type": "application/json"})
    assert r.status == 400 and r.json()["error"]["code"] == "bad_request"


def test_node_empty_bodies(start_runtime):
    rt = start_runtime("nodejs")
    code = (
        "module.exports = (c) => ({body: {type: Buffer.isBuffer(c.request.body) ? 'buffer'"
        " : typeof c.request.body, value: Buffer.isBuffer(c.request.body) ?"
        " c.request.body.length : c.request.body}});\n"
    )
    specialized(rt, code)
    assert rt.get("/").json() == {"type": "buffer", "value": 0}
    assert rt.get("/", headers={"Content-Type": "text/plain"}).json() == {
        "type": "string",
        "value": "",
    }
    assert rt.get("/", headers={"Content-Type": "application/json"}).json() == {
        "type": "object",
        "value": {},
    }


# ---------------------------------------------------------------- Python forms


@pytest.mark.parametrize(
    "code,status,ctype,body",
    [
        ("def main():\n    return 'hello ' + request.method\n", 200,
         "text/plain; charset=utf-8", b"hello GET"),
        ("def main(context):\n    return {'m': context.request.method}\n", 200,
         "application/json", b'{"m": "GET"}'),
        ("import asyncio\n\nasync def main(context):\n    await asyncio.sleep(0.001)\n"
         "    return ['a', 1]\n", 200, "application/json", b'["a", 1]'),
        ("def main():\n    return 'made', 201\n", 201, "text/plain; charset=utf-8", b"made"),
        ("def main():\n    return b'\\x00\\xff', 202, {'Content-Type': 'image/png', 'X-A': 1}\n",
         202, "image/png", b"\x00\xff"),
        ("def main():\n    return None\n", 204, None, b""),
        ("def main():\n    return b'\\x01'\n", 200, "application/octet-stream", b"\x01"),
        ("def main():\n    return {'a': 1}, 404\n", 404, "application/json", b'{"a": 1}'),
    ],
)  # fmt: skip
def test_python_forms_and_returns(start_runtime, code, status, ctype, body):
    rt = start_runtime("python")
    specialized(rt, code)
    r = rt.get("/")
    assert (r.status, r.headers.get("content-type"), r.body) == (status, ctype, body)


def test_python_bad_return_is_function_error(start_runtime):
    rt = start_runtime("python")
    specialized(rt, "def main():\n    return 'x', 'not-a-status'\n")
    r = rt.get("/")
    assert r.status == 500
    assert r.json()["error"]["message"].startswith("FunctionResultError: invalid status")


def test_python_healthz_while_sync_function_busy(start_runtime, tmp_path: Path):
    rt = start_runtime("python")
    marker = tmp_path / "started"
    code = (
        "import os, time\n\ndef main():\n"
        "    open(os.environ['MARKER'], 'w').close()\n"
        "    end = time.monotonic() + 30\n"
        "    while time.monotonic() < end and not os.path.exists(os.environ['MARKER'] + '.stop'):\n"
        "        pass\n"
        "    return 'done'\n"
    )
    specialized(rt, code, env={"MARKER": str(marker)})
    result: dict[str, object] = {}
    caller = threading.Thread(target=lambda: result.setdefault("r", rt.get("/slow")))
    caller.start()
    deadline = time.monotonic() + 5
    while not marker.exists():
        assert time.monotonic() < deadline, "the slow function never started"
        time.sleep(0.005)
    # The function spins (holding the GIL) until told to stop: every health check
    # must be answered while it still runs, however slow the machine.
    for _ in range(3):
        h = rt.get("/healthz", new_connection=True)
        assert (h.status, h.body) == (200, b"ok")
    assert caller.is_alive(), "health checks must be answered while the function runs"
    Path(str(marker) + ".stop").touch()
    caller.join(40)
    assert result["r"].text == "done"


# ---------------------------------------------------------------- faasd images build


def test_image_build_without_engine_fails_fast_in_one_line():
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
    p = subprocess.run(
        [sys.executable, "-m", "faasd", "images", "build"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 1
    assert "not reachable" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
