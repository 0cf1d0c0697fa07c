"""The function contract (runtimes/README.md) end to end: client -> faasd -> runtime container.

Every behaviour is checked through faasd's own proxy on the real engine, for
both runtimes where it applies. Waits are bounded: socket timeouts for reads
and `wait_for` polling otherwise.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.integration.harness import FaasdProcess, wait_for

LANGS = ("nodejs", "python")
EXT = {"nodejs": "js", "python": "py"}

# ---------------------------------------------------------------- functions

ECHO = {
    "nodejs": """module.exports = async (context) => {
  const r = context.request;
  const body = Buffer.isBuffer(r.body) ? {base64: r.body.toString('base64')} : r.body;
  // Wrapped in {body}: a returned object with a `headers` key would be a response.
  return {body: {method: r.method, path: r.path, query: r.query, headers: r.headers, params: r.params,
                 body, bodyType: Buffer.isBuffer(r.body) ? 'buffer' : typeof r.body,
                 raw: r.rawBody.toString('base64')}};
};
""",
    "python": """import base64


def main(context):
    r = context.request
    if r.headers.get("content-type", "").startswith("application/json"):
        body, body_type = r.json(), "json"
    else:
        body, body_type = r.text, "text"
    return {"method": r.method, "path": r.path, "query": r.query, "headers": r.headers,
            "params": r.params, "body": body, "bodyType": body_type,
            "raw": base64.b64encode(r.body).decode()}
""",
}

BINARY_ECHO = {
    "nodejs": "module.exports = async (context) => context.request.rawBody;\n",
    "python": "def main(context):\n    return context.request.body\n",
}

# One function per language answering by the last path segment.
SHAPES = {
    "nodejs": """module.exports = async (context) => {
  const what = context.request.path.split('/').pop();
  switch (what) {
    case 'dict': return {a: 1, list: [1, 'two']};
    case 'bytes': return Buffer.from([0, 1, 2, 255]);
    case 'text': return 'plain text';
    case 'status': return {status: 201, headers: {'X-Made': 'yes'}, body: 'made'};
    case 'cookies': return {headers: {'Set-Cookie': ['a=1; Path=/', 'b=2']}, body: 'ok'};
    case 'empty': return undefined;
  }
  return {status: 404, body: {unknown: what}};
};
""",
    "python": """def main(context):
    what = context.request.path.rsplit("/", 1)[-1]
    if what == "dict":
        return {"a": 1, "list": [1, "two"]}
    if what == "bytes":
        return bytes([0, 1, 2, 255])
    if what == "text":
        return "plain text"
    if what == "status":
        return "made", 201, {"X-Made": "yes"}
    if what == "cookies":
        return "ok", 200, [("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")]
    if what == "empty":
        return None
    return {"unknown": what}, 404
""",
}
SHAPE_CASES = {
    # what: (status, content type, body)
    "dict": (200, "application/json", {"a": 1, "list": [1, "two"]}),
    "bytes": (200, "application/octet-stream", b"\x00\x01\x02\xff"),
    "text": (200, "text/plain; charset=utf-8", b"plain text"),
    "status": (201, "text/plain; charset=utf-8", b"made"),
    "empty": (204, None, b""),
}

FORMS = {
    "node-callback": (
        "nodejs",
        "module.exports = function (context, callback) {\n"
        "  setTimeout(() => callback(202, 'callback ' + context.request.query.who, {'X-Form': 'callback'}), 5);\n"
        "};\n",
        {},
    ),
    "node-async": (
        "nodejs",
        "module.exports = async (context) => {\n"
        "  await new Promise((resolve) => setTimeout(resolve, 5));\n"
        "  return {status: 202, headers: {'X-Form': 'async'}, body: 'async ' + context.request.query.who};\n"
        "};\n",
        {},
    ),
    "node-esm": (
        "nodejs",
        "import os from 'node:os';\n\n"
        "export default async (context) => ({status: 202, headers: {'X-Form': 'esm'},\n"
        "  body: 'esm ' + context.request.query.who + (os.EOL ? '' : '?')});\n",
        {},
    ),
    "node-esm-mjs": (
        "nodejs",
        "export default function (context) {\n"
        "  return {status: 202, headers: {'X-Form': 'esm-mjs'}, body: 'esm-mjs ' + context.request.query.who};\n"
        "}\n",
        {"filename": "handler.mjs"},
    ),
    "py-main": (
        "python",
        'def main():\n    return "main " + request.args["who"], 202, {"X-Form": "main"}\n',
        {},
    ),
    "py-main-context": (
        "python",
        'def main(context):\n    who = context.request.query["who"]\n'
        '    return "main-context " + who, 202, {"X-Form": "main-context"}\n',
        {},
    ),
    "py-async": (
        "python",
        "import asyncio\n\n\nasync def main(context):\n    await asyncio.sleep(0.005)\n"
        '    return "async " + context.request.query["who"], 202, {"X-Form": "async"}\n',
        {},
    ),
}

# `.../release` lets the waiting stream go on. The function gives up after
# 20 s, longer than the client's read timeout, so a buffering hop fails the test.
STREAMERS = {
    "nodejs": """const { Readable } = require('stream');
let release;
const released = new Promise((resolve) => { release = resolve; });
const giveUp = () => new Promise((resolve) => setTimeout(() => resolve(false), 20000).unref());

module.exports = async (context) => {
  if (context.request.path.endsWith('/release')) { release(); return 'released'; }
  if (context.request.path.endsWith('/readable')) {
    const body = new Readable({ read() {} });
    body.push('chunk-1\\n');
    Promise.race([released.then(() => true), giveUp()]).then((ok) => {
      body.push(ok ? 'chunk-2\\n' : 'timed-out\\n');
      body.push(null);
    });
    return {status: 200, headers: {'content-type': 'text/event-stream'}, body};
  }
  async function* gen() {
    yield 'chunk-1\\n';
    yield (await Promise.race([released.then(() => true), giveUp()])) ? 'chunk-2\\n' : 'timed-out\\n';
  }
  return {status: 200, headers: {'content-type': 'text/event-stream'}, body: gen()};
};
""",
    "python": """import threading

released = threading.Event()


def main(context):
    if context.request.path.endswith("/release"):
        released.set()
        return "released"

    def gen():
        yield "chunk-1\\n"
        yield "chunk-2\\n" if released.wait(20) else "timed-out\\n"

    return gen(), 200, {"Content-Type": "text/event-stream"}
""",
}

THROWS = {
    "nodejs": "module.exports = async () => {\n  throw new TypeError('contract boom ' + 42);\n};\n",
    "python": "def main(context):\n    raise ValueError('contract boom ' + str(42))\n",
}
THROWN = {"nodejs": "TypeError: contract boom 42", "python": "ValueError: contract boom 42"}
# What the stack in the function's log shows, beyond the message.
STACK_MARK = {"nodejs": ":2:9", "python": "Traceback (most recent call last)"}

LOAD_ERROR = {
    "nodejs": ("const a = 1;\nconst b = 2;\nconst c = ;\nmodule.exports = () => c;\n", "SyntaxError", 3),
    "python": ("a = 1\nb = 2\ndef main(:\n    return a\n", "SyntaxError", 3),
}
IMPORT_ERROR = {
    "nodejs": ("const a = 1;\nconst x = require('no-such-module-faasd');\nmodule.exports = () => x;\n", "Error", 2),
    "python": ("import os\nimport no_such_module_faasd\n\n\ndef main():\n    return 1\n", "ModuleNotFoundError", 2),
}

SLOW_PY = """import threading
import time

lock = threading.Lock()
running = 0


def main(context):
    global running
    if context.request.path.endswith("/slow"):
        with lock:
            running += 1
        try:
            time.sleep(2)  # synchronous: blocks this call's thread only
        finally:
            with lock:
                running -= 1
        return "slow done"
    return {"running": running}
"""


# ---------------------------------------------------------------- helpers


def deploy(faasd: FaasdProcess, name: str, env: str, code: str, **fields: Any) -> str:
    """Create a function once per daemon (the daemon is shared by the module)."""
    if faasd.api("GET", f"/v1/functions/{name}").status_code != 200:
        faasd.create_function(name, env, code, **fields)
    return name


def call(faasd: FaasdProcess, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, faasd.url + path, timeout=60, **kwargs)


def raw_call(faasd: FaasdProcess, path: str, timeout: float = 10.0) -> http.client.HTTPResponse:
    """GET through faasd with http.client: every header line kept, the body read as it comes."""
    parts = urlsplit(faasd.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.conn_ref = conn  # type: ignore[attr-defined]  # closed with the response by the caller
    return resp


def read_until(resp: http.client.HTTPResponse, wanted: bytes) -> bytes:
    """Read pieces as they arrive until ``wanted`` is in; each read bounded by the socket timeout."""
    got = b""
    while wanted not in got:
        piece = resp.read1(65536)
        if not piece:
            raise AssertionError(f"the body ended before {wanted!r} arrived (got {got!r})")
        got += piece
    return got


def logs_of(faasd: FaasdProcess, name: str) -> str:
    return faasd.api("GET", f"/v1/functions/{name}/logs").text


# ---------------------------------------------------------------- request


@pytest.mark.parametrize("lang", LANGS)
def test_request_query_headers_params_and_json_body(faasd: FaasdProcess, lang: str) -> None:
    name = deploy(faasd, f"ct-echo-{EXT[lang]}", lang, ECHO[lang])
    faasd.create_route("PUT", f"/{lang}/items/{{id}}", name)
    response = call(
        faasd,
        "PUT",
        f"/{lang}/items/42?tag=a&tag=b&q=hello%20world&empty=",
        data=json.dumps({"name": "ada", "n": [1, 2]}),
        headers={"Content-Type": "application/json", "X-Custom-Thing": "Value-1", "X-Faasd-Params": '{"id": "evil"}'},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["method"] == "PUT"
    assert doc["path"] == f"/{lang}/items/42"  # the full request path, as faasd received it
    assert doc["query"] == {"tag": ["a", "b"], "q": "hello world", "empty": ""}
    assert doc["params"] == {"id": "42"}  # from the route, not from the client's header
    assert doc["body"] == {"name": "ada", "n": [1, 2]}
    assert doc["bodyType"] == ("object" if lang == "nodejs" else "json")
    assert doc["headers"]["x-custom-thing"] == "Value-1"
    assert not [k for k in doc["headers"] if k.startswith("x-faasd-")]


@pytest.mark.parametrize("lang", LANGS)
def test_direct_call_keeps_the_full_path_and_text_body(faasd: FaasdProcess, lang: str) -> None:
    name = deploy(faasd, f"ct-echo-{EXT[lang]}", lang, ECHO[lang])
    response = call(faasd, "POST", f"/function/{name}/deeper/path?x=1", data="h\u00e9llo".encode(),
                    headers={"Content-Type": "text/plain; charset=utf-8"})  # fmt: skip
    doc = response.json()
    assert doc["path"] == f"/function/{name}/deeper/path"
    assert doc["query"] == {"x": "1"}
    assert doc["body"] == "h\u00e9llo"
    assert doc["params"] == {}


@pytest.mark.parametrize("lang", LANGS)
def test_binary_body_round_trip(faasd: FaasdProcess, lang: str) -> None:
    name = deploy(faasd, f"ct-binary-{EXT[lang]}", lang, BINARY_ECHO[lang])
    payload = bytes(range(256)) * 64 + os.urandom(8192) + b"\r\n\r\n\x00"
    response = call(faasd, "POST", f"/function/{name}", data=payload,
                    headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(len(payload))
    assert response.content == payload


def test_node_body_without_type_is_a_buffer(faasd: FaasdProcess) -> None:
    name = deploy(faasd, "ct-echo-js", "nodejs", ECHO["nodejs"])
    doc = call(faasd, "POST", f"/function/{name}", data=b"\x00\xff").json()
    assert doc["bodyType"] == "buffer"
    assert base64.b64decode(doc["body"]["base64"]) == b"\x00\xff"


# ---------------------------------------------------------------- response


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("what", sorted(SHAPE_CASES))
def test_response_shapes(faasd: FaasdProcess, lang: str, what: str) -> None:
    name = deploy(faasd, f"ct-shapes-{EXT[lang]}", lang, SHAPES[lang])
    status, ctype, body = SHAPE_CASES[what]
    response = call(faasd, "GET", f"/function/{name}/{what}")
    assert response.status_code == status, response.text
    assert response.headers.get("content-type") == ctype
    if isinstance(body, dict):
        assert response.json() == body
    else:
        assert response.content == body
    if what == "status":
        assert response.headers["x-made"] == "yes"


@pytest.mark.parametrize("lang", LANGS)
def test_two_set_cookie_headers_arrive_as_two_lines(faasd: FaasdProcess, lang: str) -> None:
    name = deploy(faasd, f"ct-shapes-{EXT[lang]}", lang, SHAPES[lang])
    resp = raw_call(faasd, f"/function/{name}/cookies")
    try:
        assert resp.status == 200
        assert [v for k, v in resp.getheaders() if k.lower() == "set-cookie"] == ["a=1; Path=/", "b=2"]
        assert resp.read() == b"ok"
    finally:
        resp.conn_ref.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("form", sorted(FORMS))
def test_function_forms(faasd: FaasdProcess, form: str) -> None:
    lang, code, fields = FORMS[form]
    name = deploy(faasd, f"ct-form-{form}", lang, code, **fields)
    response = call(faasd, "GET", f"/function/{name}?who=ada")
    label = form.removeprefix("node-").removeprefix("py-")
    assert (response.status_code, response.text) == (202, f"{label} ada"), response.text
    assert response.headers["x-form"] == label


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize(("lang", "variant"), [("nodejs", "gen"), ("nodejs", "readable"), ("python", "gen")])
def test_streamed_response_arrives_chunk_by_chunk_through_faasd(faasd: FaasdProcess, lang: str, variant: str) -> None:
    # One instance, so /release reaches the container that holds the waiting stream.
    name = deploy(faasd, f"ct-stream-{EXT[lang]}", lang, STREAMERS[lang], max_instances=1)
    resp = raw_call(faasd, f"/function/{name}/{variant}")
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "text/event-stream"
        assert resp.getheader("Content-Length") is None
        assert resp.getheader("Transfer-Encoding") == "chunked"
        # Chunk 2 is produced only after /release, which is sent after chunk 1 arrived.
        assert read_until(resp, b"chunk-1\n") == b"chunk-1\n"
        released = call(faasd, "GET", f"/function/{name}/release")
        assert (released.status_code, released.text) == (200, "released")
        assert resp.read() == b"chunk-2\n"
    finally:
        resp.conn_ref.close()  # type: ignore[attr-defined]


BREAKS_MID_STREAM = {
    "nodejs": """async function* gen() {
  yield 'chunk-1\\n';
  await new Promise((resolve) => setTimeout(resolve, 50));
  throw new RangeError('stream broke at ' + 2);
}
module.exports = async (context) =>
  context.request.path.endsWith('/ok') ? 'fine' : {headers: {'content-type': 'text/plain'}, body: gen()};
""",
    "python": """import time


def gen():
    yield "chunk-1\\n"
    time.sleep(0.05)
    raise RuntimeError("stream broke at " + str(2))


def main(context):
    return "fine" if context.request.path.endswith("/ok") else gen()
""",
}


@pytest.mark.parametrize("lang", LANGS)
def test_error_mid_stream_reaches_the_client_as_a_cut_body(faasd: FaasdProcess, lang: str) -> None:
    name = deploy(faasd, f"ct-breaks-{EXT[lang]}", lang, BREAKS_MID_STREAM[lang])
    resp = raw_call(faasd, f"/function/{name}")
    try:
        assert resp.status == 200
        assert read_until(resp, b"chunk-1\n") == b"chunk-1\n"
        # Not a complete body: faasd passes the cut on instead of ending the chunked body.
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            resp.read()
    finally:
        resp.conn_ref.close()  # type: ignore[attr-defined]
    wait_for(lambda: "stream broke at 2" in logs_of(faasd, name), "the mid-stream error in the function's log")
    again = call(faasd, "GET", f"/function/{name}/ok")  # the instance still serves
    assert (again.status_code, again.text) == (200, "fine")


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("lang", LANGS)
def test_thrown_error_is_a_500_with_the_message_and_the_stack_in_the_logs(faasd: FaasdProcess, lang: str) -> None:
    name = deploy(faasd, f"ct-throws-{EXT[lang]}", lang, THROWS[lang])
    response = call(faasd, "GET", f"/function/{name}")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/json")
    err = response.json()["error"]
    assert err["code"] == "function_error"
    assert err["message"] == THROWN[lang]
    assert err["location"] == f"{name}.{EXT[lang]}:2"

    def stack_logged() -> bool:
        text = logs_of(faasd, name)
        return "contract boom 42" in text and STACK_MARK[lang] in text and f"{name}.{EXT[lang]}" in text

    wait_for(stack_logged, "the stack in the function's log")
    stderr_lines = [line for line in logs_of(faasd, name).splitlines() if "contract boom 42" in line]
    assert all(line.split(" ", 3)[2] == "stderr" for line in stderr_lines), stderr_lines


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("kind", ["syntax", "import"])
def test_load_error_names_the_error_and_its_location_on_the_call(faasd: FaasdProcess, lang: str, kind: str) -> None:
    code, etype, line = (LOAD_ERROR if kind == "syntax" else IMPORT_ERROR)[lang]
    name = deploy(faasd, f"ct-broken-{kind}-{EXT[lang]}", lang, code)
    for _ in range(2):  # the same readable answer on every call
        response = call(faasd, "GET", f"/function/{name}")
        assert response.status_code == 500, response.text
        err = response.json()["error"]
        assert err["code"] == "load_error"
        assert err["message"].startswith(etype), err
        assert err["location"] == f"{name}.{EXT[lang]}:{line}"
        assert err["message"].endswith(f"({name}.{EXT[lang]}:{line})")


# ---------------------------------------------------------------- concurrency


def test_slow_sync_python_call_does_not_block_a_second_call(faasd: FaasdProcess) -> None:
    name = deploy(faasd, "ct-slow-py", "python", SLOW_PY, max_instances=1)
    assert call(faasd, "GET", f"/function/{name}/fast").json() == {"running": 0}  # warm: specialized
    result: dict[str, Any] = {}

    def slow() -> None:
        result["response"] = call(faasd, "GET", f"/function/{name}/slow")

    caller = threading.Thread(target=slow, daemon=True)
    caller.start()
    timings: list[float] = []

    def answered_during_slow_call() -> bool:
        t0 = time.monotonic()
        doc = call(faasd, "GET", f"/function/{name}/fast").json()
        timings.append(time.monotonic() - t0)
        return doc == {"running": 1}

    # A fast call answers while the 2 s synchronous call runs in the same instance.
    wait_for(answered_during_slow_call, "a fast answer while the slow call runs", timeout=10)
    assert caller.is_alive(), "the fast call must have been answered while the slow one ran"
    assert timings[-1] < 1.0, timings
    caller.join(15)
    assert not caller.is_alive()
    assert (result["response"].status_code, result["response"].text) == (200, "slow done")
