"""The narrow interface between the build queue and whatever runs builder containers.

faasd/engines/docker.py implements it; the unit tests use a fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class BuildJob:
    """One run of an environment's builder over a source tree.

    The builder container gets the source unpacked at ``$SRC_PKG``
    (/build/src), runs ``command`` with /bin/sh, and leaves the deployment
    tree at ``$DEPLOY_PKG`` (/build/deploy); runtimes/README.md ("Builders").
    """

    package: str
    environment: str
    image: str  # the environment's builder image
    source: Path  # a normalized tar (faasd/builds/archive.py) of the source tree
    command: str  # "" = the builder image's own `build`
    timeout: float
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildOutcome:
    exit_code: int | None  # None: it did not finish (timed out, or the engine failed)
    log: str  # what the builder printed (its tail, bounded)
    output: Path | None  # a tar of $DEPLOY_PKG when the build exited 0
    timed_out: bool = False
    error: str = ""  # why it could not run at all (image missing, engine down)


class BuildBackend(Protocol):
    async def build(self, job: BuildJob, output: Path) -> BuildOutcome:
        """Run ``job`` in a fresh builder container; write $DEPLOY_PKG as a tar to ``output`` on success.

        The container is removed whatever happens, cancellation included.
        """
        ...

    async def builder_image_id(self, image: str) -> str:
        """The image's id (the dependency cache is keyed by it); raises ImageNotFound."""
        ...
