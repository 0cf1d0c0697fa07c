"""Each node's row in ``nodes``, kept fresh: which faasd nodes share the registry, and which of them are live.

The heartbeat upserts this node's row (id = its owner label, the URL its admin
API is reached at, its version) at start and every :data:`HEARTBEAT_SECONDS`,
then reads every row: that list (:attr:`Heartbeat.view`) is what the logs of the
whole cluster ask (faasd/control/cluster_views.py), so no request reads the
registry for it. A node is live while its last beat is at most
:data:`LIVE_BEATS` heartbeats old; rows unseen for :data:`FORGET_AFTER` are
deleted by any node. It runs beside the request path; while the database is
down it logs one warning, keeps trying, and logs one line when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faasd.store.nodes import NodeList, NodeRecord, NodeStore

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0
LIVE_BEATS = 3
LIVE_SECONDS = HEARTBEAT_SECONDS * LIVE_BEATS
FORGET_AFTER = 3600.0  # a node gone this long leaves the list (and stops being named as missing)


def is_live(node: NodeRecord, now: float, live_seconds: float = LIVE_SECONDS) -> bool:
    """Whether ``node`` beat within the last ``live_seconds`` (``now``: the clock that wrote its row)."""
    return now - node.last_seen <= live_seconds


class Heartbeat:
    def __init__(
        self, store: NodeStore, node: str, url: str, version: str, *, interval: float = HEARTBEAT_SECONDS
    ) -> None:
        self.store = store
        self.node = node
        self.url = url
        self.version = version
        self.interval = interval
        self.view = NodeList([], 0.0)  # the rows as last read (empty until the first beat)
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def live_seconds(self) -> float:
        return self.interval * LIVE_BEATS

    def live(self, node: NodeRecord, now: float) -> bool:
        return is_live(node, now, self.live_seconds)

    def others(self) -> list[NodeRecord]:
        """Every other node in the last view, live or not."""
        return [n for n in self.view.nodes if n.id != self.node]

    async def beat(self, *, starting: bool = False) -> bool:
        """One beat: upsert this node's row, forget long-gone ones, read them all; False when the database failed."""
        try:
            await self.store.beat(self.node, self.url, self.version, starting=starting)
            forgotten = await self.store.forget(FORGET_AFTER)
            if forgotten:
                log.info("forgot %d node(s) not seen for %.0f s", forgotten, FORGET_AFTER)
            self.view = await self.store.list()
        except Exception as exc:  # the database is down, or a query failed: try again at the next beat
            if not self._failing:
                log.warning(
                    "node heartbeat: the registry cannot be reached (%s); retrying every %g s", exc, self.interval
                )
                self._failing = True
            return False
        if self._failing:
            log.info("node heartbeat: the registry answers again")
            self._failing = False
        return True

    async def start(self) -> None:
        """The first beat (this node's start), then one every interval in a task of its own."""
        await self.beat(starting=True)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="faasd-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
