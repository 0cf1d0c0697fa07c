"""Canaries in the registry: read once at start, written by faasd/control/canary.py.

A canary's step changes its route too: :meth:`CanaryStore.save_in` writes the
canary inside the transaction that stores the route (faasd/store/registry.py,
``Store.update_trigger(..., then=)``), so the two never disagree after a crash.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faasd.core.canary import Canary, CanaryStatus, CanaryStep
from faasd.store.database import upsert
from faasd.store.models import CanaryRow


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _canary(row: CanaryRow) -> Canary:
    return Canary(
        name=row.name,
        newfunction=row.newfunction,
        oldfunction=row.oldfunction,
        httptrigger=row.httptrigger,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        increment_step=row.increment_step,
        increment_interval=row.increment_interval,
        failure_threshold=row.failure_threshold,
        status=CanaryStatus(row.status),
        weight=row.weight,
        history=tuple(CanaryStep(*step) for step in json.loads(row.history_json)),
        reason=row.reason,
    )


def _fields(canary: Canary) -> dict[str, object]:
    history = [[s.at, s.weight, s.calls, s.failures, s.failure_rate] for s in canary.history]
    return {
        "newfunction": canary.newfunction,
        "oldfunction": canary.oldfunction,
        "httptrigger": canary.httptrigger,
        "increment_step": canary.increment_step,
        "increment_interval": canary.increment_interval,
        "failure_threshold": canary.failure_threshold,
        "status": canary.status.value,
        "weight": canary.weight,
        "history_json": json.dumps(history),
        "reason": canary.reason,
        "updated_at": canary.updated_at,
    }


class CanaryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def load(self) -> list[Canary]:
        async with self._sessions() as session:
            return [_canary(row) for row in await session.scalars(select(CanaryRow))]

    @staticmethod
    async def save_in(session: AsyncSession, canary: Canary) -> None:
        """Insert or replace the canary within ``session``'s transaction."""
        fields = _fields(canary)
        stmt = upsert(session, CanaryRow).values(name=canary.name, created_at=canary.created_at, **fields)
        await session.execute(stmt.on_conflict_do_update(index_elements=[CanaryRow.name], set_=fields))

    @staticmethod
    async def still_at(session: AsyncSession, canary: Canary) -> bool:
        """Whether the registry has ``canary`` where this node has it (running, the same steps taken), the row
        locked for the rest of ``session``'s transaction on PostgreSQL: nodes sharing the registry each run
        the canary's intervals, and the first to end one takes the step; the others find it taken."""
        row = await session.scalar(
            select(CanaryRow)
            .where(CanaryRow.name == canary.name)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if row is None:
            return False
        stored = _canary(row)
        return stored.status == canary.status and len(stored.history) == len(canary.history)

    async def save(self, canary: Canary) -> None:
        async with self._sessions.begin() as session:
            await self.save_in(session, canary)

    async def delete(self, name: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(CanaryRow).where(CanaryRow.name == name))
