"""The build queue: a package's source made into its deployment archive by its environment's builder.

One build runs at a time by default (a build is CPU- and network-heavy; the
machine is small). A build of the default kind is split in two, so that a
change of code alone does not rebuild anything:

    dependencies = builder(source)            cached by (builder image id,
                                              manifests, local dependency files)
    deployment   = dependencies + source      overlaid by faasd itself, no container

A package with its own ``buildcmd`` is built whole every time; its deployment
is the source with what the command left in $DEPLOY_PKG laid over it. Every step is reported to the
registry's writer through :class:`BuildRecorder` (running, then succeeded
with the deployment archive already in the package store, or failed with why),
so ``faas pkg info`` and the calls of the package's functions see it.

Nothing here blocks the loop: archive work runs in worker threads; the
builder container is run by a :class:`~faasd.builds.backend.BuildBackend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from faasd.builds import archive
from faasd.builds.archive import ArchiveInfo
from faasd.builds.backend import BuildBackend, BuildJob, BuildOutcome
from faasd.builds.store import PackageStore
from faasd.core.entities import DEFAULT_BUILD_TIMEOUT, BuildStatus, Environment, Package
from faasd.core.errors import FaasdError

log = logging.getLogger(__name__)

# Files whose content decides the dependencies (any of them, at the top of the source).
MANIFESTS = ("requirements.txt", "package.json", "package-lock.json", "npm-shrinkwrap.json")
# Local dependency files a manifest may point at (wheels, sdists, npm tarballs).
LOCAL_DEPENDENCIES = (".whl", ".tar.gz", ".tgz", ".zip")
BUILDER_UID = 1000
LOG_LIMIT = 64 * 1024  # the build log kept: its tail


class BuildRecorder(Protocol):
    """The registry's writer (faasd.control.controller.Controller)."""

    async def record_build(
        self, name: str, *, status: BuildStatus, deploy: ArchiveInfo | None, log: str, error: str
    ) -> Package | None: ...


class BuildFailed(Exception):
    """A build did not give a deployment archive; the message says why, for the package's error."""


class Builder:
    def __init__(
        self,
        backend: BuildBackend,
        store: PackageStore,
        environment: Callable[[str], Environment | None],
        *,
        workdir: Path,
        timeout: float = DEFAULT_BUILD_TIMEOUT,
        concurrency: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._store = store
        self._environment = environment
        self._workdir = workdir
        self.timeout = timeout
        self._clock = clock
        self._recorder: BuildRecorder | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._wanted: dict[str, Package] = {}  # name -> the latest version submitted, not yet started
        self._running: dict[str, asyncio.Task[None]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._concurrency = concurrency
        # Builds ended since faasd started, per (environment, "succeeded"|"failed"): [count, seconds].
        self.finished: dict[tuple[str, str], list[float]] = {}

    def bind(self, recorder: BuildRecorder) -> None:
        """The controller, made after the builder (each needs the other); starts the workers."""
        self._recorder = recorder
        loop = asyncio.get_running_loop()
        # What a killed faasd's builds left (their inputs and outputs) goes.
        shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._workers = [loop.create_task(self._work()) for _ in range(self._concurrency)]

    # -- the queue ---------------------------------------------------------------

    def submit(self, package: Package) -> None:
        """Build ``package`` (its newest version wins if it is submitted again before it starts)."""
        first = package.name not in self._wanted
        self._wanted[package.name] = package
        running = self._running.get(package.name)
        if running is not None:
            running.cancel()  # a newer source supersedes the build in progress
        if first:
            self._queue.put_nowait(package.name)

    def cancel(self, name: str) -> None:
        """The package was deleted: drop it from the queue and stop its build."""
        self._wanted.pop(name, None)
        running = self._running.get(name)
        if running is not None:
            running.cancel()

    async def _work(self) -> None:
        while True:
            name = await self._queue.get()
            package = self._wanted.pop(name, None)
            if package is None:
                continue
            task = asyncio.get_running_loop().create_task(self._guarded(package))
            self._running[name] = task
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():  # the worker itself is being cancelled (shutdown)
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    raise
            finally:
                if self._running.get(name) is task:
                    del self._running[name]

    async def close(self) -> None:
        """Stop the workers and the builds in progress (their builder containers are removed)."""
        for task in [*self._workers, *self._running.values()]:
            task.cancel()
        await asyncio.gather(*self._workers, *self._running.values(), return_exceptions=True)
        self._workers.clear()

    # -- one build ---------------------------------------------------------------

    async def _record(
        self,
        package: Package,
        status: BuildStatus,
        *,
        deploy: ArchiveInfo | None = None,
        log: str = "",
        error: str = "",
    ) -> Package | None:
        assert self._recorder is not None
        return await self._recorder.record_build(package.name, status=status, deploy=deploy, log=log, error=error)

    async def _guarded(self, package: Package) -> None:
        """One build; an error recording it (the registry) is logged, never the end of the worker."""
        try:
            await self._build_and_record(package)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not record the build of %s", package.name)

    async def _build_and_record(self, package: Package) -> None:
        lines: list[str] = []
        began = self._clock()
        if await self._record(package, BuildStatus.running) is None:
            return  # deleted meanwhile
        try:
            info = await self._build(package, lines)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # whatever it was, the package says so and the queue goes on
            if isinstance(exc, BuildFailed | FaasdError | OSError):
                message = getattr(exc, "message", None) or str(exc)
            else:
                log.exception("the build of %s failed unexpectedly", package.name)
                message = f"internal error: {exc!r}; see faasd's log"
            lines.append(f"faasd: build failed: {message}")
            log.warning("package %s failed to build: %s", package.name, message)
            self._count(package, "failed", began)
            await self._record(package, BuildStatus.failed, log=_tail(lines), error=message)
            return
        lines.append(
            f"faasd: build succeeded in {self._clock() - began:.1f} s ({info.files} files, {info.size:,} bytes)"
        )
        log.info("package %s built in %.1f s", package.name, self._clock() - began)
        self._count(package, "succeeded", began)
        await self._record(package, BuildStatus.succeeded, deploy=info, log=_tail(lines))

    def _count(self, package: Package, result: str, began: float) -> None:
        counted = self.finished.setdefault((package.environment, result), [0, 0.0])
        counted[0] += 1
        counted[1] += self._clock() - began

    async def _build(self, package: Package, lines: list[str]) -> ArchiveInfo:
        env = self._environment(package.environment)
        if env is None:
            raise BuildFailed(f"environment '{package.environment}' does not exist")
        if not env.builder:
            raise BuildFailed(f"environment '{env.name}' has no builder image (faas env update --builder IMAGE)")
        source = await asyncio.to_thread(self._store.path, package.source_sha256)  # read from the database once
        with tempfile.TemporaryDirectory(
            dir=self._workdir, prefix=f"{package.name}-", ignore_cleanup_errors=True
        ) as tmp:
            work = Path(tmp)
            if package.buildcmd:
                lines.append(f"faasd: running the build command {package.buildcmd!r} in {env.builder}")
                built = await self._run_builder(package, env, source, package.buildcmd, work, lines)
                # The source, with what the command left in $DEPLOY_PKG laid over it.
                return await asyncio.to_thread(self._store_deployment, source, built, work)
            deps = await self._dependencies(package, env, source, work, lines)
            return await asyncio.to_thread(self._store_deployment, deps, source, work)

    async def _dependencies(
        self, package: Package, env: Environment, source: Path, work: Path, lines: list[str]
    ) -> Path | None:
        """The cached dependency tree for ``source``, building it when it is not cached."""
        manifests = await asyncio.to_thread(archive.file_hashes, source, MANIFESTS)
        if not manifests:
            lines.append(f"faasd: no dependency manifest ({', '.join(MANIFESTS[:2])}): nothing to install")
            return None
        local = await asyncio.to_thread(archive.members_matching, source, LOCAL_DEPENDENCIES)
        image_id = await self._backend.builder_image_id(env.builder)
        inputs: dict[str, object] = {"image": image_id, "manifests": manifests, "local": local}
        refers = await asyncio.to_thread(_refers_to_local_paths, source)
        if refers:
            # The dependencies depend on more than the manifests: key them by the whole source.
            inputs["source"] = package.source_sha256
            lines.append(f"faasd: {refers}: the dependencies are keyed by the whole source")
        # Per package: one package's build (its setup.py, its npm scripts) never lands in another's.
        inputs["package"] = package.name
        key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        if await asyncio.to_thread(self._store.has_deps, key):
            cached = self._store.deps_path(key)
            lines.append(f"faasd: cache hit: dependencies {key[:12]} reused ({', '.join(sorted(manifests))} unchanged)")
            return cached
        lines.append(f"faasd: cache miss: installing dependencies {key[:12]} with {env.builder}")
        built = await self._run_builder(package, env, source, "", work, lines)
        return await asyncio.to_thread(self._store_dependencies, key, built, work)

    async def _run_builder(
        self, package: Package, env: Environment, source: Path, command: str, work: Path, lines: list[str]
    ) -> Path:
        """Run the builder over ``source``; the tar of what it left in $DEPLOY_PKG."""
        staged = work / "build-input.tar"
        # The builder works as uid 1000 in /build: the source in src/, an empty deploy/.
        await asyncio.to_thread(archive.retag, source, staged, prefix="src", owner=BUILDER_UID, extra_dirs=("deploy",))
        job = BuildJob(package.name, env.name, env.builder, staged, command, self.timeout)
        output = work / "build-output.tar"
        outcome: BuildOutcome = await self._backend.build(job, output)
        if outcome.log:
            lines.append(outcome.log.rstrip("\n"))
        if outcome.error:
            raise BuildFailed(outcome.error)
        if outcome.timed_out:
            raise BuildFailed(f"timed out after {self.timeout:g} s")
        if outcome.exit_code != 0 or outcome.output is None:
            raise BuildFailed(f"the build command exited with code {outcome.exit_code}")
        return outcome.output

    def _store_dependencies(self, key: str, built: Path, work: Path) -> Path:
        """Normalize the builder's output into the dependency cache (blocking)."""
        normalized = work / "deps.tar"
        archive.normalize(built, normalized)
        return self._store.put_deps(key, normalized)

    def _store_deployment(self, base: Path | None, top: Path, work: Path) -> ArchiveInfo:
        """``base`` with ``top`` laid over it, under deploy/, into the package store.

        Default builds: the cached dependencies, then the source. A build command:
        the source, then what the command left in $DEPLOY_PKG (it wins).
        """
        if top.name == "build-output.tar":  # the builder's own tar: bring it to the normalized form first
            normalized = work / "output.tar"
            archive.normalize(top, normalized)
            top = normalized
        deployment = work / "deploy.tar"
        info = archive.overlay(base, top, deployment, prefix="deploy", owner=0)
        self._store.put(deployment, info)
        return info


def _tail(lines: list[str]) -> str:
    text = "\n".join(lines) + "\n"
    if len(text) <= LOG_LIMIT:
        return text
    return "[... earlier lines dropped ...]\n" + text[-LOG_LIMIT:]


# requirements.txt lines that make the dependencies depend on other files of the source.
_PIP_LOCAL = re.compile(r"^\s*(-r|-c|-e|--requirement|--constraint|--editable)\b|^\s*(\.{1,2}/|file:)", re.MULTILINE)


def _refers_to_local_paths(source: Path) -> str:
    """Why the manifests name other files of the source (a reason, or "" when they do not)."""
    with tarfile.open(source) as tar:
        for name in ("requirements.txt", "package.json"):
            try:
                member = tar.getmember(name)
            except KeyError:
                continue
            if not member.isfile() or member.size > 1024 * 1024:
                return f"{name} is not a small regular file"
            handle = tar.extractfile(member)
            text = handle.read().decode("utf-8", errors="replace") if handle is not None else ""
            if name == "requirements.txt" and _PIP_LOCAL.search(text):
                return "requirements.txt names other files (-r, -c, -e or a local path)"
            if name == "package.json" and re.search(r'"(file|link):(?![^"]*\.(tgz|tar\.gz)")', text):
                return "package.json names a local folder (file: or link:)"
    return ""
