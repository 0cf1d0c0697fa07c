"""The request id: ``X-Request-Id`` as ``context.request_id``, and ``[<id>] `` on every line a call writes.

Python (a sync and an async function) and Node.js run as host processes
(conftest's start_runtime), Ruby in its image (conftest's start_container:
needs a Docker engine and faasd/runtime-ruby:latest). The calls that must run
side by side wait for each other through flags inside the function (bounded
waits), never through sleeps. See runtimes/README.md, "The request id and the
function's log lines".
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from .support import Response, RuntimeClient, wait_until

FILENAME = {"python": "rid.py", "python-async": "rid.py", "nodejs": "rid.js", "ruby": "rid.rb"}

# Every function: prints at load; /ctx answers what it was given; /print,
# /multi, /partial write; /a and /b run side by side, in turns set by flags:
#   A: "A one\nA partial"  -> a1 ... b1 -> " ended\nA two\n" -> a2
#   B: a1 -> "B one\nB partial" -> b1 ... a2 -> " ended\nB two\n"
# so each writes while the other holds a partial line. /late leaves work that
# writes once /go is called (after /late has ended); /boom fails.
CODE = {
    "python": """
import logging
import sys
import threading

logging.basicConfig(level=logging.INFO, format="%(message)s")
print("load stdout")
print("load stderr", file=sys.stderr)

FLAGS = {name: threading.Event() for name in ("a1", "b1", "a2", "go")}


def wait(name):
    if not FLAGS[name].wait(10):
        raise TimeoutError(f"no {name} within 10 s")


def late():
    wait("go")
    print("late line")


def main(context):
    r = context.request
    p = r.path
    if p == "/ctx":
        return {"request_id": context.request_id, "context": r.context, "header": r.headers.get("x-request-id")}
    if p == "/print":
        print("print line")
        print("stderr line", file=sys.stderr)
        logging.info("logging line")
    elif p == "/multi":
        sys.stdout.write("multi 1\\nmulti 2\\n\\nmulti 4\\n")
        sys.stderr.write("err 1\\nerr 2\\n")
    elif p == "/partial":
        sys.stdout.write("held ")
        sys.stdout.write("until the end")
    elif p == "/a":
        sys.stdout.write("A one\\nA partial")
        FLAGS["a1"].set()
        wait("b1")
        sys.stdout.write(" ended\\nA two\\n")
        FLAGS["a2"].set()
    elif p == "/b":
        wait("a1")
        sys.stdout.write("B one\\nB partial")
        FLAGS["b1"].set()
        wait("a2")
        sys.stdout.write(" ended\\nB two\\n")
    elif p == "/late":
        sys.stdout.write("late partial")  # written out when the call ends
        threading.Thread(target=late, daemon=True).start()
    elif p == "/go":
        FLAGS["go"].set()
    elif p == "/boom":
        raise ValueError("boom")
    return "ok"
""",
    "python-async": """
import asyncio
import logging
import sys

logging.basicConfig(level=logging.INFO, format="%(message)s")
print("load stdout")
print("load stderr", file=sys.stderr)

FLAGS = {name: asyncio.Event() for name in ("a1", "b1", "a2", "go")}
TASKS = set()


async def wait(name):
    await asyncio.wait_for(FLAGS[name].wait(), 10)


async def late():
    await wait("go")
    print("late line")


async def main(context):
    r = context.request
    p = r.path
    if p == "/ctx":
        return {"request_id": context.request_id, "context": r.context, "header": r.headers.get("x-request-id")}
    if p == "/print":
        print("print line")
        print("stderr line", file=sys.stderr)
        logging.info("logging line")
    elif p == "/multi":
        sys.stdout.write("multi 1\\nmulti 2\\n\\nmulti 4\\n")
        sys.stderr.write("err 1\\nerr 2\\n")
    elif p == "/partial":
        sys.stdout.write("held ")
        await asyncio.sleep(0)
        sys.stdout.write("until the end")
    elif p == "/a":
        sys.stdout.write("A one\\nA partial")
        FLAGS["a1"].set()
        await wait("b1")
        sys.stdout.write(" ended\\nA two\\n")
        FLAGS["a2"].set()
    elif p == "/b":
        await wait("a1")
        sys.stdout.write("B one\\nB partial")
        FLAGS["b1"].set()
        await wait("a2")
        sys.stdout.write(" ended\\nB two\\n")
    elif p == "/late":
        sys.stdout.write("late partial")  # written out when the call ends
        task = asyncio.create_task(late())  # carries the call's context, after its end
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)
    elif p == "/go":
        FLAGS["go"].set()
    elif p == "/boom":
        raise ValueError("boom")
    return "ok"
""",
    "nodejs": """
console.log('load stdout');
console.error('load stderr');

const flags = {};
function flag(name) {
  if (!flags[name]) {
    let resolve;
    const promise = new Promise((r) => (resolve = r));
    flags[name] = { promise, resolve };
  }
  return flags[name];
}
const set = (name) => flag(name).resolve();
function wait(name) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${name} within 10 s`)), 10000);
  });
  return Promise.race([flag(name).promise, timeout]).finally(() => clearTimeout(timer));
}

module.exports = async (context) => {
  const r = context.request;
  switch (r.path) {
    case '/ctx':
      return { request_id: context.request_id, context: r.context, header: r.headers['x-request-id'] ?? null };
    case '/print':
      console.log('print line');
      console.error('stderr line');
      console.warn('logging line');
      break;
    case '/multi':
      process.stdout.write('multi 1\\nmulti 2\\n\\nmulti 4\\n');
      process.stderr.write(Buffer.from('err 1\\nerr 2\\n'));
      break;
    case '/partial':
      process.stdout.write('held ');
      await null;
      process.stdout.write('until the end');
      break;
    case '/a':
      process.stdout.write('A one\\nA partial');
      set('a1');
      await wait('b1');
      process.stdout.write(' ended\\nA two\\n');
      set('a2');
      break;
    case '/b':
      await wait('a1');
      process.stdout.write('B one\\nB partial');
      set('b1');
      await wait('a2');
      process.stdout.write(' ended\\nB two\\n');
      break;
    case '/late':
      process.stdout.write('late partial'); // written out when the call ends
      // Carries the call's context, and runs after its end.
      wait('go').then(() => console.log('late line'));
      break;
    case '/go':
      set('go');
      break;
    case '/boom':
      throw new Error('boom');
  }
  return 'ok';
};
""",
    "ruby": """
require "logger"

puts "load stdout"
warn "load stderr"

LOG = Logger.new($stderr, formatter: proc { |_severity, _time, _progname, message| "#{message}\\n" })
LOCK = Mutex.new
COND = ConditionVariable.new
FLAGS = {}

def set_flag(name)
  LOCK.synchronize do
    FLAGS[name] = true
    COND.broadcast
  end
end

def wait_flag(name)
  deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
  LOCK.synchronize do
    until FLAGS[name]
      left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
      raise "no #{name} within 10 s" if left <= 0

      COND.wait(LOCK, left)
    end
  end
end

def main(context)
  r = context.request
  case r.path
  when "/ctx"
    return { "request_id" => context.request_id, "context" => r.context, "header" => r.headers["x-request-id"] }
  when "/print"
    puts "print line"
    warn "stderr line"
    LOG.info("logging line")
  when "/multi"
    $stdout.write("multi 1\\nmulti 2\\n\\nmulti 4\\n")
    $stderr.print("err 1\\n", "err 2\\n")
  when "/partial"
    print "held "
    $stdout << "until the end"
  when "/a"
    $stdout.write("A one\\nA partial")
    set_flag("a1")
    wait_flag("b1")
    $stdout.write(" ended\\nA two\\n")
    set_flag("a2")
  when "/b"
    wait_flag("a1")
    $stdout.write("B one\\nB partial")
    set_flag("b1")
    wait_flag("a2")
    $stdout.write(" ended\\nB two\\n")
  when "/late"
    print "late partial" # written out when the call ends
    Thread.new do
      wait_flag("go")
      puts "late line"
    end
  when "/go"
    set_flag("go")
  when "/boom"
    raise "boom"
  end
  "ok"
end
""",
}


class Fn:
    """One runtime, specialized with CODE[lang]: calls with or without an id, and its log lines."""

    def __init__(self, lang: str, rt: RuntimeClient):
        self.lang = lang
        self.rt = rt

    def call(self, path: str, request_id: str | None = None, **kw: Any) -> Response:
        headers = {} if request_id is None else {"X-Request-Id": request_id}
        return self.rt.request("GET", path, headers=headers, **kw)

    def text(self) -> str:
        """stdout and stderr so far (in a container: stdout, then stderr).

        The engine keeps each stream in order but splits both into lines that two
        copiers log side by side, so one write of several lines to stdout can come
        back with a stderr line between them: the streams are read one at a time.
        """
        container = getattr(self.rt, "container", None)
        if container is not None:
            out = container.logs(stdout=True, stderr=False).decode(errors="replace")
            err = container.logs(stdout=False, stderr=True).decode(errors="replace")
            return out + ("" if not out or out.endswith("\n") else "\n") + err
        return self.rt.output()  # type: ignore[attr-defined]

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def tagged(self, request_id: str) -> list[str]:
        """The text of the lines that carry ``[request_id] ``, in order."""
        prefix = f"[{request_id}] "
        return [line[len(prefix) :] for line in self.lines() if line.startswith(prefix)]

    def wait_tagged(self, request_id: str, count: int) -> list[str]:
        """Bounded polling until ``count`` lines carry the id; returns them all."""
        wait_until(lambda: len(self.tagged(request_id)) >= count, f"{count} lines of [{request_id}]", timeout=10)
        return self.tagged(request_id)

    def wait_text(self, text: str) -> list[str]:
        """Bounded polling until ``text`` is in the output; returns every line.

        Output without a prefix is not checked line by line: where stdout and
        stderr are two pipes read into one file (FAASD_TEST_PYTHON_CMD="docker
        run ..."), Python's print (the text, then "\\n") may have the other
        stream's line between its two writes.
        """
        wait_until(lambda: text in self.text(), repr(text), timeout=10)
        return self.lines()


@pytest.fixture(params=["python", "python-async", "nodejs", pytest.param("ruby", marks=pytest.mark.docker)])
def start(request, start_runtime, start_container) -> Callable[..., Fn]:
    """``start(spec_id=None)``: the language's runtime, specialized with CODE[lang]
    (the specialization sent with ``X-Request-Id: spec_id`` when given)."""
    lang = request.param

    def run(spec_id: str | None = None) -> Fn:
        rt = start_container("ruby") if lang == "ruby" else start_runtime(lang.partition("-")[0])
        headers = {"Content-Type": "application/json", **rt.auth_headers()}
        if spec_id is not None:
            headers["X-Request-Id"] = spec_id
        body = json.dumps({"filename": FILENAME[lang], "code": CODE[lang]}).encode()
        r = rt.request("POST", "/v2/specialize", body, headers)
        assert r.status == 200, r
        return Fn(lang, rt)

    return run


def test_the_context_has_the_request_id(start) -> None:
    fn = start()
    r = fn.call("/ctx", "3f9a0c1b2d4e-1a")
    assert r.status == 200, r
    assert r.json() == {
        "request_id": "3f9a0c1b2d4e-1a",
        "context": {"request_id": "3f9a0c1b2d4e-1a"},
        "header": "3f9a0c1b2d4e-1a",  # still among the headers
    }
    assert r.all("x-request-id") == []  # faasd sets the answer's header, never the runtime
    # The next call on the same connection has none: nothing left over.
    r = fn.call("/ctx")
    assert r.json() == {"request_id": None, "context": {}, "header": None}
    assert r.all("x-request-id") == []
    # Whatever a caller sent, as it came (visible ASCII, up to 200 characters).
    odd = "caller/ID:42_<x>,y;" + "z" * 181
    assert len(odd) == 200
    assert fn.call("/ctx", odd).json()["request_id"] == odd


@pytest.mark.parametrize("bad", ["has space", "z" * 201, "caf\u00e9", ""])
def test_an_invalid_request_id_is_not_used(start, bad) -> None:
    fn = start()
    wire = bad.encode("utf-8").decode("latin-1")  # http.client sends str headers as latin-1
    headers = {"X-Request-Id": wire}
    seen = fn.rt.request("GET", "/ctx", headers=headers).json()
    assert seen["request_id"] is None
    assert seen["context"] == {}
    assert seen["header"] in (bad, wire)  # the function still sees the header (Ruby reads UTF-8)
    assert fn.rt.request("GET", "/print", headers=headers).status == 200
    for text in ("print line", "stderr line", "logging line"):
        lines = fn.wait_text(text)
    assert not [line for line in lines if line.startswith("[")]


def test_printed_lines_get_the_prefix(start) -> None:
    fn = start()
    assert fn.call("/print", "p-1").status == 200
    got = fn.wait_tagged("p-1", 3)
    # stdout and stderr: their order between the two is the engine's
    assert sorted(got) == ["logging line", "print line", "stderr line"]
    lines = fn.lines()
    for text in ("print line", "stderr line", "logging line"):
        assert text not in lines  # never without the prefix


def test_a_multi_line_write_gets_a_prefix_per_line(start) -> None:
    fn = start()
    assert fn.call("/multi", "m-1").status == 200
    got = fn.wait_tagged("m-1", 6)
    assert [t for t in got if not t.startswith("err")] == ["multi 1", "multi 2", "", "multi 4"]
    assert [t for t in got if t.startswith("err")] == ["err 1", "err 2"]
    assert "[m-1] " in fn.lines()  # the empty line, with its prefix
    assert not [line for line in fn.lines() if line.startswith(("multi", "err "))]


def test_a_partial_line_waits_for_the_end_of_the_call(start) -> None:
    fn = start()
    assert fn.call("/partial", "h-1").status == 200
    assert fn.wait_tagged("h-1", 1) == ["held until the end"]
    # Later output starts on a line of its own.
    assert fn.call("/print").status == 200
    lines = fn.wait_text("print line")
    assert "[h-1] held until the end" in lines
    assert not [line for line in lines if "held" in line and line != "[h-1] held until the end"]


def test_concurrent_calls_keep_their_own_ids(start) -> None:
    fn = start()
    results: dict[str, Response] = {}
    errors: list[BaseException] = []

    def call(path: str, request_id: str) -> None:
        try:
            results[path] = fn.call(path, request_id, new_connection=True)
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=call, args=args) for args in (("/a", "call-a"), ("/b", "call-b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert {path: r.status for path, r in results.items()} == {"/a": 200, "/b": 200}, results
    assert fn.wait_tagged("call-a", 3) == ["A one", "A partial ended", "A two"]
    assert fn.wait_tagged("call-b", 3) == ["B one", "B partial ended", "B two"]
    texts = ("A one", "A partial", "A two", "B one", "B partial", "B two")
    assert not [line for line in fn.lines() if any(t in line for t in texts) and not line.startswith("[call-")]


def test_a_call_without_an_id_is_not_prefixed(start) -> None:
    fn = start()
    assert fn.call("/print").status == 200
    assert fn.call("/multi").status == 200
    for text in ("print line", "stderr line", "logging line", "multi 1\nmulti 2\n\nmulti 4\n", "err 1\nerr 2\n"):
        lines = fn.wait_text(text)
    assert not [line for line in lines if line.startswith("[")]


def test_output_at_load_is_not_prefixed(start) -> None:
    fn = start(spec_id="spec-1")  # even when the specialization carries an id
    fn.wait_text("load stderr")
    lines = fn.wait_text("load stdout")
    assert [line for line in lines if line.startswith("faasd-runtime: specialized rid.")]
    assert not [line for line in lines if line.startswith("[")]
    assert fn.call("/print", "after-load").status == 200
    assert sorted(fn.wait_tagged("after-load", 3)) == ["logging line", "print line", "stderr line"]
    assert fn.tagged("spec-1") == []


def test_an_error_trace_gets_the_prefix(start) -> None:
    fn = start()
    r = fn.call("/boom", "e-1")
    assert r.status == 500, r
    assert r.json()["error"]["code"] == "function_error"
    # The error's message: Python's last line, Node's and Ruby's first (each writes its stack at once).
    wait_until(
        lambda: any(t.endswith(("boom", "boom (RuntimeError)")) for t in fn.tagged("e-1")),
        "the error's message with the prefix",
        timeout=10,
    )
    got = fn.tagged("e-1")
    assert got[0].startswith("faasd-runtime: function error"), got
    assert [t for t in got if FILENAME[fn.lang] in t], got  # the stack's frame in the function's file
    lines = fn.lines()
    assert not [line for line in lines if "boom" in line and not line.startswith("[e-1] ")]
    assert not [line for line in lines if line.startswith("faasd-runtime: function error")]
    assert not [
        line
        for line in lines
        if FILENAME[fn.lang] in line and not line.startswith(("[e-1] ", "faasd-runtime: specialized"))
    ]


def test_output_after_the_call_is_not_prefixed(start) -> None:
    fn = start()
    assert fn.call("/late", "late-1").status == 200
    # Its partial line is written out when the call ends: /late is over once it is there.
    assert fn.wait_tagged("late-1", 1) == ["late partial"]
    # /go releases what /late left behind (a thread, a task, a promise).
    assert fn.call("/go", "go-1").status == 200
    lines = fn.wait_text("late line")
    assert not [line for line in lines if "late line" in line and line.startswith("[")]
    assert fn.tagged("late-1") == ["late partial"]
    assert fn.tagged("go-1") == []
