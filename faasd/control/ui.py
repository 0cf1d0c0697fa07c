"""The web dashboard at /ui: static files from faasd/ui, served by the admin app.

The page holds no data, so /ui is public; every request it makes for data
carries the admin token (kept in the browser's sessionStorage). The assets are
read once, through importlib.resources (so an installed wheel serves them too),
and only those files are served: a name that is not one of them is a 404,
whatever it looks like, so no path leads out of the folder.

Every answer is revalidated (``Cache-Control: no-cache``, with an ETag) and
carries a strict Content-Security-Policy: scripts, styles and connections from
faasd's own origin only, no inline script or style, no framing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

PACKAGE = "faasd"
FOLDER = "ui"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """The dashboard's files by name (only files directly in faasd/ui with a known type)."""
    assets: dict[str, Asset] = {}
    folder = resources.files(PACKAGE).joinpath(FOLDER)
    for entry in folder.iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if not entry.is_file() or name.startswith(".") or suffix not in CONTENT_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body, CONTENT_TYPES[suffix], etag)
    if "index.html" not in assets:
        raise RuntimeError(f"the dashboard's index.html is missing from {PACKAGE}/{FOLDER}")
    return assets


def _answer(request: web.Request, asset: Asset) -> web.Response:
    headers = {**HEADERS, "ETag": asset.etag}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


def add_ui_routes(app: web.Application) -> None:
    """GET /ui (a redirect to /ui/), /ui/ (the page) and /ui/{asset}."""
    assets = load_assets()

    async def redirect(_request: web.Request) -> web.Response:
        return web.Response(status=308, headers={**HEADERS, "Location": "/ui/"})

    async def index(request: web.Request) -> web.Response:
        return _answer(request, assets["index.html"])

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["asset"])
        if found is None:
            return web.json_response(
                {"error": {"code": "not_found", "message": f"no dashboard file {request.path}"}},
                status=404,
                headers=HEADERS,
            )
        return _answer(request, found)

    app.router.add_get("/ui", redirect)
    app.router.add_get("/ui/", index)
    app.router.add_get("/ui/{asset:.*}", asset)
