"""One registry object by name, as it is now: what a follower reloads for a change row.

Rows become the same values the stores' own loads make (their converters are reused), so an object
reloaded here equals the one the writing node holds. ``None``: the object does not exist (deleted).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from faasd.core.canary import Canary
from faasd.core.entities import Environment, Function, HttpTrigger, Package
from faasd.core.events import MqTrigger, Timer, Watch
from faasd.store.canaries import _canary
from faasd.store.events import _mq, _timer, _watch
from faasd.store.models import (
    CanaryRow,
    EnvironmentRow,
    FunctionRow,
    FunctionVersionRow,
    HttpTriggerRow,
    MqTriggerRow,
    PackageRow,
    TimerRow,
    WatchRow,
)
from faasd.store.registry import _environment, _function, _package, _trigger


class RegistryReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def _table_row(self, table: Any, name: str) -> Any:
        async with self._sessions() as session:
            return (await session.execute(select(table).where(table.c.name == name))).first()

    async def environment(self, name: str) -> Environment | None:
        row = await self._table_row(EnvironmentRow.__table__, name)
        return None if row is None else _environment(row)

    async def function(self, name: str) -> Function | None:
        row = await self._table_row(FunctionRow.__table__, name)
        return None if row is None else _function(row)

    async def versions(self, function: str) -> dict[int, str]:
        """The function's kept version numbers, each with its code blob's sha256."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(FunctionVersionRow.number, FunctionVersionRow.code_sha256).where(
                    FunctionVersionRow.function == function
                )
            )
            return {number: sha256 for number, sha256 in rows}

    async def trigger(self, name: str) -> HttpTrigger | None:
        row = await self._table_row(HttpTriggerRow.__table__, name)
        return None if row is None else _trigger(row)

    async def package(self, name: str) -> Package | None:
        row = await self._table_row(PackageRow.__table__, name)
        return None if row is None else _package(row)

    async def timer(self, name: str) -> Timer | None:
        async with self._sessions() as session:
            row = await session.get(TimerRow, name)
            return None if row is None else _timer(row)

    async def watch(self, name: str) -> Watch | None:
        async with self._sessions() as session:
            row = await session.get(WatchRow, name)
            return None if row is None else _watch(row)

    async def mqtrigger(self, name: str) -> MqTrigger | None:
        async with self._sessions() as session:
            row = await session.get(MqTriggerRow, name)
            return None if row is None else _mq(row)

    async def canary(self, name: str) -> Canary | None:
        async with self._sessions() as session:
            row = await session.get(CanaryRow, name)
            return None if row is None else _canary(row)

    async def timers(self) -> list[Timer]:
        async with self._sessions() as session:
            return [_timer(r) for r in await session.scalars(select(TimerRow))]

    async def watches(self) -> list[Watch]:
        async with self._sessions() as session:
            return [_watch(r) for r in await session.scalars(select(WatchRow))]

    async def mqtriggers(self) -> list[MqTrigger]:
        async with self._sessions() as session:
            return [_mq(r) for r in await session.scalars(select(MqTriggerRow))]

    async def canaries(self) -> list[Canary]:
        async with self._sessions() as session:
            return [_canary(r) for r in await session.scalars(select(CanaryRow))]
