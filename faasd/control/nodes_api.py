"""``GET /v1/nodes``: the faasd nodes sharing this registry, as the heartbeat last read them.

Each with its id (its owner label), the URL its admin API is reached at, whether
it is live (it beat within the last three heartbeats), when it was last seen and
started, its version, and ``"self": true`` on the node that answered. The list is
the heartbeat's (faasd/cluster/heartbeat.py), at most one heartbeat old, so it
answers from memory while the registry is down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from faasd.cluster.heartbeat import Heartbeat


def _time(epoch: float) -> str:
    """RFC 3339 in UTC, to the millisecond."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NodesApi:
    def __init__(self, heartbeat: Heartbeat) -> None:
        self._heartbeat = heartbeat

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/nodes", self.list_nodes)

    def listing(self) -> list[dict[str, Any]]:
        view = self._heartbeat.view
        return [
            {
                "id": n.id,
                "url": n.url,
                "live": self._heartbeat.live(n, view.now),
                "last_seen": _time(n.last_seen),
                "started_at": _time(n.started_at),
                "version": n.version,
                "self": n.id == self._heartbeat.node,
            }
            for n in view.nodes
        ]

    async def list_nodes(self, _request: web.Request) -> web.Response:
        return web.json_response({"items": self.listing()})
