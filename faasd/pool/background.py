"""Fire-and-forget work that must still be awaited before faasd exits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from faasd.core.errors import FaasdError
from faasd.pool.backend import Container, ContainerBackend

log = logging.getLogger(__name__)


class Background:
    def __init__(self, backend: ContainerBackend) -> None:
        self._backend = backend
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def stop(self, container: Container) -> None:
        """Remove a container in the background."""
        self.spawn(self._stop(container))

    async def _stop(self, container: Container) -> None:
        try:
            await self._backend.stop(container)
        except FaasdError as exc:
            log.warning("could not remove container %s: %s", container.id[:12], exc)

    async def settle(self) -> None:
        """Wait until every task spawned so far (and those they spawn) is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
