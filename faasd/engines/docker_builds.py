"""BuildBackend on the Docker engine: one builder container per build.

The container is locked down like a function's (uid 1000, no capabilities,
no-new-privileges, read-only root, pids and memory limits, rotated logs) but
keeps the default network, since it fetches packages: it is on faasd's own
network, so the host firewall keeps it off the host and other containers
like any function. The source goes in, and the deployment tree comes out,
through Docker's archive API on an anonymous volume at /build (removed with
the container). The host's CA bundle is mounted at /etc/faasd/ca.crt and
named by the variables pip, requests, OpenSSL, Node.js and npm read; the
host's pip configuration (/etc/pip.conf), npm configuration (~/.npmrc) and
pip/npm registry variables are handed in when present, and nothing else of
the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import docker
import docker.errors
from docker.types import Mount

from faasd.builds.backend import BuildJob, BuildOutcome
from faasd.core.entities import MAX_PACKAGE_BYTES
from faasd.core.errors import EngineUnavailable, ImageNotFound, PayloadTooLarge
from faasd.engines.firewall import FirewallError

if TYPE_CHECKING:
    from faasd.engines.docker import DockerBackend

log = logging.getLogger(__name__)

CA_IN_BUILDER = "/etc/faasd/ca.crt"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_PIP_CONF = Path("/etc/pip.conf")
HOST_NPMRC = Path.home() / ".npmrc"
NPMRC_IN_BUILDER = "/etc/faasd/npmrc"
PASSED_VARIABLES = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "npm_config_registry")
BUILD_MEMORY = "1g"
LOG_TAIL = 64 * 1024
# The tar of $DEPLOY_PKG, at most (then archive.normalize applies the package limits).
MAX_OUTPUT_BYTES = MAX_PACKAGE_BYTES + 16 * 1024 * 1024


class DockerBuilds:
    def __init__(self, engine: DockerBackend, *, ca_bundle: Path | None = HOST_CA) -> None:
        self._engine = engine
        self._ca = ca_bundle if ca_bundle is not None and ca_bundle.is_file() else None

    async def builder_image_id(self, image: str) -> str:
        def inspect(reference: str) -> str:
            return str(self._engine._ready().api.inspect_image(reference)["Id"])

        # A stock builder still being built (a first start): the package's build waits for it.
        resolved = await self._engine.images.wait(image)
        try:
            return await self._engine._run(inspect, resolved)
        except ImageNotFound:
            if self._engine.images.book.of(image) is None:
                raise
            # Removed by hand (docker image prune -a): built again, once.
            self._engine.images.forget(image)
            return await self._engine._run(inspect, await self._engine.images.wait(image))

    async def build(self, job: BuildJob, output: Path) -> BuildOutcome:
        began = time.monotonic()
        stock = self._engine.images.book.of(job.image) is not None
        try:
            job = dataclasses.replace(job, image=await self._engine.images.wait(job.image))
        except ImageNotFound as exc:
            return BuildOutcome(None, "", None, error=f"builder image {job.image} not found: {exc.message}")
        create = asyncio.ensure_future(self._engine._run(self._create, job))
        try:
            container_id = await asyncio.shield(create)
        except asyncio.CancelledError:
            # The create goes on in its thread: remove what it makes.
            create.add_done_callback(self._engine._remove_created)
            raise
        except ImageNotFound as exc:
            if stock:
                self._engine.images.forget(job.image)  # built again for the next build
            return BuildOutcome(None, "", None, error=f"builder image {job.image} not found: {exc.message}")
        except (EngineUnavailable, FirewallError) as exc:
            return BuildOutcome(None, "", None, error=str(getattr(exc, "message", exc)))
        try:
            return await self._run(container_id, job, output, began)
        finally:
            # Cancelled or not, the builder goes (shielded: a cancellation must not skip it).
            try:
                await asyncio.shield(self._engine._run(self._engine._remove, container_id))
            except EngineUnavailable as exc:
                log.warning("could not remove the builder of %s: %s (removed at the next start)", job.package, exc)

    def _create(self, job: BuildJob) -> str:
        engine = self._engine
        settings = engine._settings
        client = engine._ready()
        environment: dict[str, str] = {
            "SRC_PKG": "/build/src",
            "DEPLOY_PKG": "/build/deploy",
            "HOME": "/tmp",
            # Python does not import from the working directory (the source): a
            # package's own pip.py or json.py cannot stand in for the real ones.
            "PYTHONSAFEPATH": "1",
            **{k: v for k, v in os.environ.items() if k in PASSED_VARIABLES},
            **job.env,
        }
        mounts = [Mount("/build", None, type="volume")]
        if self._ca is not None:
            mounts.append(Mount(CA_IN_BUILDER, str(self._ca), type="bind", read_only=True))
            for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "npm_config_cafile"):
                environment[name] = CA_IN_BUILDER
        if HOST_PIP_CONF.is_file():
            mounts.append(Mount("/etc/pip.conf", str(HOST_PIP_CONF), type="bind", read_only=True))
        if HOST_NPMRC.is_file():
            mounts.append(Mount(NPMRC_IN_BUILDER, str(HOST_NPMRC), type="bind", read_only=True))
            environment["npm_config_userconfig"] = NPMRC_IN_BUILDER
        command = job.command or "build"
        container = client.containers.create(
            job.image,
            command=["/bin/sh", "-c", command],
            working_dir="/build/src",
            detach=True,
            labels={
                "faasd.managed": "true",
                "faasd.owner": engine._owner,
                "faasd.environment": job.environment,
                "faasd.function": "",
                "faasd.build": job.package,
            },
            network=settings.network,
            environment=environment,
            mounts=mounts,
            mem_limit=BUILD_MEMORY,
            memswap_limit=BUILD_MEMORY,
            pids_limit=512,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            tmpfs={"/tmp": "rw,size=1g,mode=1777"},
            user="1000:1000",
            log_config=engine._log_config,
        )
        try:
            with job.source.open("rb") as source:
                client.api.put_archive(container.id, "/build", source)
        except BaseException:
            engine._remove(str(container.id))
            raise
        return str(container.id)

    async def _run(self, container_id: str, job: BuildJob, output: Path, began: float) -> BuildOutcome:
        engine = self._engine
        await engine._run(lambda: engine._docker().api.start(container_id))
        timed_out = False
        exit_code: int | None = None
        try:
            async with asyncio.timeout(job.timeout):
                result = await engine._run(lambda: engine._docker().api.wait(container_id))
                exit_code = int(result.get("StatusCode", -1))
        except TimeoutError:
            timed_out = True
            with contextlib.suppress(EngineUnavailable):
                await engine._run(lambda: engine._docker().api.kill(container_id))
        text = await engine._run(self._logs, container_id)
        log.info(
            "build of %s: exit %s in %.1f s%s",
            job.package,
            exit_code,
            time.monotonic() - began,
            " (timed out)" if timed_out else "",
        )
        if timed_out or exit_code != 0:
            return BuildOutcome(exit_code, text, None, timed_out=timed_out)
        await engine._run(self._fetch, container_id, output)
        return BuildOutcome(exit_code, text, output)

    def _logs(self, container_id: str) -> str:
        try:
            raw = self._engine._docker().api.logs(container_id, stdout=True, stderr=True, tail=2000)
        except docker.errors.NotFound:
            return ""
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        return text[-LOG_TAIL:]

    def _fetch(self, container_id: str, output: Path) -> None:
        """$DEPLOY_PKG as a tar (its members under deploy/), streamed to ``output``."""
        stream, _stat = self._engine._docker().api.get_archive(container_id, "/build/deploy")
        tmp = output.with_suffix(".part")
        written = 0
        with tmp.open("wb") as out:
            for chunk in stream:
                written += len(chunk)
                if written > MAX_OUTPUT_BYTES:
                    raise PayloadTooLarge(f"the build's output is over {MAX_OUTPUT_BYTES // (1024 * 1024)} MiB")
                out.write(chunk)
        os.replace(tmp, output)
