"""The faasd nodes sharing the registry: one row each, upserted by the node's heartbeat, read by any node.

Times are Unix seconds from one clock for every node: PostgreSQL's (nodes on
several machines need not agree on the time), or this machine's for a SQLite
file (whose nodes all run on one machine). :meth:`NodeStore.list` answers that
clock's "now" with the rows, so liveness is judged on the clock that wrote them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faasd.store.database import upsert
from faasd.store.models import NodeRow


@dataclass(frozen=True)
class NodeRecord:
    id: str  # the node's owner label
    url: str  # where its admin API is reached (--advertise-url)
    started_at: float
    last_seen: float
    version: str


@dataclass(frozen=True)
class NodeList:
    nodes: list[NodeRecord]  # by id
    now: float  # the registry's clock when they were read


async def _now(session: AsyncSession) -> float:
    if session.get_bind().dialect.name == "postgresql":
        return float((await session.execute(text("SELECT extract(epoch FROM clock_timestamp())"))).scalar_one())
    return time.time()


class NodeStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def beat(self, node: str, url: str, version: str, *, starting: bool = False) -> float:
        """Record that ``node`` is alive now (``starting``: it started now too); the time written."""
        async with self._sessions.begin() as session:
            now = await _now(session)
            stmt = upsert(session, NodeRow).values(id=node, url=url, started_at=now, last_seen=now, version=version)
            changed = {"url": url, "last_seen": now, "version": version}
            if starting:
                changed["started_at"] = now
            await session.execute(stmt.on_conflict_do_update(index_elements=[NodeRow.id], set_=changed))
        return now

    async def left(self, node: str, started_at: float, live_seconds: float) -> None:
        """``node`` (its process started at ``started_at``) stopped: its row is no longer live from now on (kept
        for the list like any unseen node's), so that the next process under its id starts without waiting."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(NodeRow)
                .where(NodeRow.id == node, NodeRow.started_at == started_at)
                .values(last_seen=NodeRow.last_seen - live_seconds - 1)
            )

    async def list(self) -> NodeList:
        async with self._sessions() as session:
            now = await _now(session)
            rows = await session.scalars(select(NodeRow).order_by(NodeRow.id))
            nodes = [NodeRecord(r.id, r.url, r.started_at, r.last_seen, r.version) for r in rows]
        return NodeList(nodes, now)

    async def forget(self, unseen_for: float) -> int:
        """Delete the rows of nodes not seen for ``unseen_for`` seconds; how many went."""
        async with self._sessions.begin() as session:
            cutoff = await _now(session) - unseen_for
            result = await session.execute(delete(NodeRow).where(NodeRow.last_seen < cutoff))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
