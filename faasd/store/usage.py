"""Usage per function and hour in the registry: added to by the meter, read by /v1/usage.

The meter (faasd/observe/usage.py) adds each interval's figures to the row of
its hour, creating it when missing; one transaction per flush, so a flush is
all on disk or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from faasd.store.database import upsert
from faasd.store.models import UsageRow


@dataclass(frozen=True)
class Usage:
    function: str
    hour: int  # the hour's start, unix seconds (UTC)
    calls: int = 0
    billed_ms: int = 0
    gb_seconds: float = 0.0
    instance_seconds: float = 0.0


class UsageFigures(Protocol):
    """What the meter adds for one function and hour (faasd.observe.usage.UsageDelta)."""

    @property
    def function(self) -> str: ...
    @property
    def hour(self) -> int: ...
    @property
    def calls(self) -> int: ...
    @property
    def billed_ms(self) -> int: ...
    @property
    def gb_seconds(self) -> float: ...
    @property
    def instance_seconds(self) -> float: ...


class UsageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def add(self, rows: Sequence[UsageFigures]) -> None:
        """Add each row's figures to its (function, hour), in one transaction."""
        if not rows:
            return
        async with self._sessions.begin() as session:
            for row in rows:
                stmt = upsert(session, UsageRow).values(
                    function=row.function,
                    hour=row.hour,
                    calls=row.calls,
                    billed_ms=row.billed_ms,
                    gb_seconds=row.gb_seconds,
                    instance_seconds=row.instance_seconds,
                )
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[UsageRow.function, UsageRow.hour],
                        set_={
                            "calls": UsageRow.calls + stmt.excluded.calls,
                            "billed_ms": UsageRow.billed_ms + stmt.excluded.billed_ms,
                            "gb_seconds": UsageRow.gb_seconds + stmt.excluded.gb_seconds,
                            "instance_seconds": UsageRow.instance_seconds + stmt.excluded.instance_seconds,
                        },
                    )
                )

    async def query(self, since: int, function: str | None = None) -> list[Usage]:
        """Rows of hours starting at or after ``since`` (unix seconds), oldest first."""
        stmt = select(UsageRow).where(UsageRow.hour >= since)
        if function is not None:
            stmt = stmt.where(UsageRow.function == function)
        async with self._sessions() as session:
            found = await session.scalars(stmt.order_by(UsageRow.hour, UsageRow.function))
            return [Usage(r.function, r.hour, r.calls, r.billed_ms, r.gb_seconds, r.instance_seconds) for r in found]
