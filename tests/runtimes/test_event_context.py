"""The call's context: faasd's X-Faasd-* headers (but the params) as ``request.context``.

Python and Node.js run as host processes (conftest's start_runtime), Ruby in its
image (conftest's start_container: needs a Docker engine and
faasd/runtime-ruby:latest). See runtimes/README.md, "The call's context".
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

import pytest

from .support import RuntimeClient

FILENAME = {"python": "ctx.py", "nodejs": "ctx.js", "ruby": "ctx.rb"}

# Returns what it saw: the context, the headers and the params.
ECHO = {
    "python": """
def main(context):
    r = context.request
    return {"context": r.context, "headers": r.headers, "params": r.params}
""",
    "nodejs": """
module.exports = async (context) => {
  const r = context.request;
  return {status: 200, body: {context: r.context, headers: r.headers, params: r.params}};
};
""",
    "ruby": """
def main(context)
  r = context.request
  { "context" => r.context, "headers" => r.headers, "params" => r.params }
end
""",
}

# The no-argument form reads the current request (Python's and Ruby's `request`).
NO_ARGS = {
    "python": "def main():\n    return request.context\n",
    "ruby": "def main\n  request.context\nend\n",
}

COMMON = {"X-Faasd-Call-Id": "01HZX3K9Q2", "X-Faasd-Attempt": "2"}
TIMER = {
    **COMMON,
    "X-Faasd-Trigger": "timer",
    "X-Faasd-Trigger-Name": "nightly",
    "X-Faasd-Timer-Name": "nightly",
    "X-Faasd-Scheduled-Time": "2024-05-01T12:00:00Z",
}
WATCH = {
    **COMMON,
    "X-Faasd-Trigger": "watch",
    "X-Faasd-Trigger-Name": "containers",
    "X-Faasd-Event-Type": "removed",
    "X-Faasd-Event-Action": "destroy",
    "X-Faasd-Object-Type": "container",
    "X-Faasd-Object-Id": "4f2a9c1e0b7d",
    "X-Faasd-Event-Time": "2024-05-01T12:00:00.123456789Z",
}
ASYNC = {**COMMON, "X-Faasd-Trigger": "async"}

EXPECTED = {
    "timer": {
        "call_id": "01HZX3K9Q2",
        "attempt": "2",
        "trigger": "timer",
        "trigger_name": "nightly",
        "timer_name": "nightly",
        "scheduled_time": "2024-05-01T12:00:00Z",
    },
    "watch": {
        "call_id": "01HZX3K9Q2",
        "attempt": "2",
        "trigger": "watch",
        "trigger_name": "containers",
        "event_type": "removed",
        "event_action": "destroy",
        "object_type": "container",
        "object_id": "4f2a9c1e0b7d",
        "event_time": "2024-05-01T12:00:00.123456789Z",
    },
    "async": {"call_id": "01HZX3K9Q2", "attempt": "2", "trigger": "async"},
}
DELIVERIES = {"timer": TIMER, "watch": WATCH, "async": ASYNC}


def _starter(lang: str, start_runtime: Any, start_container: Any) -> Callable[..., RuntimeClient]:
    def run(code: dict[str, str]) -> RuntimeClient:
        rt = start_container("ruby") if lang == "ruby" else start_runtime(lang)
        rt.lang = lang  # type: ignore[attr-defined]
        r = rt.specialize(FILENAME[lang], code[lang])
        assert r.status == 200, r
        return rt

    return run


@pytest.fixture(params=["python", "nodejs", pytest.param("ruby", marks=pytest.mark.docker)])
def start(request, start_runtime, start_container) -> Callable[..., RuntimeClient]:
    """``start(code)``: the language's runtime, specialized with ``code[lang]``."""
    return _starter(request.param, start_runtime, start_container)


# Node.js has no form without an argument: a function always gets (context, callback).
@pytest.fixture(params=["python", pytest.param("ruby", marks=pytest.mark.docker)])
def start_no_args(request, start_runtime, start_container) -> Callable[..., RuntimeClient]:
    return _starter(request.param, start_runtime, start_container)


def send(rt: RuntimeClient, headers: list[tuple[str, str]], path: str = "/") -> Any:
    """A GET with ``headers`` sent as given, repeats included; returns the JSON answer."""
    conn = http.client.HTTPConnection(rt.host, rt.port, timeout=rt.timeout)
    try:
        conn.putrequest("GET", path)
        for k, v in headers:
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200, (resp.status, body)
    return json.loads(body)


@pytest.mark.parametrize("trigger", DELIVERIES)
def test_faasd_headers_are_the_context_not_headers(start, trigger) -> None:
    rt = start(ECHO)
    headers = {
        **DELIVERIES[trigger],
        "X-Faasd-Params": json.dumps({"id": "42"}),
        "X-Unrelated": "kept",
    }
    r = rt.get("/items/42", headers=headers)
    assert r.status == 200, r
    seen = r.json()
    assert seen["context"] == EXPECTED[trigger]
    assert seen["params"] == {"id": "42"}
    assert seen["headers"]["x-unrelated"] == "kept"
    assert not [k for k in seen["headers"] if k.lower().startswith("x-faasd-")]
    # A plain call on the same connection: no context left over from the last.
    r = rt.get("/items/7", headers={"X-Faasd-Params": json.dumps({"id": "7"}), "X-Unrelated": "kept"})
    assert r.json()["context"] == {}
    assert r.json()["params"] == {"id": "7"}


def test_a_plain_call_has_an_empty_context(start) -> None:
    rt = start(ECHO)
    seen = rt.get("/", headers={"X-Other": "1"}).json()
    assert (seen["context"], seen["params"], seen["headers"]["x-other"]) == ({}, {}, "1")


def test_a_repeated_header_keeps_its_first_value(start) -> None:
    rt = start(ECHO)
    seen = send(
        rt,
        [
            ("X-Faasd-Trigger", "watch"),
            ("X-Faasd-Event-Action", "exec_start: sh -c a, b"),  # a comma in the first value
            ("X-Faasd-Trigger", "async"),
            ("x-faasd-event-action", "start"),
            ("X-Faasd-Params", '{"id": "1"}'),
            ("X-Unrelated", "kept"),
        ],
    )
    assert seen["context"] == {"trigger": "watch", "event_action": "exec_start: sh -c a, b"}
    assert seen["params"] == {"id": "1"}
    assert not [k for k in seen["headers"] if k.lower().startswith("x-faasd-")]


def test_the_no_argument_form_reads_request_context(start_no_args) -> None:
    rt = start_no_args(NO_ARGS)
    assert rt.get("/", headers=TIMER).json() == EXPECTED["timer"]
    assert rt.get("/").json() == {}
