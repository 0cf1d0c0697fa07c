"""PostgreSQL's LISTEN for the follower: a NOTIFY from another node's write wakes it at the commit.

One connection of its own (asyncpg, outside the engine's pool: a listening connection stays checked
out). It is checked every few seconds, and asyncpg tells at once when the server closes it; when it is
lost (a restart of the server, the network) it is opened again, every second until it answers, and the
follower is woken once it is back, since notifications sent meanwhile were lost. The follower's poll
covers the time in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from faasd.cluster.journal import CHANNEL

log = logging.getLogger(__name__)

CHECK_EVERY = 5.0
RETRY_EVERY = 1.0
CONNECT_TIMEOUT = 5.0


def asyncpg_dsn(url: str) -> str:
    """SQLAlchemy's ``postgresql+asyncpg://`` URL as asyncpg takes it."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgresql") else url


class ChangeListener:
    def __init__(self, dsn: str, node: str, wake: Callable[[], None]) -> None:
        self._dsn = dsn
        self._node = node
        self._wake = wake
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self._node:
            self._wake()

    async def _run(self) -> None:
        lost_logged = False
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(self._dsn, timeout=CONNECT_TIMEOUT)
                await connection.add_listener(CHANNEL, self._notified)
                self.connected.set()
                if lost_logged:
                    log.info("listening for the registry's changes again")
                    lost_logged = False
                self._wake()  # what was sent while no one listened: the follower reads it now
                closed = asyncio.Event()
                connection.add_termination_listener(lambda _connection, ended=closed: ended.set())
                while True:
                    # The server closing it (a restart) ends the wait at once; a silent network, the check.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), CHECK_EVERY)
                    if closed.is_set():
                        raise ConnectionError("the server closed the connection")
                    await connection.execute("SELECT 1", timeout=CONNECT_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                if not lost_logged:
                    log.warning("not listening for the registry's changes (%s); the poll covers them", exc)
                    lost_logged = True
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), CONNECT_TIMEOUT)
            await asyncio.sleep(RETRY_EVERY)
