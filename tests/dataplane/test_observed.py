"""What the front records of each call: X-Request-Id both ways, the call's counters, the access log."""

from __future__ import annotations

import json
import logging
import re

import pytest

from faasd.dataplane.access import AccessLog
from faasd.observe.calls import CallStats
from tests.dataplane.conftest import MakeFront, Running
from tests.dataplane.support import FakeFunctionServer, wait_until

GENERATED = re.compile(r"^[0-9a-f]{12}-[0-9a-f]+$")


async def test_a_call_gets_a_request_id_passed_to_the_function_and_returned(front: Running) -> None:
    client = await front.client()
    first = await client.request("GET", "/function/fn/echo")
    second = await client.request("GET", "/function/fn/echo")
    ids = [dict(r.headers)["X-Request-Id"] for r in (first, second)]
    assert all(GENERATED.match(i) for i in ids), ids
    assert ids[0] != ids[1]
    assert dict(first.json()["headers"])["X-Request-Id"] == ids[0]  # the function saw the same id


async def test_the_callers_request_id_is_kept_and_an_invalid_one_replaced(front: Running) -> None:
    client = await front.client()
    kept = await client.request("GET", "/function/fn/echo", headers={"X-Request-Id": "trace-42:a/b"})
    assert dict(kept.headers)["X-Request-Id"] == "trace-42:a/b"
    sent = [v for k, v in kept.json()["headers"] if k.lower() == "x-request-id"]
    assert sent == ["trace-42:a/b"]  # once, not twice
    replaced = await client.request("GET", "/function/fn/echo", headers={"X-Request-Id": "has space"})
    assert GENERATED.match(dict(replaced.headers)["X-Request-Id"])
    too_long = await client.request("GET", "/function/fn/echo", headers={"X-Request-Id": "x" * 201})
    assert GENERATED.match(dict(too_long.headers)["X-Request-Id"])


async def test_faasd_errors_carry_the_request_id_and_the_admin_api_does_not_get_one(front: Running) -> None:
    client = await front.client()
    missing = await client.request("GET", "/function/nope", headers={"X-Request-Id": "r-404"})
    assert missing.status == 404
    assert dict(missing.headers)["X-Request-Id"] == "r-404"
    admin = await client.request("GET", "/healthz")
    assert admin.status == 200
    assert "x-request-id" not in {k.lower() for k, _ in admin.headers}


async def test_a_function_cannot_set_the_request_id_of_its_answer(front: Running) -> None:
    client = await front.client()
    answer = await client.request("GET", "/function/fn/echo", headers={"X-Request-Id": "mine"})
    assert [v for k, v in answer.headers if k.lower() == "x-request-id"] == ["mine"]


async def test_every_call_is_counted_with_its_status_class_and_overhead(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    stats = CallStats()
    running = await make_front(upstream.url, calls=stats)
    client = await running.client()
    assert (await client.request("GET", "/function/fn/echo")).status == 200
    assert (await client.request("GET", "/function/fn/status/503")).status == 503
    assert (await client.request("GET", "/function/fn/status/404")).status == 404
    await wait_until(lambda: "fn" in stats.functions and stats.functions["fn"].calls == 3, "three calls counted")
    fc = stats.functions["fn"]
    assert fc.by_class[2] == 1 and fc.by_class[4] == 1 and fc.by_class[5] == 1
    assert fc.overhead.count == 3
    assert fc.billed_ms >= 3  # each call is billed at least a millisecond


async def test_a_timeout_is_counted_as_faasds_504(make_front: MakeFront, upstream: FakeFunctionServer) -> None:
    stats = CallStats()
    running = await make_front(upstream.url, calls=stats)
    running.router.add("fn", timeout=0.2)
    client = await running.client()
    response = await client.request("GET", "/function/fn/sleep?s=5")
    assert response.status == 504
    await wait_until(lambda: "fn" in stats.functions, "the timed-out call counted")
    assert stats.functions["fn"].timeouts == 1
    assert stats.functions["fn"].errors == 1


async def test_a_client_gone_before_the_answer_counts_as_499(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    stats = CallStats()
    running = await make_front(upstream.url, calls=stats)
    client = await running.client()
    await client.send(b"GET /function/fn/sleep?s=5 HTTP/1.1\r\nHost: t\r\n\r\n")
    await wait_until(lambda: upstream.requests, "the call to reach the function")
    await client.close()
    await wait_until(lambda: "fn" in stats.functions, "the abandoned call counted")
    assert stats.functions["fn"].by_class[0] == 1  # 499: a class of its own


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_the_access_log_has_one_line_per_call(
    make_front: MakeFront, upstream: FakeFunctionServer, caplog: pytest.LogCaptureFixture, fmt: str
) -> None:
    running = await make_front(upstream.url, access_log=AccessLog(fmt))
    client = await running.client()
    with caplog.at_level(logging.INFO, logger="faasd.access"):
        await client.request("POST", "/function/fn/echo?x=1", body=b"hi", headers={"X-Request-Id": "acc-1"})
        await client.request("GET", "/healthz")  # the admin API is not a call: no line
        await wait_until(lambda: [r for r in caplog.records if r.name == "faasd.access"], "an access line")
    lines = [r.getMessage() for r in caplog.records if r.name == "faasd.access"]
    assert len(lines) == 1
    if fmt == "json":
        record = json.loads(lines[0])
        assert record["request_id"] == "acc-1"
        assert record["function"] == "fn"
        assert record["route"] == "/function/fn"
        assert record["method"] == "POST" and record["path"] == "/function/fn/echo"
        assert record["status"] == 200
        assert record["start"] == "warm"
        assert record["instance"] == "fakeinstance"
        assert record["duration_ms"] > 0
    else:
        assert lines[0].startswith('acc-1 fn /function/fn "POST /function/fn/echo" 200 ')
        assert lines[0].endswith(" warm fakeinstance")


def test_an_unknown_access_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text or json"):
        AccessLog("xml")


async def test_a_timeout_while_the_answer_streams_counts_as_a_504(
    make_front: MakeFront, upstream: FakeFunctionServer
) -> None:
    stats = CallStats()
    running = await make_front(upstream.url, calls=stats)
    running.router.add("fn", timeout=0.3)
    client = await running.client()
    await client.send(b"GET /function/fn/drip HTTP/1.1\r\nHost: t\r\n\r\n")
    await client.closed()  # the answer had begun: faasd can only cut the connection
    await wait_until(lambda: "fn" in stats.functions, "the cut-off call counted")
    fc = stats.functions["fn"]
    assert fc.by_class[5] == 1 and fc.by_class[2] == 0  # not the 200 that had begun
    assert fc.timeouts == 1


async def test_an_async_call_gets_its_request_id_at_the_front(front: Running) -> None:
    client = await front.client()
    kept = await client.request("POST", "/async-function/fn", headers={"X-Request-Id": "async-1"})
    assert kept.status == 202
    assert kept.json()["request_ids"] == ["async-1"]  # stored once with the call
    assert "x-request-id" not in {k.lower() for k, _ in kept.headers}  # the 202's id is the admin app's
    # An invalid one is dropped: the stored call's own id becomes its request id (the admin app says so).
    made = await client.request("POST", "/async-function/fn", headers={"X-Request-Id": "bad id"})
    assert made.json()["request_ids"] == []
    other = await client.request("GET", "/v1/things", headers={"X-Request-Id": "as is"})
    assert "x-request-id" not in {k.lower() for k, _ in other.headers}  # the admin API's own
