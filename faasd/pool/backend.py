"""The narrow interface between the pool and whatever runs containers.

faasd/engines/docker.py implements it on the Docker engine; tests/fakes.py
implements it in memory for the unit tests of the pool's bookkeeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from faasd.core.entities import Environment


@dataclass(frozen=True)
class Container:
    """A runtime container that is started and answers its health check."""

    id: str
    environment: str
    url: str  # base URL of the runtime server, e.g. http://172.18.0.5:8888
    # The secret this container's runtime demands on POST /v2/specialize: given
    # to it at create time, known to faasd only, never to a function.
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Specialization:
    """What a generic container is told to become."""

    function: str
    filename: str
    code: bytes
    entrypoint: str
    env: dict[str, str] = field(default_factory=dict)
    memory_mb: int = 0  # 0: keep the container's own limit
    cpu_millis: int = 0  # 0: keep the container's own limit
    # "none": nothing beyond faasd may be reached; any other name but "default": a
    # user's Docker network the container joins as well (see engines/firewall.py).
    network: str = "default"
    # A package's deployment archive (a tar in faasd's package store): put into
    # the container at /faasd/deploy before the specialization, which then names
    # that directory instead of carrying code.
    deploy: Path | None = None


@dataclass(frozen=True)
class SpecializeResult:
    load_ms: float
    # The runtime's own message when the code failed to load, e.g.
    # "SyntaxError: Unexpected token ')' (hello.js:3)". The container then
    # answers every call with that error, so it still serves the function.
    load_error: str | None = None


@dataclass(frozen=True)
class LogLine:
    timestamp: str  # RFC 3339, UTC, e.g. 2026-11-27T11:35:55.937Z
    stream: str  # "stdout" or "stderr"
    text: str


class ContainerBackend(Protocol):
    async def start(self, env: Environment, function: str = "") -> Container:
        """Start a generic container of ``env`` and return once it answers its health check.

        Raises EngineUnavailable (or its subclass ImageNotFound).
        """
        ...

    async def specialize(self, container: Container, spec: Specialization) -> SpecializeResult:
        """Load a function into a generic container. Raises UpstreamError if it is gone."""
        ...

    async def healthy(self, container: Container) -> bool:
        """Whether the container answers its health check now (bounded by about a second)."""
        ...

    def logs(self, container: Container) -> AsyncIterator[LogLine]:
        """What the container prints, from its start, until it is gone."""
        ...

    async def exit_reason(self, container: Container) -> str | None:
        """Why the container stopped answering ("out of memory ..."), or None if it still runs."""
        ...

    async def stop(self, container: Container) -> None:
        """Remove the container; a container that is already gone is not an error."""
        ...

    async def remove_managed(self) -> int:
        """Remove every container this faasd (its state dir) ever started; return the count."""
        ...

    async def count_managed(self) -> int:
        """How many containers of this faasd exist now."""
        ...
