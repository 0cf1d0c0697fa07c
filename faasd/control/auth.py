"""The admin API's bearer token.

On first start faasd makes a random 32-byte token and keeps it in
``<state dir>/token`` (mode 0600); ``FAASD_TOKEN`` / ``--token`` sets one
instead. Every /v1 request must carry ``Authorization: Bearer <token>``,
compared in constant time, and so must /metrics (it names every function;
Prometheus sends the token with ``authorization: {credentials: ...}``).
Function routes, /healthz, /readyz and the API's own description (/v1/openapi.json)
stay public.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from faasd.core.errors import Unauthorized

log = logging.getLogger(__name__)

PUBLIC = frozenset({"/v1/openapi.json"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def load_or_create_token(state_dir: Path) -> str:
    path = state_dir / "token"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if token:
            return token
        raise SystemExit(f"faasd: {path} is empty; delete it to get a new token") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
        out.flush()
        os.fsync(out.fileno())
    log.info("created the admin API token in %s", path)
    return token


def token_middleware(token: str, *, public_metrics: bool = False) -> Middleware:
    """/v1 needs the token; so does /metrics unless ``public_metrics`` (--metrics-public)."""
    expected = f"Bearer {token}".encode()
    guarded_metrics = not public_metrics

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if (
            path == "/v1" or path.startswith("/v1/") or (path == "/metrics" and guarded_metrics)
        ) and path not in PUBLIC:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized(
                    "the admin API needs 'Authorization: Bearer <token>'; the token is in the state dir's "
                    "'token' file (faas reads it, or set FAAS_TOKEN)",
                    {"WWW-Authenticate": "Bearer"},
                )
        return await handler(request)

    return require_token
