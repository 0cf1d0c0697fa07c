"""The registry's objects as plain, immutable values.

The store returns these, the controller keeps them in memory, and the gateway
and pool read them; no SQLAlchemy object escapes faasd/store/registry.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Environment:
    name: str
    image: str
    poolsize: int
    created_at: datetime
    updated_at: datetime
    # The image that turns a package's source into its deployment archive
    # (runtimes/README.md, "Builders"); empty: packages of this environment
    # cannot be built, only given a ready deployment archive.
    builder: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "builder": self.builder,
            "poolsize": self.poolsize,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


# Defaults of a function's scaling and limits, and why:
DEFAULT_TIMEOUT = 60  # seconds per call; Fission's and a common Lambda setting
DEFAULT_MEMORY_MB = 256  # container memory limit; Lambda's range starts at 128
# Calls in flight per instance. Lambda, OpenWhisk and Fn run one call per
# instance; Knative and OpenFaaS allow many. faasd's runtimes are non-blocking
# (Node) or threaded (Python) and a container costs ~10-14 MiB and a start on a
# 2-core machine, so one instance serves many calls; set 1 for Lambda-style
# isolation of each call.
DEFAULT_CONCURRENCY = 50
DEFAULT_MAX_INSTANCES = 10  # past this, calls queue, then get 429
DEFAULT_MIN_INSTANCES = 0  # scale to zero when idle, like Fission and Lambda
DEFAULT_QUEUE_TIMEOUT = 10  # seconds a call waits for a free slot at max_instances
# CPU limit in millicores (1000 = one core). One core by default, so that one
# busy function cannot take the whole of a small machine from the others and
# from faasd; Lambda likewise gives a 128-1769 MB function less than one vCPU.
DEFAULT_CPU_MILLIS = 1000
# Networks a function's container may use: "default" reaches beyond the machine
# (as on Lambda and Fission) but never another container, faasd or the host;
# "none" reaches nothing at all. Any other value names a Docker bridge network
# of the user's (e.g. one holding a Redis): the container is put on it too and
# reaches the services there, but not the other functions on it nor the host
# through it (SECURITY.md, "A function on a user network").
NETWORKS = ("default", "none")
DEFAULT_NETWORK = "default"
# Docker's own networks, which no function may name: "none" is faasd's sealed
# mode above, never Docker's network of that name.
DOCKER_NETWORKS = ("host", "bridge", "none")
# Where a function's instances come from (Function.executor), as Fission names its executors.
EXECUTORS = ("poolmgr", "newdeploy")


@dataclass(frozen=True)
class Function:
    name: str
    environment: str
    filename: str
    entrypoint: str
    timeout: int
    code_sha256: str
    code_size: int
    revision: int
    created_at: datetime
    updated_at: datetime
    env: Mapping[str, str] = field(default_factory=dict)
    # Secret values reach the container at specialization and nothing else:
    # to_json() lists their names only.
    secrets: Mapping[str, str] = field(default_factory=dict)
    memory_mb: int = DEFAULT_MEMORY_MB
    concurrency: int = DEFAULT_CONCURRENCY
    max_instances: int = DEFAULT_MAX_INSTANCES
    min_instances: int = DEFAULT_MIN_INSTANCES
    idle_timeout: int | None = None  # None: the daemon's --idle-timeout
    queue_timeout: int = DEFAULT_QUEUE_TIMEOUT
    cpu_millis: int = DEFAULT_CPU_MILLIS
    network: str = DEFAULT_NETWORK
    # A function is either one source file (code_sha256, filename) or a
    # package's deployment archive (package, with entrypoint in Fission's
    # spelling: Python "module.func", Node.js "file.export").
    package: str = ""
    # Asynchronous calls (faasd/core/events.py): retries after the first
    # attempt, and the age in seconds past which a call is a dead letter.
    retries: int = 4
    retry_max_age: int = 21600
    # Where its instances come from (Fission's executor types): "poolmgr" specializes a container
    # of the environment's pool; "newdeploy" starts a container for the function itself, with its
    # own limits from the start, and keeps min_instances of them (Fission's minscale).
    executor: str = "poolmgr"

    @property
    def version(self) -> tuple[float, int]:
        """Orders every version of a name, across a delete and a re-create too."""
        return (self.created_at.timestamp(), self.revision)

    def runtime_env(self) -> dict[str, str]:
        """What the function's process sees: its variables, then its secrets."""
        return {**self.env, **self.secrets}

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "environment": self.environment,
            "filename": self.filename,
            "entrypoint": self.entrypoint,
            "timeout": self.timeout,
            "code_sha256": self.code_sha256,
            "code_size": self.code_size,
            "revision": self.revision,
            "env": dict(self.env),
            "secrets": sorted(self.secrets),
            "memory_mb": self.memory_mb,
            "concurrency": self.concurrency,
            "max_instances": self.max_instances,
            "min_instances": self.min_instances,
            "idle_timeout": self.idle_timeout,
            "queue_timeout": self.queue_timeout,
            "cpu_millis": self.cpu_millis,
            "network": self.network,
            "package": self.package,
            "retries": self.retries,
            "retry_max_age": self.retry_max_age,
            "executor": self.executor,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


# A route that splits its calls names at most this many functions, with weights adding up to 100.
MAX_ROUTE_FUNCTIONS = 5
WEIGHTS_TOTAL = 100


@dataclass(frozen=True)
class HttpTrigger:
    name: str
    method: str
    url: str
    function: str  # a split route's heaviest function (the first of equals)
    created_at: datetime
    updated_at: datetime
    is_async: bool = False  # calls are queued: 202 and a call id (faasd/events)
    # A route that splits its calls: (function, weight) pairs, weights adding up to 100,
    # each call going to one of them at random in proportion. Empty: ``function`` takes every call.
    functions: tuple[tuple[str, int], ...] = ()

    @property
    def weights(self) -> tuple[tuple[str, int], ...]:
        """The functions with their weights; a plain route's function has all 100."""
        return self.functions or ((self.function, WEIGHTS_TOTAL),)

    @property
    def names(self) -> tuple[str, ...]:
        """Every function the route names."""
        return tuple(name for name, _weight in self.weights)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "url": self.url,
            "function": self.function,
            "functions": [{"function": name, "weight": weight} for name, weight in self.weights],
            "async": self.is_async,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


class BuildStatus(StrEnum):
    """Where a package's build is."""

    pending = "pending"  # waiting for a builder
    running = "running"  # a builder container is working on it
    succeeded = "succeeded"  # the deployment archive is ready
    failed = "failed"  # see the package's build log and error


# A package's source and deployment archives, unpacked, at most (Fission allows 256 MiB uploads).
MAX_PACKAGE_BYTES = 256 * 1024 * 1024
MAX_PACKAGE_FILES = 50_000
DEFAULT_BUILD_TIMEOUT = 600  # seconds a build may take


@dataclass(frozen=True)
class Package:
    """A function's source archive and what its environment's builder made of it."""

    name: str
    environment: str
    status: BuildStatus
    source_sha256: str  # normalized tar of the source, in the package store ("" when given a deployment only)
    source_size: int
    deploy_sha256: str  # normalized tar of the deployment archive ("" until built)
    deploy_size: int
    buildcmd: str  # "" = the builder's own build command
    build_log: str  # the tail of the last build's output
    error: str  # why the last build failed ("" otherwise)
    created_at: datetime
    updated_at: datetime

    def to_json(self, with_log: bool = True) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "environment": self.environment,
            "status": self.status.value,
            "source_sha256": self.source_sha256,
            "source_size": self.source_size,
            "deploy_sha256": self.deploy_sha256,
            "deploy_size": self.deploy_size,
            "buildcmd": self.buildcmd,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
        if with_log:
            doc["build_log"] = self.build_log
        return doc
