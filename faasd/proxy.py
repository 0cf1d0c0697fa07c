"""Forwarding one call to a runtime container and its answer back.

Method, path, query, headers and body go through unchanged (binary-safe),
less the hop-by-hop headers; path parameters travel in ``X-Faasd-Params``.
The answer is streamed back as it arrives. The function's timeout bounds the
whole exchange.
"""

from __future__ import annotations

import asyncio
import json
import logging

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from faasd.errors import FunctionTimeout, UpstreamError

log = logging.getLogger(__name__)

HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)
INTERNAL_PREFIX = "x-faasd-"


def _connection_tokens(headers: CIMultiDict[str] | aiohttp.typedefs.LooseHeaders) -> set[str]:
    tokens: set[str] = set()
    for value in CIMultiDict(headers).getall("Connection", []):
        tokens.update(t.strip().lower() for t in value.split(","))
    return tokens


def request_headers(request: web.Request, params: dict[str, str]) -> CIMultiDict[str]:
    drop = HOP_BY_HOP | _connection_tokens(request.headers)
    headers = CIMultiDict(
        (k, v)
        for k, v in request.headers.items()
        if k.lower() not in drop and not k.lower().startswith(INTERNAL_PREFIX)
    )
    peer = request.remote or ""
    forwarded_for = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
    headers["X-Forwarded-Host"] = request.host
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Faasd-Params"] = json.dumps(params, separators=(",", ":"))
    return headers


def response_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    drop = (HOP_BY_HOP - {"content-length"}) | _connection_tokens(upstream.headers)
    return CIMultiDict(
        (k, v)
        for k, v in upstream.headers.items()
        if k.lower() not in drop and not k.lower().startswith(INTERNAL_PREFIX)
    )


async def forward(
    session: aiohttp.ClientSession,
    request: web.Request,
    base_url: str,
    body: bytes,
    params: dict[str, str],
    timeout: float,  # noqa: ASYNC109 - the function's own timeout, applied below
    function: str,
) -> web.StreamResponse:
    """Send the call to ``base_url``; raise FunctionTimeout or UpstreamError on failure."""
    response: web.StreamResponse | None = None
    try:
        async with asyncio.timeout(timeout):
            async with session.request(
                request.method,
                base_url + request.raw_path,
                headers=request_headers(request, params),
                data=body,
                allow_redirects=False,
                auto_decompress=False,
            ) as upstream:
                response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                response.headers.extend(response_headers(upstream))
                if upstream.content_length is None and request.method != "HEAD":
                    response.enable_chunked_encoding()
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
                return response
    except TimeoutError:
        if response is not None and response.prepared:
            # Part of the answer is out; the only honest signal left is to cut it.
            log.warning("function %s timed out after %ss while streaming", function, timeout)
            _abort(request)
            return response
        raise FunctionTimeout(f"function '{function}' did not answer within its timeout of {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        if response is not None and response.prepared:
            log.warning("function %s broke off its answer: %r", function, exc)
            _abort(request)
            return response
        raise UpstreamError(f"function '{function}' failed: its container closed the connection ({exc!r})") from exc


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
