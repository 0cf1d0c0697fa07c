"""Headers across the front: hop-by-hop never forwarded, X-Faasd-* private, X-Forwarded-* added."""

from __future__ import annotations

from tests.dataplane.conftest import Running


async def test_hop_by_hop_and_internal_request_headers_are_dropped(front: Running) -> None:
    client = await front.client()
    response = await client.request(
        "GET",
        "/function/fn/echo",
        headers={
            "Connection": "keep-alive, X-Client-Hop",
            "Keep-Alive": "timeout=5",
            "X-Client-Hop": "secret",
            "TE": "trailers",
            "Trailer": "X-T",
            "Proxy-Authorization": "Basic eA==",
            "Proxy-Connection": "keep-alive",
            "X-Faasd-Params": '{"id": "forged"}',
            "X-Faasd-Anything": "forged",
            "X-Kept": "kept",
            "Authorization": "Bearer for-the-function",
        },
    )
    sent = response.json()["headers"]
    names = {k.lower() for k, _ in sent}
    for dropped in (
        "connection",
        "keep-alive",
        "x-client-hop",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "x-faasd-anything",
    ):
        assert dropped not in names, dropped
    headers = dict(sent)
    assert headers["X-Faasd-Params"] == "{}"  # faasd's own, not the forged one
    assert headers["X-Kept"] == "kept"
    assert headers["Authorization"] == "Bearer for-the-function"
    assert headers["X-Forwarded-For"] == "127.0.0.1"
    assert headers["X-Forwarded-Proto"] == "http"
    assert headers["X-Forwarded-Host"] == "faasd.test"
    assert headers["Host"] == front.router.upstream_url.removeprefix("http://")


async def test_x_forwarded_for_is_appended_to(front: Running) -> None:
    client = await front.client()
    response = await client.request("GET", "/function/fn/echo", headers={"X-Forwarded-For": "10.0.0.1"})
    assert dict(response.json()["headers"])["X-Forwarded-For"] == "10.0.0.1, 127.0.0.1"


async def test_hop_by_hop_and_internal_response_headers_are_dropped(front: Running) -> None:
    client = await front.client()
    response = await client.request("GET", "/function/fn/hop")
    names = {k.lower() for k, _ in response.headers}
    for dropped in ("keep-alive", "x-upstream-hop", "proxy-authenticate", "trailer", "upgrade", "x-faasd-internal"):
        assert dropped not in names, dropped
    assert response.header("X-Kept") == "kept"
    assert response.header("Connection") is None
    assert response.body == b"hop"


async def test_repeated_request_headers_are_kept_in_order(front: Running) -> None:
    client = await front.client()
    await client.send(b"GET /function/fn/echo HTTP/1.1\r\nHost: x\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n")
    sent = [(k, v) for k, v in (await client.response()).json()["headers"] if k == "X-Dup"]
    assert sent == [("X-Dup", "1"), ("X-Dup", "2")]


async def test_client_sent_forwarding_headers_are_replaced(front: Running) -> None:
    client = await front.client()
    response = await client.request(
        "GET",
        "/function/fn/echo",
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "bank.example", "Forwarded": "for=6.6.6.6"},
    )
    sent = response.json()["headers"]
    assert [v for k, v in sent if k.lower() == "x-forwarded-proto"] == ["http"]
    assert [v for k, v in sent if k.lower() == "x-forwarded-host"] == ["faasd.test"]
    assert [v for k, v in sent if k.lower() == "forwarded"] == []
