"""Each node's row in ``nodes``, kept fresh: which faasd nodes share the registry, and which of them are live.

The heartbeat upserts this node's row (id = its owner label, the URL its admin
API is reached at, its version) at start and every :data:`HEARTBEAT_SECONDS`,
then reads every row: that list (:attr:`Heartbeat.view`) is what the logs of the
whole cluster ask (faasd/control/cluster_views.py), so no request reads the
registry for it. A node is live while its last beat is at most
:data:`LIVE_BEATS` heartbeats old; rows unseen for :data:`FORGET_AFTER` are
deleted by any node. It runs beside the request path; while the database is
down it logs one warning, keeps trying, and logs one line when it is back.

A node's id must be its own: two nodes with one id skip each other's changes and
take each other's calls. :meth:`Heartbeat.claim`, before the node starts,
refuses an id a live node beats under (:class:`NodeIdTaken`); a node that finds
its row started by another process later logs an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from faasd.store.nodes import NodeList, NodeRecord, NodeStore

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0
LIVE_BEATS = 3
LEAVE_TIMEOUT = 2.0  # seconds a stopping node tries to mark its row as stopped
LIVE_SECONDS = HEARTBEAT_SECONDS * LIVE_BEATS
FORGET_AFTER = 3600.0  # a node gone this long leaves the list (and stops being named as missing)


def is_live(node: NodeRecord, now: float, live_seconds: float = LIVE_SECONDS) -> bool:
    """Whether ``node`` beat within the last ``live_seconds`` (``now``: the clock that wrote its row)."""
    return now - node.last_seen <= live_seconds


class NodeIdTaken(Exception):
    """Another live node beats under this node's id."""


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


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
        self.started_at: float | None = None  # as this node's first beat wrote it
        self._failing = False
        self._taken = False  # the error "another node started under this id" was logged
        self._task: asyncio.Task[None] | None = None

    @property
    def live_seconds(self) -> float:
        return self.interval * LIVE_BEATS

    def live(self, node: NodeRecord, now: float) -> bool:
        return is_live(node, now, self.live_seconds)

    def others(self) -> list[NodeRecord]:
        """Every other node in the last view, live or not."""
        return [n for n in self.view.nodes if n.id != self.node]

    def _own(self, listing: NodeList) -> NodeRecord | None:
        return next((n for n in listing.nodes if n.id == self.node), None)

    async def claim(self) -> None:
        """Before this node starts: raise :class:`NodeIdTaken` when a live node beats under its id.

        A live row may be this node's previous process, stopped a moment ago (a restart): it is another
        node's if its beat moves within an interval and a half. A database that fails here is the first
        beat's to report.
        """
        try:
            listing = await self.store.list()
            before = self._own(listing)
            if before is None or not self.live(before, listing.now):
                return
            await asyncio.sleep(self.interval * 1.5)
            after = self._own(await self.store.list())
            if after is None or after.last_seen == before.last_seen:
                return
        except Exception:
            return
        raise NodeIdTaken(
            f"node id {self.node} is taken: a live node at {before.url} (started {_when(before.started_at)}) "
            "beats under it; give each node its own --owner-label"
        )

    async def beat(self, *, starting: bool = False) -> bool:
        """One beat: upsert this node's row, forget long-gone ones, read them all; False when the database failed.

        ``starting`` (or no beat succeeded yet): the row's start is now."""
        try:
            starting = starting or self.started_at is None
            now = await self.store.beat(self.node, self.url, self.version, starting=starting)
            if starting:
                self.started_at = now
            forgotten = await self.store.forget(FORGET_AFTER)
            if forgotten:
                log.info("forgot %d node(s) not seen for %.0f s", forgotten, FORGET_AFTER)
            self.view = await self.store.list()
            self._check_own_row()
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

    def _check_own_row(self) -> None:
        own = self._own(self.view)
        if own is None or own.started_at == self.started_at or self._taken:
            return
        self._taken = True
        log.error(
            "node id %s is used by another node too (started %s, this one %s): the two skip each other's changes "
            "and take each other's calls; give each node its own --owner-label",
            self.node,
            _when(own.started_at),
            _when(self.started_at or 0.0),
        )

    async def start(self) -> None:
        """The first beat (this node's start), then one every interval in a task of its own."""
        await self.beat(starting=True)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="faasd-heartbeat")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.beat()

    async def close(self) -> None:
        """Stop beating and say so in this node's row (bounded: a database that is away is not waited for),
        so that a restart under the same id does not wait to tell its previous process from another node."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.started_at is not None:
            try:
                await asyncio.wait_for(self.store.left(self.node, self.started_at, self.live_seconds), LEAVE_TIMEOUT)
            except Exception as exc:  # the row just ages out as a crashed node's would
                log.info("node heartbeat: could not mark this node as stopped (%s)", exc)
