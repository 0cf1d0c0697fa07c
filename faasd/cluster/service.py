"""The cluster part, assembled: journal before the registry is loaded, follower once everything it feeds runs.

Start: :func:`open_journal` (every write from now on leaves a row; the last row's id is where the
follower starts) -> the controller loads the registry -> :func:`start_cluster` (the follower, and on
PostgreSQL the listener that wakes it). Stop: listener, follower, journal.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from faasd.cluster.apply import Applier, TriggerSets
from faasd.cluster.changes import POSTGRESQL_POLL, SQLITE_POLL, ChangeFeed, Follower
from faasd.cluster.journal import Journal
from faasd.cluster.listen import ChangeListener, asyncpg_dsn
from faasd.cluster.reader import RegistryReader
from faasd.control.canary import CanaryControl
from faasd.control.controller import Controller
from faasd.core.errors import EngineUnavailable
from faasd.store.registry import Store

log = logging.getLogger(__name__)


@dataclass
class Cluster:
    journal: Journal
    follower: Follower
    applier: Applier
    listener: ChangeListener | None = None

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        await self.follower.close()
        self.journal.close()


async def open_journal(store: Store, node: str) -> tuple[Journal, int]:
    """The journal of ``node``'s writes, and the id of the newest change row now (read before the load)."""
    journal = Journal(store.engine, node)
    return journal, await ChangeFeed(store.engine).last_id()


def start_cluster(
    store: Store,
    controller: Controller,
    journal: Journal,
    applied: int,
    *,
    triggers: TriggerSets | None,
    canaries: CanaryControl | None,
) -> Cluster:
    engine = store.engine
    postgresql = engine.dialect.name == "postgresql"
    applier = Applier(controller, store, RegistryReader(engine), triggers=triggers, canaries=canaries)
    follower = Follower(
        ChangeFeed(engine), applier, journal.node, applied, poll=POSTGRESQL_POLL if postgresql else SQLITE_POLL
    )
    follower.start()
    listener = None
    if postgresql:
        dsn = asyncpg_dsn(engine.url.render_as_string(hide_password=False))
        listener = ChangeListener(dsn, journal.node, follower.wake)
        listener.start()
    log.debug("following the registry's changes as node %s from change %d", journal.node, applied)
    return Cluster(journal, follower, applier, listener)


def docker_ping(engine_http: Callable[[], tuple[aiohttp.ClientSession, str]]) -> Callable[[], Awaitable[None]]:
    """The Docker engine's ``GET /_ping``, for readiness (faasd/cluster/readiness.py)."""

    async def ping() -> None:
        session, base = engine_http()
        async with session.get(base + "/_ping") as response:
            if response.status != 200:
                raise EngineUnavailable(f"the Docker engine answered /_ping with {response.status}")

    return ping
