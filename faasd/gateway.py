"""The catch-all handler: a call's whole way through faasd.

route match -> function -> pool lease -> proxy.forward -> response
"""

from __future__ import annotations

import logging

import aiohttp
from aiohttp import web

from faasd import proxy
from faasd.controller import Controller
from faasd.errors import FunctionTimeout, NotFound, PayloadTooLarge, UpstreamError
from faasd.pool import PoolManager
from faasd.routing import Match, split_path

log = logging.getLogger(__name__)

DIRECT_PREFIX = "function"


class Gateway:
    def __init__(
        self,
        controller: Controller,
        pool: PoolManager,
        session: aiohttp.ClientSession,
        max_body_bytes: int,
    ) -> None:
        self._controller = controller
        self._pool = pool
        self._session = session
        self._max_body_bytes = max_body_bytes

    def resolve(self, method: str, path: str) -> Match:
        """/function/<name>[/...] reaches any function; anything else goes by the route table."""
        parts = split_path(path)
        if parts and parts[0] == DIRECT_PREFIX:
            if len(parts) < 2:
                raise NotFound("name a function: /function/<name>")
            return Match(parts[1], {})
        return self._controller.catalog.routes.match(method, path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        match = self.resolve(request.method, request.path)
        fn = self._controller.catalog.functions.get(match.function)
        if fn is None:
            raise NotFound(f"function '{match.function}' not found")
        body = await self._read_body(request)
        lease = await self._pool.lease(fn)
        try:
            return await proxy.forward(self._session, request, lease.url, body, match.params, fn.timeout, fn.name)
        except FunctionTimeout:
            # The instance is stuck: the next call gets a fresh one.
            lease.discard()
            raise
        except UpstreamError as exc:
            # The instance died (crash, out of memory): say why; the next call gets a fresh one.
            raise await self._pool.upstream_failed(lease, exc.message) from None
        finally:
            lease.release()

    async def _read_body(self, request: web.Request) -> bytes:
        limit = self._max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"request body is {request.content_length} bytes; the limit is {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
