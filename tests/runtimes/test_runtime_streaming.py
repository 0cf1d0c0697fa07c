"""Streamed responses and repeated response headers, on the runtime servers as host processes.

A streaming function sends chunk 1, then waits for a second request
(`/release`) before it produces chunk 2. The test reads chunk 1 before it
sends `/release`, so chunk 1 provably left the runtime before chunk 2 existed.
Every wait is bounded: socket timeouts for reads, bounded polling otherwise.
"""

from __future__ import annotations

import http.client

import pytest

from .support import LANGS, HostRuntime, read_until, wait_until

FILENAME = {"nodejs": "hello.js", "python": "hello.py"}

# `/release` lets the waiting stream go on; the function gives up after 15 s,
# longer than the client's 5 s read timeout, so a buffering runtime fails.
NODE_RELEASE = """
let release;
const released = new Promise((resolve) => { release = resolve; });
const giveUp = () => new Promise((resolve) => setTimeout(() => resolve(false), 15000).unref());
const waitRelease = () => Promise.race([released.then(() => true), giveUp()]);
"""

STREAMERS = {
    "node-async-generator": (
        "nodejs",
        NODE_RELEASE
        + """
module.exports = async (context) => {
  if (context.request.path === '/release') { release(); return 'released'; }
  async function* gen() {
    yield 'chunk-1\\n';
    yield (await waitRelease()) ? 'chunk-2\\n' : 'timed-out\\n';
  }
  return {status: 201, headers: {'content-type': 'text/event-stream', 'x-kind': 'gen'}, body: gen()};
};
""",
    ),
    "node-readable": (
        "nodejs",
        NODE_RELEASE
        + """
const { Readable } = require('stream');
module.exports = async (context) => {
  if (context.request.path === '/release') { release(); return 'released'; }
  const body = new Readable({ read() {} });
  body.push(Buffer.from('chunk-1\\n'));
  waitRelease().then((ok) => { body.push(ok ? 'chunk-2\\n' : 'timed-out\\n'); body.push(null); });
  return {status: 201, headers: {'content-type': 'text/event-stream', 'x-kind': 'gen'}, body};
};
""",
    ),
    "node-callback-readable": (
        "nodejs",
        NODE_RELEASE
        + """
const { PassThrough } = require('stream');
module.exports = function (context, callback) {
  if (context.request.path === '/release') { release(); return callback(200, 'released'); }
  const body = new PassThrough();
  body.write('chunk-1\\n');
  waitRelease().then((ok) => body.end(ok ? 'chunk-2\\n' : 'timed-out\\n'));
  callback(201, body, {'Content-Type': 'text/event-stream', 'X-Kind': 'gen'});
};
""",
    ),
    "python-generator": (
        "python",
        """
import threading

released = threading.Event()


def main(context):
    if context.request.path == "/release":
        released.set()
        return "released"

    def gen():
        yield "chunk-1\\n"
        yield "chunk-2\\n" if released.wait(15) else "timed-out\\n"

    return gen(), 201, {"Content-Type": "text/event-stream", "X-Kind": "gen"}
""",
    ),
    "python-async-generator": (
        "python",
        """
import asyncio
import threading

released = threading.Event()


async def main(context):
    if context.request.path == "/release":
        released.set()
        return "released"

    async def gen():
        yield b"chunk-1\\n"
        yield b"chunk-2\\n" if await asyncio.to_thread(released.wait, 15) else b"timed-out\\n"

    return gen(), 201, [("Content-Type", "text/event-stream"), ("X-Kind", "gen")]
""",
    ),
}


def specialized(rt: HostRuntime, code: str, **kw) -> HostRuntime:
    r = rt.specialize(FILENAME[rt.lang], code, **kw)
    assert r.status == 200, (r, rt.output())
    return rt


@pytest.mark.parametrize("case", sorted(STREAMERS))
def test_stream_chunks_arrive_as_they_are_produced(start_runtime, case):
    lang, code = STREAMERS[case]
    rt = specialized(start_runtime(lang), code)
    conn, resp = rt.open_stream("/events")
    try:
        assert resp.status == 201
        assert resp.getheader("Transfer-Encoding") == "chunked"
        assert resp.getheader("Content-Length") is None
        assert resp.getheader("Content-Type") == "text/event-stream"
        assert resp.getheader("X-Kind") == "gen"
        # Chunk 2 does not exist yet: it is produced only after /release.
        assert read_until(resp, b"chunk-1\n") == b"chunk-1\n"
        released = rt.get("/release", new_connection=True)
        assert (released.status, released.text) == (200, "released")
        assert resp.read() == b"chunk-2\n"
    finally:
        conn.close()
    # The connection that carried the stream and the runtime are both fine.
    assert rt.get("/healthz").body == b"ok"


MID_STREAM_ERROR = {
    "nodejs": """
async function* gen() {
  yield 'chunk-1\\n';
  await new Promise((resolve) => setTimeout(resolve, 50));
  throw new RangeError('stream broke at ' + 2);
}
module.exports = async () => ({headers: {'content-type': 'text/plain'}, body: gen()});
""",
    "python": """
import time


def gen():
    yield "chunk-1\\n"
    time.sleep(0.05)
    raise RuntimeError("stream broke at " + str(2))


def main():
    return gen(), 200, {"Content-Type": "text/plain"}
""",
}
MID_STREAM_LINE = {"nodejs": "hello.js:5", "python": 'hello.py", line 8'}


@pytest.mark.parametrize("lang", LANGS)
def test_error_mid_stream_cuts_the_connection_and_logs_the_stack(start_runtime, lang):
    rt = specialized(start_runtime(lang), MID_STREAM_ERROR[lang])
    conn, resp = rt.open_stream("/")
    try:
        assert resp.status == 200
        assert read_until(resp, b"chunk-1\n") == b"chunk-1\n"
        # No terminating chunk: the client must see a truncated body, not a complete one.
        with pytest.raises((http.client.IncompleteRead, ConnectionError)):
            resp.read()
    finally:
        conn.close()
    wait_until(lambda: "stream broke at 2" in rt.output(), "the error in the runtime's output")
    out = rt.output()
    assert MID_STREAM_LINE[lang] in out, out
    assert rt.get("/healthz", new_connection=True).body == b"ok"


FAILS_BEFORE_FIRST_CHUNK = {
    "nodejs": (
        "async function* gen() {\n  throw new TypeError('no data');\n}\n"
        "module.exports = async () => ({status: 200, headers: {'x-a': '1'}, body: gen()});\n"
    ),
    "python": "def gen():\n    raise TypeError('no data')\n    yield ''\n\n\ndef main():\n    return gen()\n",
}


@pytest.mark.parametrize("lang", LANGS)
def test_stream_that_fails_before_its_first_chunk_is_a_500(start_runtime, lang):
    rt = specialized(start_runtime(lang), FAILS_BEFORE_FIRST_CHUNK[lang])
    r = rt.get("/")
    assert r.status == 500
    err = r.json()["error"]
    assert err["code"] == "function_error"
    assert err["message"] == "TypeError: no data"
    assert err["location"] == f"{FILENAME[lang]}:2"
    assert "x-a" not in r.headers


SHAPES = {
    # (lang, code, expected content type, expected body)
    "node-sync-generator": (
        "nodejs",
        "module.exports = () => ({body: (function* () { yield 'a'; yield ''; yield 'b'; })()});\n",
        "text/plain; charset=utf-8",
        b"ab",
    ),
    "node-readable-from-buffers": (
        "nodejs",
        "const { Readable } = require('stream');\n"
        "module.exports = async () => Readable.from([Buffer.from([0, 1]), Buffer.from([255])]);\n",
        "application/octet-stream",
        b"\x00\x01\xff",
    ),
    "node-legacy-stream-with-pipe": (
        "nodejs",
        "const { Stream } = require('stream');\n"
        "module.exports = async () => {\n"
        "  const s = new Stream();\n"
        "  setImmediate(() => { s.emit('data', 'x'); s.emit('data', 'y'); s.emit('end'); });\n"
        "  return {body: s, headers: {'content-type': 'text/csv'}};\n"
        "};\n",
        "text/csv",
        b"xy",
    ),
    "node-async-iterable": (
        "nodejs",
        "module.exports = async () => ({body: {async *[Symbol.asyncIterator]() { yield 'p'; yield 'q'; }}});\n",
        "text/plain; charset=utf-8",
        b"pq",
    ),
    "python-generator-function": (
        "python",
        "def main(context):\n    yield 'hello '\n    yield ''\n    yield context.request.path\n",
        "text/plain; charset=utf-8",
        b"hello /shape",
    ),
    "python-iterator-of-bytes": (
        "python",
        "def main():\n    return iter([b'\\x00', bytearray(b'\\x01'), memoryview(b'\\xff')])\n",
        "application/octet-stream",
        b"\x00\x01\xff",
    ),
    "python-async-generator-function-global-request": (
        "python",
        "import asyncio\n\n\nasync def gen():\n    await asyncio.sleep(0)\n"
        "    yield request.method\n    yield '!'\n\n\ndef main():\n    return gen()\n",
        "text/plain; charset=utf-8",
        b"GET!",
    ),
    "python-empty-generator": (
        "python",
        "def main():\n    return iter([]), 202\n",
        "application/octet-stream",
        b"",
    ),
}


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_stream_shapes(start_runtime, case):
    lang, code, ctype, body = SHAPES[case]
    rt = specialized(start_runtime(lang), code)
    r = rt.get("/shape")
    assert r.status in (200, 202), r
    assert r.headers["content-type"] == ctype
    assert r.body == body
    if body:
        assert r.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.headers
    # A HEAD gets the headers and no body.
    h = rt.request("HEAD", "/shape")
    assert h.status == r.status and h.body == b""
    assert rt.get("/healthz").body == b"ok"  # the keep-alive connection is in sync


BAD_CHUNK = {
    "nodejs": "module.exports = async () => ({body: (async function* () { yield {not: 'bytes'}; })()});\n",
    "python": "def main():\n    yield {'not': 'bytes'}\n",
}


@pytest.mark.parametrize("lang", LANGS)
def test_stream_chunk_of_wrong_type_is_function_error(start_runtime, lang):
    rt = specialized(start_runtime(lang), BAD_CHUNK[lang])
    r = rt.get("/")
    assert r.status == 500
    assert r.json()["error"]["message"].startswith("FunctionResultError: a streamed body must")


TICKER = {
    "nodejs": """
module.exports = async () => {
  async function* ticks() {
    try {
      for (let i = 0; i < 200; i++) {
        yield `tick ${i}\\n`;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      console.log('ticker stopped');
    }
  }
  return ticks();
};
""",
    "python": """
import time


def main():
    try:
        for i in range(200):
            yield f"tick {i}\\n"
            time.sleep(0.025)
    finally:
        print("ticker stopped")
""",
}


@pytest.mark.parametrize("lang", LANGS)
def test_client_leaving_stops_the_stream(start_runtime, lang):
    rt = specialized(start_runtime(lang), TICKER[lang])
    conn, resp = rt.open_stream("/")
    read_until(resp, b"tick 1\n")
    conn.close()
    resp.close()
    wait_until(lambda: "ticker stopped" in rt.output(), "the generator's finally block after the client left")
    assert "tick 199" not in rt.output()
    assert rt.get("/healthz", new_connection=True).body == b"ok"


TWO_COOKIES = {
    "node-return": (
        "nodejs",
        "module.exports = async () => ({headers: {'Set-Cookie': ['a=1; Path=/', 'b=2'], 'X-One': 1}, body: 'ok'});\n",
    ),
    "node-callback": (
        "nodejs",
        "module.exports = function (context, callback) {\n"
        "  callback(200, 'ok', {'set-cookie': ['a=1; Path=/', 'b=2'], 'x-one': '1'});\n};\n",
    ),
    "python-dict-list": (
        "python",
        "def main():\n    return 'ok', 200, {'Set-Cookie': ['a=1; Path=/', 'b=2'], 'X-One': 1}\n",
    ),
    "python-pairs": (
        "python",
        "def main():\n    return 'ok', 200, [('Set-Cookie', 'a=1; Path=/'), ('Set-Cookie', 'b=2'), ('X-One', '1')]\n",
    ),
    "python-stream-pairs": (
        "python",
        "def main():\n    return iter(['o', 'k']), 200, [('Set-Cookie', 'a=1; Path=/'), ('Set-Cookie', 'b=2'),"
        " ('X-One', '1')]\n",
    ),
}


@pytest.mark.parametrize("case", sorted(TWO_COOKIES))
def test_repeated_response_header_is_two_lines(start_runtime, case):
    lang, code = TWO_COOKIES[case]
    rt = specialized(start_runtime(lang), code)
    r = rt.get("/")
    assert (r.status, r.body) == (200, b"ok")
    assert r.all("set-cookie") == ["a=1; Path=/", "b=2"]
    assert r.all("x-one") == ["1"]
