from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.cluster.harness import Cluster
from tests.integration.brokers import redis_server_fixture  # noqa: F401 - the recorder's Redis
from tests.integration.harness import docker_client
from tests.postgres import PostgresServer


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    return docker_client()


@pytest.fixture
def cluster(engine: docker.DockerClient, postgres: PostgresServer, tmp_path: Path) -> Iterator[Cluster]:
    """Nodes a and b (pools of 1, leases of 5 s, a database of their own on the session's PostgreSQL) behind nginx."""
    nodes = Cluster(engine, postgres, tmp_path, default_poolsize=1, async_lease=5)
    try:
        yield nodes.start()
    finally:
        nodes.close()
