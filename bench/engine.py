"""The Docker engine, seen from the suite: finding faasd's containers, starting and removing our own.

Containers the suite starts itself carry ``faasd.bench=1`` and ``faasd.bench.run=<run id>``
and are removed by that label at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

RUNTIME_PORT = 8888
NETWORK = "faasd"
GONE_STATES = frozenset(("removing", "exited", "dead"))
# The hardening faasd applies to its own runtime containers, so that a bare
# start is compared with the same kind of container start.
RUNTIME_OPTIONS: dict[str, Any] = {
    "environment": {"PORT": str(RUNTIME_PORT)},
    "mem_limit": "256m",
    "memswap_limit": "256m",
    "pids_limit": 128,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges"],
    "read_only": True,
    "tmpfs": {"/tmp": "rw,size=64m,mode=1777"},
    "user": "1000:1000",
}


class Engine:
    def __init__(self, run_id: str, network: str = NETWORK) -> None:
        self.client = docker.from_env(timeout=60)
        self.client.ping()
        self.run_id = run_id
        self.network = network

    def close(self) -> None:
        self.client.close()

    def address(self, container: Container) -> str:
        container.reload()
        networks = container.attrs["NetworkSettings"]["Networks"]
        return str(networks.get(self.network, {}).get("IPAddress", ""))

    def owned(self, owner: str) -> list[dict[str, Any]]:
        """faasd's containers as the engine lists them (one call, no per-container inspect)."""
        return list(self.client.api.containers(all=True, filters={"label": f"faasd.owner={owner}"}))

    def instance_address(self, owner: str, function: str) -> str:
        """Address of the container faasd specialized for ``function`` (renamed
        faasd-<owner>-<function>-<n>); empty when there is none (yet)."""
        prefix = f"/faasd-{owner}-{function}-"
        for summary in self.owned(owner):
            names = summary.get("Names") or []
            if summary.get("State") == "running" and any(n.startswith(prefix) for n in names):
                networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
                return str((networks.get(self.network) or {}).get("IPAddress", ""))
        return ""

    def start_runtime(self, image: str) -> Container:
        """create + start (run() would try to pull a missing image); returns once started."""
        container = self.client.containers.create(
            image,
            detach=True,
            network=self.network,
            labels={"faasd.bench": "1", "faasd.bench.run": self.run_id},
            **RUNTIME_OPTIONS,
        )
        try:
            container.start()
        except docker.errors.APIError:
            container.remove(force=True)
            raise
        return container

    def remove(self, container: Container) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)

    def remove_by_label(self, label: str) -> int:
        removed = 0
        for summary in self.client.api.containers(all=True, filters={"label": label}):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(summary["Id"], force=True)
                removed += 1
        return removed

    def cleanup(self, owner: str | None) -> int:
        """Remove this run's own containers and, when given, every container of that faasd owner."""
        removed = self.remove_by_label(f"faasd.bench.run={self.run_id}")
        if owner:
            removed += self.remove_by_label(f"faasd.owner={owner}")
        return removed

    def wait_owned_count(self, owner: str, count: int, timeout: float) -> bool:
        """Wait until faasd runs at most ``count`` containers; False on timeout.

        A container being removed counts as gone: on a busy engine a removal can take
        seconds, and it no longer runs anything.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = [c for c in self.owned(owner) if c.get("State") not in GONE_STATES]
            if len(live) <= count:
                return True
            time.sleep(0.05)
        return False
