from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration.harness import FaasdProcess, docker_client


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    return docker_client()


@pytest.fixture
def start_faasd(engine: docker.DockerClient, tmp_path: Path) -> Iterator[Callable[..., FaasdProcess]]:
    """Factory: start a faasd with options; every one started is cleaned up."""
    started: list[FaasdProcess] = []

    def start(state_dir: Path | None = None, wait_pools: bool = True, **options: Any) -> FaasdProcess:
        daemon = FaasdProcess(state_dir or tmp_path / f"state{len(started)}", engine, **options)
        started.append(daemon)
        return daemon.start(wait_pools=wait_pools)

    yield start
    for daemon in started:
        daemon.cleanup()


@pytest.fixture(scope="module")
def faasd(engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaasdProcess]:
    """One faasd shared by a module's tests (pool of 2 per environment)."""
    daemon = FaasdProcess(tmp_path_factory.mktemp("faasd"), engine)
    try:
        yield daemon.start()
    finally:
        daemon.cleanup()


# Real Redis and NATS servers (containers of faasd/broker-*), for the message-queue and application tests.
from tests.integration.brokers import nats_server_fixture, redis_server_fixture  # noqa: E402, F401
