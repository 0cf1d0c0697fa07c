"""The specialization token, response headers a runtime cannot send, and
non-ASCII source: the runtime servers as host processes (runtimes/README.md).
"""

from __future__ import annotations

import json
import socket

import pytest

from .support import LANGS, TOKEN_ENV, HostRuntime, wait_until

FILENAME = {"nodejs": "hello.js", "python": "hello.py"}
HELLO = {
    "nodejs": "module.exports = async (context) => 'hello ' + context.request.path;\n",
    "python": "def main(context):\n    return 'hello ' + context.request.path\n",
}


@pytest.fixture(params=LANGS)
def rt(request, start_runtime) -> HostRuntime:
    return start_runtime(request.param)


def specialized(rt: HostRuntime, code: str, filename: str | None = None) -> HostRuntime:
    r = rt.specialize(filename or FILENAME[rt.lang], code)
    assert r.status == 200, (r, rt.output())
    return rt


def assert_unauthorized(r) -> None:
    assert r.status == 401, r
    err = r.json()["error"]
    assert err["code"] == "unauthorized"
    assert err["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/json"


# ---------------------------------------------------------------- the token


def test_specialize_without_token_is_401_and_stays_generic(rt):
    r = rt.specialize(FILENAME[rt.lang], HELLO[rt.lang], token=None)
    assert_unauthorized(r)
    assert "Authorization: Bearer" in r.json()["error"]["message"]
    r = rt.get("/x")  # same keep-alive connection: the body was drained
    assert (r.status, r.json()["error"]["code"]) == (503, "not_specialized")
    # A 401 is not an attempt: the right token still specializes.
    assert rt.specialize(FILENAME[rt.lang], HELLO[rt.lang]).status == 200
    assert rt.get("/x").text == "hello /x"
    assert "specialized hello" in rt.output()


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong",
        "Bearer {token}x",
        "Bearer {short}",
        "Bearer ",
        "Basic {token}",
        "{token}",
        "Bearer {token} extra",
    ],
)
def test_specialize_with_wrong_token_is_401(rt, authorization):
    value = authorization.format(token=rt.token, short=rt.token[:-1])
    r = rt.request(
        "POST",
        "/v2/specialize",
        json.dumps({"filename": FILENAME[rt.lang], "code": HELLO[rt.lang]}),
        {"Content-Type": "application/json", "Authorization": value},
    )
    assert_unauthorized(r)
    assert r.json()["error"]["message"] == "the specialization token is wrong"
    assert rt.get("/").status == 503
    assert rt.get("/healthz").body == b"ok"


def test_specialize_with_right_token(rt):
    # The scheme is case-insensitive (RFC 9110).
    r = rt.request(
        "POST",
        "/v2/specialize",
        json.dumps({"filename": FILENAME[rt.lang], "code": HELLO[rt.lang]}),
        {"Content-Type": "application/json", "Authorization": f"bearer {rt.token}"},
    )
    assert r.status == 200, r
    assert r.json()["status"] == "specialized"
    assert rt.get("/ok").text == "hello /ok"


def test_token_is_checked_before_the_state(rt):
    specialized(rt, HELLO[rt.lang])
    assert_unauthorized(rt.specialize(FILENAME[rt.lang], HELLO[rt.lang], token=None))
    assert_unauthorized(rt.specialize(FILENAME[rt.lang], HELLO[rt.lang], token="wrong"))
    assert rt.specialize(FILENAME[rt.lang], HELLO[rt.lang]).status == 409
    assert rt.get("/still").text == "hello /still"


def test_token_is_checked_before_the_body_is_read(rt):
    # Not parsed: a body that is not JSON is a 401 without the token, not a 400.
    assert_unauthorized(rt.request("POST", "/v2/specialize", b"not json", {"Authorization": "Bearer x"}))
    # Not read: a body larger than any specialization, announced but never sent,
    # is answered at once, and the connection is closed.
    with socket.create_connection((rt.host, rt.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v2/specialize HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % (8 * 1024 * 1024 + 1)
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 "), answer
    assert b"www-authenticate: bearer" in head.lower()
    assert json.loads(body)["error"]["code"] == "unauthorized"
    assert rt.specialize(FILENAME[rt.lang], HELLO[rt.lang]).status == 200


def test_without_token_specialization_is_open(start_runtime, lang_param):
    rt = start_runtime(lang_param, token=None)
    assert rt.token is None
    wait_until(lambda: "specialization needs no token" in rt.output(), "the listening line")
    r = rt.specialize(FILENAME[rt.lang], HELLO[rt.lang])  # no Authorization header
    assert r.status == 200, r
    assert rt.get("/open").text == "hello /open"


@pytest.fixture(params=LANGS)
def lang_param(request) -> str:
    return request.param


ENVIRON = {
    "nodejs": """
const { execFileSync } = require('child_process');
module.exports = () => {
  console.log('env: ' + JSON.stringify(process.env));
  const child = execFileSync(process.execPath, ['-e', 'process.stdout.write(JSON.stringify(process.env))']);
  return {env: process.env, child: JSON.parse(child)};
};
""",
    "python": """
import json, os, subprocess, sys

def main():
    print("env:", dict(os.environ))
    child = subprocess.run([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                           capture_output=True, check=True, text=True).stdout
    return {"env": dict(os.environ), "child": json.loads(child)}
""",
}


def test_function_never_sees_the_token(rt):
    specialized(rt, ENVIRON[rt.lang])
    r = rt.get("/")
    assert r.status == 200, r
    doc = r.json()
    assert doc["env"]["FAASD_CODE_DIR"]  # it is the whole environment
    for env in (doc["env"], doc["child"]):
        assert TOKEN_ENV not in env
        assert rt.token not in json.dumps(env)
    assert "env: " in rt.output()
    assert rt.token not in rt.output()


# ---------------------------------------------------------------- response headers

# Every path counts as a call; /count answers how many calls came before it and
# how many streamed bodies were started. {value} is the header value to send.
BAD_HEADER_PY = """
import itertools

calls = itertools.count()
streams = []
VALUE = {value}


def main():
    n = next(calls)
    if request.path == "/count":
        return {{"calls": n, "streams": len(streams)}}
    if request.path == "/sync-gen":
        def gen():
            streams.append(1)
            yield "x"
        return gen(), 200, {{"X-Name": VALUE}}
    if request.path == "/async-gen":
        async def agen():
            streams.append(1)
            yield "x"
        return agen(), 200, {{"X-Name": VALUE}}
    if request.path == "/pairs":
        return "x", 200, [("X-Ok", "1"), ("X-Name", VALUE)]
    return "x", 200, {{"X-Name": VALUE}}
"""
PATHS_PY = ["/plain", "/pairs", "/sync-gen", "/async-gen"]

BAD_HEADER_JS = """
const {{ Readable }} = require('stream');
let calls = 0;
let streams = 0;
const VALUE = {value};
async function* agen() {{ streams++; yield 'x'; }}
function* gen() {{ streams++; yield 'x'; }}
const readable = () => new Readable({{ read() {{ streams++; this.push('x'); this.push(null); }} }});
const bodies = {{'/async-gen': agen, '/sync-gen': gen, '/readable': readable}};
module.exports = {form}
"""
RETURN_FORM_JS = """async (context) => {
  const n = calls++;
  const p = context.request.path;
  if (p === '/count') return {calls: n, streams};
  const body = bodies[p] ? bodies[p]() : 'x';
  return {headers: {'X-Ok': '1', 'X-Name': VALUE}, body};
};
"""
CALLBACK_FORM_JS = """function (context, callback) {
  const n = calls++;
  const p = context.request.path;
  if (p === '/count') return callback(200, {calls: n, streams});
  const body = bodies[p] ? bodies[p]() : 'x';
  setTimeout(() => callback(200, body, {'X-Name': VALUE}), 1);
};
"""
PATHS_JS = ["/plain", "/async-gen", "/sync-gen", "/readable"]

BAD_VALUES = {
    "newline": ("a\nb", "a LF"),
    "crlf-injection": ("a\r\nX-Injected: 1", "a CR"),
    "non-latin-1": ("Zo\u00eb \u2603", "U+2603"),
    "nul": ("a\0b", "a NUL"),
}


def check_bad_header_calls(rt: HostRuntime, paths: list[str], why: str) -> None:
    for path in paths:
        r = rt.get(path)
        assert r.status == 500, (path, r)
        err = r.json()["error"]
        assert err["code"] == "function_error"
        assert err["message"].startswith(
            "FunctionResultError: header 'X-Name' has a value that cannot be sent in HTTP/1.1 ("
        ), err
        assert why in err["message"], err
        assert "x-name" not in r.headers and "x-injected" not in r.headers
        assert rt.get("/healthz").body == b"ok"  # same connection, still in sync
    # The function ran once per call (no second invocation) and no stream was read.
    assert rt.get("/count").json() == {"calls": len(paths), "streams": 0}
    assert "function error" in rt.output()


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_python_unsendable_header_value_is_function_error(start_runtime, case):
    value, why = BAD_VALUES[case]
    rt = specialized(start_runtime("python"), BAD_HEADER_PY.format(value=repr(value)))
    check_bad_header_calls(rt, PATHS_PY, why)


@pytest.mark.parametrize("form", ["return", "callback"])
@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_node_unsendable_header_value_is_function_error(start_runtime, case, form):
    value, why = BAD_VALUES[case]
    code = BAD_HEADER_JS.format(value=json.dumps(value), form=RETURN_FORM_JS if form == "return" else CALLBACK_FORM_JS)
    rt = specialized(start_runtime("nodejs"), code)
    check_bad_header_calls(rt, PATHS_JS, why)


BAD_NAME = {
    "nodejs": "module.exports = () => ({headers: {'X Bad': '1'}, body: 'x'});\n",
    "python": "def main():\n    return 'x', 200, {'X Bad': '1'}\n",
}


def test_unsendable_header_name_is_function_error(rt):
    specialized(rt, BAD_NAME[rt.lang])
    r = rt.get("/")
    assert r.status == 500
    err = r.json()["error"]
    assert err["code"] == "function_error"
    assert err["message"].startswith("FunctionResultError: header name 'X Bad' cannot be sent in HTTP/1.1"), err


LATIN1 = {
    "nodejs": "module.exports = () => ({headers: {'X-Name': 'Zo\u00eb'}, body: 'ok'});\n",
    "python": "def main():\n    return 'ok', 200, {'X-Name': 'Zo\u00eb'}\n",
}


def test_latin1_header_value_is_sent(rt):
    specialized(rt, LATIN1[rt.lang])
    r = rt.get("/")
    assert r.status == 200, r
    assert r.headers["x-name"] == "Zo\u00eb"  # http.client decodes header bytes as latin-1


# ---------------------------------------------------------------- non-ASCII source

NON_ASCII = {
    "nodejs": (
        "// caf\u00e9 \u2603: a comment that is not ASCII\n"
        "const word = 'caf\u00e9';\n"
        "module.exports = (context) => `${word} \u2603 ${context.request.query.q}`;\n"
    ),
    "python": (
        "# caf\u00e9 \u2603: a comment that is not ASCII\n"
        "WORD = 'caf\u00e9'\n\n"
        "def main(context):\n"
        "    return f\"{WORD} \u2603 {context.request.query['q']}\"\n"
    ),
}


def test_non_ascii_source(rt):
    # support.specialize sends UTF-8 JSON without ASCII escapes, as faasd does.
    specialized(rt, NON_ASCII[rt.lang])
    r = rt.get("/?q=%C3%A9")
    assert r.status == 200, r
    assert r.text == "caf\u00e9 \u2603 \u00e9"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == str(len(r.text.encode("utf-8")))


def test_specialize_body_that_is_not_utf8_is_400(rt):
    body = b'{"filename": "' + FILENAME[rt.lang].encode() + b'", "code": "\xff\xfe"}'
    r = rt.request("POST", "/v2/specialize", body, {"Content-Type": "application/json", **rt.auth_headers()})
    assert r.status == 400, r
    assert r.json()["error"] == {"code": "bad_request", "message": "the body is not valid UTF-8"}
    specialized(rt, HELLO[rt.lang])  # still generic
