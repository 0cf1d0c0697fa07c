"""Packages in the registry: made, changed, rebuilt, deleted, and what the build queue reports.

The package half of the controller (faasd/control/controller.py mixes it in;
the same lock, store and catalog). A package's archives come in as the
uploads' temporary files: each is checked and normalized by
faasd/builds/archive.py in a worker thread, outside the lock, and moved into
the package store (faasd/builds/store.py), held there until the package that
names it is recorded. Then, under the lock: SQLite, the catalog's change, and the
build queue (:class:`BuildQueue`) for a package that has a source to build.

A package's life::

    create/update with a source ──▶ pending ──▶ running ──▶ succeeded
                                        ▲           │   └──▶ failed
    rebuild, or a restart ──────────────┘           │  (record_build, called
    create/update with a deployment only ──▶ succeeded   by the build queue)

The deployment archive a package had is kept while it is rebuilt and when a
rebuild fails: ``deploy_sha256`` is always the last one that was made or given.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from faasd.builds import archive
from faasd.builds.archive import ArchiveInfo
from faasd.builds.store import PackageStore
from faasd.cluster.journal import ChangeKind, recording
from faasd.control.catalog import Catalog
from faasd.core import validation as check
from faasd.core.entities import BuildStatus, Function, Package
from faasd.core.errors import BadRequest, Conflict, FaasdError, NotFound, PackageNotReady
from faasd.pool.manager import PoolManager
from faasd.store.registry import Store, utcnow

log = logging.getLogger(__name__)

MAX_BUILDCMD = 4096
DEPLOY_PREFIX = "deploy"  # where a deployment archive's tree is (builder.py writes them so)
NO_BUILDER = "no builder"  # the error of a package with a source on a faasd that cannot build


class BuildQueue(Protocol):
    """What builds packages (faasd/builds/builder.py); it reports back through ``record_build``."""

    def submit(self, package: Package) -> None:
        """Build ``package`` (a newer submit of the same name supersedes an older one)."""
        ...

    def cancel(self, name: str) -> None:
        """The package was deleted: forget it, and stop its build if one runs."""
        ...


def buildcmd_of(value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest("buildcmd must be a string (a shell command)")
    if len(value) > MAX_BUILDCMD or "\x00" in value:
        raise BadRequest(f"buildcmd must be at most {MAX_BUILDCMD} characters, without NUL")
    return value


def builder_of(value: Any) -> str:
    """An environment's builder image; "" takes it away."""
    if value == "":
        return ""
    if not isinstance(value, str) or not check.IMAGE_RE.fullmatch(value) or len(value) > 255:
        raise BadRequest(f"builder {value!r} is not a valid image reference (e.g. faasd/builder-python:latest)")
    return value


class PackageControl:
    """Package writes; the attributes are the controller's."""

    catalog: Catalog
    _lock: asyncio.Lock
    _store: Store
    _pool: PoolManager
    _package_store: PackageStore | None
    _builds: BuildQueue | None

    def _functions_gone(self, name: str) -> None: ...  # the controller's

    if TYPE_CHECKING:  # not a stub at run time: it would hide VersionControl's in the Controller

        def _versions_gone(self, names: set[str]) -> None: ...  # faasd/control/versions.py

    # -- helpers -------------------------------------------------------------------

    @property
    def _blobs(self) -> PackageStore:
        if self._package_store is None:
            raise RuntimeError("the controller was made without a package store")
        return self._package_store

    def get_package(self, name: str) -> Package:
        try:
            return self.catalog.packages[name]
        except KeyError:
            raise NotFound(f"package '{name}' not found") from None

    def _users(self, name: str) -> list[Function]:
        return self.catalog.functions_of(name)

    def _check_environment(self, name: str) -> None:
        if name not in self.catalog.environments:
            raise BadRequest(f"environment '{name}' does not exist (see GET /v1/environments)")

    def _check_buildable(self, environment: str) -> None:
        """A source can only be built where the environment has a builder image."""
        if self._builds is not None and not self.catalog.environments[environment].builder:
            raise BadRequest(
                f"environment '{environment}' has no builder image to build a source archive with; "
                f"give a ready deployment archive instead, or set a builder "
                f"(faas env update --name {environment} --builder IMAGE)"
            )

    def _build_status(self) -> tuple[BuildStatus, str]:
        """Where a package that needs a build starts."""
        if self._builds is None:
            return BuildStatus.failed, NO_BUILDER
        return BuildStatus.pending, ""

    def _package_blobs(self) -> set[str]:
        names = {sha for p in self.catalog.packages.values() for sha in (p.source_sha256, p.deploy_sha256)}
        names.discard("")
        return names

    async def _collect_packages(self) -> None:
        """Remove the archives no package names (under the lock: holds are released under it too)."""
        removed = await asyncio.to_thread(self._blobs.collect, self._package_blobs())
        if removed:
            log.debug("removed %d unused package archive(s)", removed)

    async def _release(self, infos: Iterable[ArchiveInfo | None]) -> None:
        """Let go of archives brought in; those no package names go (call under the lock)."""
        for info in infos:
            if info is not None:
                self._blobs.release(info.sha256)
        await self._collect_packages()

    async def _normalize(self, upload: Path, what: str) -> ArchiveInfo:
        """Check and normalize an uploaded archive into the package store; it is held there.

        A source is kept as its tree; a deployment under ``deploy/``, as the
        build queue makes them (faasd/builds/builder.py).
        """
        store = self._blobs
        target = await asyncio.to_thread(store.incoming)
        staged = await asyncio.to_thread(store.incoming) if what == "deployment" else None
        try:
            try:
                if staged is None:
                    info = await asyncio.to_thread(archive.normalize, upload, target, owner=0)
                else:
                    await asyncio.to_thread(archive.normalize, upload, staged, owner=0)
                    info = await asyncio.to_thread(archive.retag, staged, target, prefix=DEPLOY_PREFIX, owner=0)
            except FaasdError as exc:
                raise type(exc)(f"the {what} archive: {exc.message}", exc.headers) from None
            await asyncio.to_thread(store.put, target, info)
        finally:
            for path in (target, staged):
                if path is not None:
                    await asyncio.to_thread(path.unlink, missing_ok=True)
        return info

    async def _take_in(self, source: Path | None, deploy: Path | None) -> tuple[ArchiveInfo | None, ArchiveInfo | None]:
        """Both archives normalized and held, or neither (on any failure the first is let go)."""
        src = await self._normalize(source, "source") if source is not None else None
        try:
            dep = await self._normalize(deploy, "deployment") if deploy is not None else None
        except BaseException:
            if src is not None:
                async with self._lock:
                    await self._release([src])
            raise
        return src, dep

    def _put_package(self, package: Package) -> None:
        """Put ``package`` in the catalog (under the lock)."""
        self.catalog.put_package(package)

    def _submit(self, package: Package) -> None:
        if package.status is BuildStatus.pending and self._builds is not None:
            self._builds.submit(package)

    async def _new_revisions(self, functions: Iterable[Function], now: datetime) -> None:
        """Bump the revision of ``functions`` (under the lock): their package has a new build."""
        bumped = {fn.name: dataclasses.replace(fn, revision=fn.revision + 1, updated_at=now) for fn in functions}
        for fn in bumped.values():
            with recording(ChangeKind.function, fn.name):
                await self._store.update_function(fn)
        for fn in bumped.values():
            self.catalog.put_function(fn)

    def _tell_pool(self, users: Iterable[Function]) -> None:
        for fn in users:
            self._pool.function_changed(fn)

    # -- start -----------------------------------------------------------------------

    async def _start_packages(self) -> None:
        """After the registry is loaded: tidy the store, and build again what a stop interrupted.

        A package left ``pending`` or ``running`` by a faasd that was stopped or
        killed is set ``pending`` (build log and error cleared) and submitted again.
        """
        if self._package_store is None:
            return
        await asyncio.to_thread(self._blobs.clear_incoming)
        async with self._lock:
            await self._collect_packages()
            for package in sorted(self.catalog.packages.values(), key=lambda p: p.name):
                if package.status not in (BuildStatus.pending, BuildStatus.running):
                    continue
                status, error = self._build_status()
                again = dataclasses.replace(package, status=status, error=error, build_log="", updated_at=utcnow())
                with recording(ChangeKind.package, package.name):
                    await self._store.update_package(again)
                self._put_package(again)
                self._submit(again)
                log.info("package %s: build interrupted by a stop; %s again", package.name, status.value)

    # -- writes ------------------------------------------------------------------------

    async def create_package(
        self,
        name: Any,
        environment: Any,
        buildcmd: Any,
        source: Path | None,
        deploy: Path | None,
    ) -> Package:
        """A new package from uploaded archives (temporary files the caller removes afterwards)."""
        name = check.name(name)
        env = check.name(environment, "environment")
        cmd = buildcmd_of(buildcmd if buildcmd is not None else "")
        if source is None and deploy is None:
            raise BadRequest("give a source archive (source), a deployment archive (deploy), or both")

        def check_new() -> None:
            if name in self.catalog.packages:
                raise Conflict(f"package '{name}' exists already")
            self._check_environment(env)
            if source is not None:
                self._check_buildable(env)

        check_new()  # before the archives are read: a refusal costs nothing
        src, dep = await self._take_in(source, deploy)
        async with self._lock:
            try:
                check_new()
                status, error = self._build_status() if src is not None else (BuildStatus.succeeded, "")
                now = utcnow()
                package = Package(
                    name=name,
                    environment=env,
                    status=status,
                    source_sha256=src.sha256 if src else "",
                    source_size=src.size if src else 0,
                    deploy_sha256=dep.sha256 if dep else "",
                    deploy_size=dep.size if dep else 0,
                    buildcmd=cmd,
                    build_log="",
                    error=error,
                    created_at=now,
                    updated_at=now,
                )
                with recording(ChangeKind.package, name):
                    await self._store.add_package(package)
                self._put_package(package)
            finally:
                await self._release([src, dep])
            self._submit(package)
        log.info("package %s created (%s)", name, package.status.value)
        return package

    async def update_package(
        self,
        name: str,
        *,
        environment: Any = None,
        buildcmd: Any = None,
        source: Path | None = None,
        deploy: Path | None = None,
    ) -> Package:
        """Change a package's archives, build command or environment.

        A new source, build command or environment builds the package again (a
        source that is the one it has already, with nothing else changed, does
        not, unless its last build failed). A deployment archive given without a
        source is used as it is: the package is then ``succeeded``, as in Fission.
        """
        env = check.name(environment, "environment") if environment is not None else None
        cmd = buildcmd_of(buildcmd) if buildcmd is not None else None
        if env is None and cmd is None and source is None and deploy is None:
            raise BadRequest("nothing to change: give source, deploy, buildcmd or environment")

        def check_change(package: Package) -> None:
            if env is not None and env != package.environment:
                self._check_environment(env)
                users = self._users(name)
                if users:
                    raise Conflict(
                        f"package '{name}' is used by function(s) {', '.join(f.name for f in users)} "
                        f"of environment '{package.environment}'; its environment cannot change"
                    )

        check_change(self.get_package(name))
        src, dep = await self._take_in(source, deploy)
        async with self._lock:
            try:
                package = self.get_package(name)
                check_change(package)
                changed = dataclasses.replace(
                    package,
                    environment=env if env is not None else package.environment,
                    buildcmd=cmd if cmd is not None else package.buildcmd,
                    updated_at=utcnow(),
                )
                if src is not None:
                    changed = dataclasses.replace(changed, source_sha256=src.sha256, source_size=src.size)
                if dep is not None:
                    changed = dataclasses.replace(changed, deploy_sha256=dep.sha256, deploy_size=dep.size)
                rebuild = bool(changed.source_sha256) and (
                    changed.source_sha256 != package.source_sha256
                    or changed.buildcmd != package.buildcmd
                    or changed.environment != package.environment
                    or (src is not None and package.status is BuildStatus.failed)
                )
                if dep is not None and src is None:
                    rebuild = False
                    if package.status in (BuildStatus.pending, BuildStatus.running) and self._builds is not None:
                        self._builds.cancel(name)  # the archive given replaces what that build would make
                    changed = dataclasses.replace(changed, status=BuildStatus.succeeded, error="", build_log="")
                elif rebuild:
                    self._check_buildable(changed.environment)
                    status, error = self._build_status()
                    changed = dataclasses.replace(changed, status=status, error=error, build_log="")
                with recording(ChangeKind.package, name):
                    await self._store.update_package(changed)
                self._put_package(changed)
                if changed.deploy_sha256 != package.deploy_sha256:
                    # A deployment given as it is: new code for the package's functions at once.
                    await self._new_revisions(self._users(name), changed.updated_at)
            finally:
                await self._release([src, dep])
            if rebuild:
                self._submit(changed)
            users = self._users(name)
        self._tell_pool(users)
        return changed

    async def rebuild_package(self, name: str) -> Package:
        """Build a package's source again (after a failure, or when its builder changed)."""
        async with self._lock:
            package = self.get_package(name)
            if not package.source_sha256:
                raise BadRequest(f"package '{name}' has no source archive to build: it was given a deployment only")
            self._check_buildable(package.environment)
            status, error = self._build_status()
            again = dataclasses.replace(package, status=status, error=error, build_log="", updated_at=utcnow())
            with recording(ChangeKind.package, name):
                await self._store.update_package(again)
            self._put_package(again)
            self._submit(again)
            users = self._users(name)
        self._tell_pool(users)
        return again

    async def delete_package(self, name: str, force: bool = False) -> None:
        """Delete a package; with ``force`` also the functions that run it and their routes."""
        async with self._lock:
            self.get_package(name)
            users = self._users(name)
            if users and not force:
                raise Conflict(
                    f"package '{name}' is used by function(s) {', '.join(f.name for f in users)}; "
                    "delete them first or pass force=true"
                )
            gone = {f.name for f in users}
            routes = sorted({t.name for fn in gone for t in self.catalog.routes_to(fn)})
            with contextlib.ExitStack() as changes:  # the package, and the functions (with routes) that ran it
                for change in [(ChangeKind.package, name), *((ChangeKind.function, f) for f in sorted(gone))]:
                    changes.enter_context(recording(*change))
                await self._store.delete_package(name, sorted(gone), routes)
            self.catalog.drop_package(name)
            for function in gone:
                self.catalog.drop_function(function)  # with its routes
            self._versions_gone(gone)
            if self._builds is not None:
                self._builds.cancel(name)
            await self._collect_packages()
        for fn in users:
            self._functions_gone(fn.name)
        log.info("package %s deleted%s", name, f" with function(s) {', '.join(sorted(gone))}" if gone else "")

    async def record_build(
        self, name: str, *, status: BuildStatus, deploy: ArchiveInfo | None, log: str, error: str
    ) -> Package | None:
        """The build queue's report: ``running``, then ``succeeded`` or ``failed``.

        ``deploy`` (with ``succeeded``) is the deployment archive, in the package
        store already (held by its put; let go here). Returns the package as
        recorded, or None when it was deleted meanwhile.
        """
        async with self._lock:
            try:
                package = self.catalog.packages.get(name)
                if package is None:
                    return None
                now = utcnow()
                changed = dataclasses.replace(package, status=status, build_log=log, error=error, updated_at=now)
                if deploy is not None:
                    changed = dataclasses.replace(changed, deploy_sha256=deploy.sha256, deploy_size=deploy.size)
                with recording(ChangeKind.package, name):
                    await self._store.update_package(changed)
                self._put_package(changed)
                if deploy is not None and deploy.sha256 != package.deploy_sha256:
                    # New code for its functions: a new revision each, so calls
                    # from now on go to instances of the new build.
                    await self._new_revisions(self._users(name), now)
            finally:
                if deploy is not None:
                    await self._release([deploy])
            users = self._users(name)
        self._tell_pool(users)
        return changed

    # -- reads -------------------------------------------------------------------------

    def deploy_for(self, fn: Function) -> Path:
        """The deployment archive a package's function runs (the pool's ``load_deploy``).

        While a package is built again, and after a later build failed, its last
        good deployment keeps serving (a typo in a redeploy does not take the
        function down); with none at all, the calls get a 503 saying why.
        """
        package = self.catalog.packages.get(fn.package)
        if package is None:
            raise PackageNotReady(f"function '{fn.name}' runs package '{fn.package}', which does not exist")
        if package.deploy_sha256:
            return self._blobs.path(package.deploy_sha256)
        if package.status is BuildStatus.failed:
            raise PackageNotReady(
                f"package '{package.name}' of function '{fn.name}' failed to build: {package.error} "
                f"(faas pkg info --name {package.name})"
            )
        if not package.deploy_sha256:
            raise PackageNotReady(
                f"package '{package.name}' of function '{fn.name}' is not built yet (status {package.status.value})",
                {"Retry-After": "5"},
            )
        return self._blobs.path(package.deploy_sha256)

    def package_source(self, name: str) -> Path:
        """The source archive as stored (a tar), for GET /v1/packages/{name}/source."""
        package = self.get_package(name)
        if not package.source_sha256:
            raise NotFound(f"package '{name}' was made from a deployment archive and has no source (GET .../deploy)")
        return self._blobs.path(package.source_sha256)

    def package_deploy(self, name: str) -> Path:
        """The deployment archive's file (a tar), for GET /v1/packages/{name}/deploy."""
        package = self.get_package(name)
        if not package.deploy_sha256:
            raise NotFound(
                f"package '{name}' has no deployment archive yet (status {package.status.value}; "
                f"faas pkg info --name {name})"
            )
        return self._blobs.path(package.deploy_sha256)
