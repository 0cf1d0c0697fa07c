"""The change journal: a registry write names what it changes, and its own transaction records it.

A writer (the controller, the admin API's labels, the events API's triggers, the canaries) wraps its
store call in :func:`recording`. When the store's transaction commits, :class:`Journal` (a session
``before_commit`` listener) adds one ``changes`` row per name to that very transaction, so a write and
its row are committed together or not at all; on PostgreSQL it also calls ``pg_notify``, delivered to
the listening nodes at the commit. There, first, it takes a transaction-scoped advisory lock: registry
writers then commit one at a time in the order of their ids, so a follower that reads "every row after
id N" never misses a row committed later with a smaller id.

Nothing here runs on the request path: only registry writes, which are admin calls.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from faasd.store.models import ChangeRow

T = TypeVar("T")

# The channel writers NOTIFY and followers LISTEN on (PostgreSQL); the payload is the writer's node.
CHANNEL = "faasd_changes"
# pg_advisory_xact_lock's key for registry writers ("faasd" in ASCII).
WRITE_LOCK = 0x6661617364
# Its key for the schema's migration at start (migrations/env.py; "faasdm"). Never the writers' key: in a
# rolling upgrade an old node's write holds a row and waits for the writers' lock while a new node's
# migration, holding its own lock, waits for that row; with one key the two would wait for each other.
MIGRATION_LOCK = 0x66616173646D


class ChangeKind(StrEnum):
    """What a change row names; each is reloaded by name on the other nodes (faasd/cluster/apply.py)."""

    environment = "environment"
    """An environment: its image, builder, pool size."""
    function = "function"
    """A function: code, settings, secrets, versions (deleted: its routes, timers, watches, MQ triggers too)."""
    route = "route"
    """An HTTP trigger: method, URL, its function or weighted functions."""
    package = "package"
    """A package: its archives and build status (deleted: the functions that ran it too)."""
    timer = "timer"
    """A timer trigger's definition."""
    watch = "watch"
    """A watch trigger's definition."""
    mqtrigger = "mqtrigger"
    """A message-queue trigger's definition."""
    canary = "canary"
    """A canary's settings and state (its route's weights change as a route)."""
    labels = "labels"
    """The labels of one resource; the name is ``<kind>/<name>``."""


_pending: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("faasd_pending_changes", default=())


@contextmanager
def recording(kind: ChangeKind, name: str) -> Iterator[None]:
    """Within this block, every registry transaction that commits records the change ``kind``/``name``."""
    token = _pending.set((*_pending.get(), (kind.value, name)))
    try:
        yield
    finally:
        _pending.reset(token)


async def recorded(kind: ChangeKind, name: object, write: Awaitable[T]) -> T:
    """Await ``write`` (a coroutine not started yet) as :func:`recording` ``kind``/``name`` (a name that is not
    a string: the write refuses it anyway)."""
    with recording(kind, name if isinstance(name, str) else ""):
        return await write


class Journal:
    """Writes the pending changes of a committing transaction on ``engine``, as node ``node``."""

    def __init__(self, engine: AsyncEngine, node: str) -> None:
        self._engine = engine.sync_engine
        self.node = node
        self._postgresql = engine.dialect.name == "postgresql"
        event.listen(Session, "before_commit", self._write)

    def close(self) -> None:
        if event.contains(Session, "before_commit", self._write):
            event.remove(Session, "before_commit", self._write)

    def _write(self, session: Session) -> None:
        pending = _pending.get()
        if not pending or session.get_bind() is not self._engine:
            return
        if self._postgresql:
            # The write's own statements first: once the lock is held, nothing waits for another row lock
            # (two nodes inserting the same name would otherwise wait for each other).
            session.flush()
        connection = session.connection()
        if self._postgresql:
            connection.execute(select(func.pg_advisory_xact_lock(WRITE_LOCK)))
        now = time.time()
        changes = dict.fromkeys(pending)  # each once, in order
        rows = [{"kind": kind, "name": name[:160], "node": self.node, "at": now} for kind, name in changes]
        connection.execute(insert(ChangeRow), rows)
        if self._postgresql:
            connection.execute(select(func.pg_notify(CHANNEL, self.node)))
