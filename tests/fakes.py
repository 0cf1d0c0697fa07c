"""In-memory ContainerBackend for unit tests of the pool's bookkeeping.

It implements faasd.backend.ContainerBackend exactly; containers are
records, and tests can hold starts or specializations on an event to shape
the interleavings they want to pin.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from faasd.core.entities import Environment
from faasd.core.errors import EngineUnavailable, UpstreamError
from faasd.pool.backend import Container, LogLine, Specialization, SpecializeResult


@dataclass
class FakeBackend:
    running: dict[str, Container] = field(default_factory=dict)
    specialized: dict[str, str] = field(default_factory=dict)  # container id -> function
    starts: int = 0
    specializations: int = 0
    start_gate: asyncio.Event | None = None
    specialize_gate: asyncio.Event | None = None
    fail_starts: bool = False
    gone: set[str] = field(default_factory=set)  # ids that vanish before specialization
    leftovers: int = 0  # containers "left by an earlier faasd"
    printed: dict[str, list[str]] = field(default_factory=dict)  # container id -> lines
    exit_reasons: dict[str, str] = field(default_factory=dict)
    stops: list[str] = field(default_factory=list)  # every stop call, in order
    began: list[str] = field(default_factory=list)  # each start's function ("" for a pooled one), in order
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def start(self, env: Environment, function: str = "") -> Container:
        if self.fail_starts:
            raise EngineUnavailable("Docker engine unreachable: fake")
        self.starts += 1
        self.began.append(function)
        if self.start_gate is not None:
            await self.start_gate.wait()
        cid = f"c{next(self._ids)}"
        container = Container(cid, env.name, f"http://fake/{cid}")
        self.running[cid] = container
        return container

    async def specialize(self, container: Container, spec: Specialization) -> SpecializeResult:
        self.specializations += 1
        if self.specialize_gate is not None:
            await self.specialize_gate.wait()
        if container.id in self.gone or container.id not in self.running:
            raise UpstreamError("container gone")
        if container.id in self.specialized:
            raise UpstreamError("already specialized")
        self.specialized[container.id] = spec.function
        return SpecializeResult(load_ms=1.0)

    async def healthy(self, container: Container) -> bool:
        return container.id in self.running and container.id not in self.gone

    async def logs(self, container: Container) -> AsyncIterator[LogLine]:
        for line in self.printed.get(container.id, []):
            yield LogLine("2026-01-01T00:00:00.000Z", "stdout", line)

    async def exit_reason(self, container: Container) -> str | None:
        return self.exit_reasons.get(container.id)

    async def stop(self, container: Container) -> None:
        self.stops.append(container.id)
        self.running.pop(container.id, None)

    async def remove_managed(self) -> int:
        count = len(self.running) + self.leftovers
        self.running.clear()
        self.leftovers = 0
        return count

    async def count_managed(self) -> int:
        return len(self.running)
