"""Labels of the registry's resources, by kind and name: kept in the registry, answered from memory.

The admin API (faasd/control/api.py) writes a resource's labels after the
resource itself, and merges them into what it answers. A resource made again
under a name gets the labels it is made with (none: none), never an old one's.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from faasd.store.database import upsert
from faasd.store.models import LabelRow


class LabelStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._labels: dict[tuple[str, str], dict[str, str]] = {}

    async def load(self) -> None:
        async with self._sessions() as session:
            rows = await session.scalars(select(LabelRow))
            self._labels = {(r.kind, r.name): json.loads(r.labels_json) for r in rows}

    def get(self, kind: str, name: str) -> dict[str, str]:
        return dict(self._labels.get((kind, name), {}))

    async def set(self, kind: str, name: str, labels: dict[str, str]) -> None:
        """Replace the labels of ``kind``/``name`` (empty: remove them)."""
        async with self._sessions.begin() as session:
            if labels:
                stmt = upsert(session, LabelRow).values(kind=kind, name=name, labels_json=json.dumps(labels))
                await session.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[LabelRow.kind, LabelRow.name], set_={"labels_json": stmt.excluded.labels_json}
                    )
                )
            else:
                await session.execute(delete(LabelRow).where(LabelRow.kind == kind, LabelRow.name == name))
        if labels:
            self._labels[(kind, name)] = dict(labels)
        else:
            self._labels.pop((kind, name), None)
