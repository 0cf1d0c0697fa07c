"""Packages in the registry: the controller with a fake build queue, the package store, and the admin API.

The controller runs on a real registry (SQLite, PostgreSQL) and a real package store; the build
queue is a fake that records what it was asked, and the tests play its part
by calling record_build. The API tests run the admin app in-process
(aiohttp's test client) over the same controller.
"""

from __future__ import annotations

import dataclasses
import io
import os
import tarfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from faasd.app import error_middleware
from faasd.builds import archive
from faasd.builds.archive import ArchiveInfo
from faasd.builds.store import PackageStore
from faasd.control.api import AdminApi
from faasd.control.controller import STOCK_BUILDERS, Controller
from faasd.control.packages import NO_BUILDER
from faasd.core.entities import MAX_PACKAGE_BYTES, BuildStatus, Function, Package
from faasd.core.errors import BadRequest, Conflict, NotFound, PackageNotReady, PayloadTooLarge
from faasd.pool.manager import PoolManager
from faasd.store.codestore import CodeStore
from faasd.store.registry import Store
from tests.fakes import FakeBackend

STOCK = {"nodejs": "faasd/runtime-nodejs:latest", "python": "faasd/runtime-python:latest"}
MAIN_PY = "def main():\n    return 'hello from a package'\n"
HELLO = "module.exports = async () => 'hi';\n"


@dataclass
class FakeBuilds:
    """The build queue: records what the controller submits and cancels."""

    submitted: list[Package] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def submit(self, package: Package) -> None:
        self.submitted.append(package)

    def cancel(self, name: str) -> None:
        self.cancelled.append(name)


class Registry:
    """Opens (and reopens) a controller on one state dir, as faasd does at start."""

    def __init__(self, root: Path, database: str = "") -> None:
        self.root = root
        self.database = database or f"sqlite:///{root / 'faasd.db'}"
        self.stores: list[Store] = []
        self.pools: list[PoolManager] = []
        self.builds = FakeBuilds()
        self.changed: list[Function] = []  # every function_changed the pool was told, in order

    @property
    def packages(self) -> Path:
        return self.root / "packages"

    async def open(self, builds: FakeBuilds | None = None, with_builds: bool = True) -> Controller:
        if builds is not None:
            self.builds = builds
        store = await Store.open(self.database)
        codes = CodeStore(self.root / "code", store.blobs)
        pool = PoolManager(FakeBackend(), lambda fn: codes.get(fn.code_sha256), idle_timeout=120)
        told = pool.function_changed

        def function_changed(fn: Function) -> None:
            self.changed.append(fn)
            told(fn)

        pool.function_changed = function_changed  # type: ignore[method-assign]
        controller = Controller(
            store,
            codes,
            pool,
            default_poolsize=0,
            max_code_bytes=10_000,
            packages=PackageStore(self.packages, store.blobs),
            builds=self.builds if with_builds else None,
        )
        await controller.start(STOCK, self.root / "initialized")
        self.stores.append(store)
        self.pools.append(pool)
        return controller

    def blobs(self) -> list[str]:
        return sorted(p.name for p in self.packages.iterdir() if p.is_file())

    async def close(self) -> None:
        for pool in self.pools:
            await pool.shutdown()
        for store in self.stores:
            await store.close()


@pytest.fixture
async def registry(tmp_path: Path, database: str) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path / "state", database)
    yield reg
    await reg.close()


def make_zip(path: Path, files: dict[str, str | bytes]) -> Path:
    """A zip as `zip -r` makes it: an entry for each folder too."""
    with zipfile.ZipFile(path, "w") as zf:
        folders = sorted({name.rsplit("/", 1)[0] + "/" for name in files if "/" in name})
        for folder in folders:
            zf.writestr(folder, b"")
        for name, content in files.items():
            zf.writestr(name, content)
    return path


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return path


def tar_names(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


@pytest.fixture
def app_zip(uploads: Path) -> Path:
    return make_zip(uploads / "app.zip", {"app/main.py": MAIN_PY, "app/requirements.txt": "six\n"})


@pytest.fixture
def deploy_zip(uploads: Path) -> Path:
    return make_zip(uploads / "built.zip", {"main.py": MAIN_PY, "six.py": "# a dependency\n"})


def built_deploy(controller: Controller, source_sha256: str, work: Path) -> ArchiveInfo:
    """What the build queue does on success: the deployment, under deploy/, put in the store."""
    store = controller._blobs
    work.mkdir(exist_ok=True)
    dest = work / "deploy.tar"
    info = archive.overlay(None, store.path(source_sha256), dest, prefix="deploy", owner=0)
    store.put(dest, info)
    return info


# -- the stock environments get builders -----------------------------------------------


async def test_stock_environments_have_their_builders(registry: Registry) -> None:
    c = await registry.open()
    assert {name: env.builder for name, env in c.catalog.environments.items()} == STOCK_BUILDERS
    assert c.catalog.environments["python"].to_json()["builder"] == "faasd/builder-python:latest"


async def test_an_environments_builder_is_set_changed_and_cleared(registry: Registry) -> None:
    c = await registry.open()
    env = await c.create_environment({"name": "py2", "image": "me/py:1", "builder": "me/py-builder:1"})
    assert env.builder == "me/py-builder:1"
    assert (await c.update_environment("py2", {"builder": "me/py-builder:2"})).builder == "me/py-builder:2"
    assert (await c.update_environment("py2", {"poolsize": 1})).builder == "me/py-builder:2"
    reopened = await registry.open()
    assert reopened.catalog.environments["py2"].builder == "me/py-builder:2"
    assert (await reopened.update_environment("py2", {"builder": ""})).builder == ""
    with pytest.raises(BadRequest, match="builder 'Not An Image' is not a valid image reference"):
        await reopened.create_environment({"name": "e", "image": "x:1", "builder": "Not An Image"})
    with pytest.raises(BadRequest, match="builder 5 is not a valid image reference"):
        await reopened.update_environment("py2", {"builder": 5})


# -- creating ---------------------------------------------------------------------------------


async def test_a_package_from_a_deployment_only_is_ready_at_once(registry: Registry, deploy_zip: Path) -> None:
    c = await registry.open()
    package = await c.create_package("site", "python", "", None, deploy_zip)

    assert (package.status, package.source_sha256, package.error) == (BuildStatus.succeeded, "", "")
    assert registry.builds.submitted == []
    assert package.deploy_size == c.deploy_for(_fn("site")).stat().st_size
    # Kept as the build queue keeps a deployment: its tree under deploy/, owned by root.
    assert tar_names(c.package_deploy("site")) == ["deploy", "deploy/main.py", "deploy/six.py"]
    assert registry.blobs() == [package.deploy_sha256]
    assert deploy_zip.is_file()  # noqa: ASYNC240 - the upload is the caller's to remove
    assert list((registry.packages / "incoming").iterdir()) == []


async def test_a_package_with_a_source_is_pending_and_submitted(registry: Registry, app_zip: Path) -> None:
    c = await registry.open()
    package = await c.create_package("app", "python", "pip install -r requirements.txt", app_zip, None)

    assert package.status is BuildStatus.pending
    assert registry.builds.submitted == [package]
    assert c.catalog.packages["app"] == package
    # The single top-level directory of the zip is stripped: the source is the tree itself.
    assert tar_names(c._blobs.path(package.source_sha256)) == ["main.py", "requirements.txt"]
    with pytest.raises(NotFound, match="package 'app' has no deployment archive yet"):
        c.package_deploy("app")


async def test_the_same_tree_in_another_container_format_is_the_same_source(
    registry: Registry, app_zip: Path, uploads: Path
) -> None:
    c = await registry.open()
    first = await c.create_package("a", "python", "", app_zip, None)
    tar_path = uploads / "app.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, text in (("main.py", MAIN_PY), ("requirements.txt", "six\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            info.mtime = 12345
            tar.addfile(info, io.BytesIO(text.encode()))
    second = await c.create_package("b", "python", "", tar_path, None)
    assert first.source_sha256 == second.source_sha256
    assert registry.blobs() == [first.source_sha256]


async def test_without_a_build_queue_a_source_fails_at_once(registry: Registry, app_zip: Path) -> None:
    c = await registry.open(with_builds=False)
    package = await c.create_package("app", "python", "", app_zip, None)
    assert (package.status, package.error) == (BuildStatus.failed, NO_BUILDER)
    with pytest.raises(BadRequest, match="no source archive to build"):
        await c.rebuild_package((await c.create_package("site", "python", "", None, app_zip)).name)


async def test_bad_input_is_refused_and_nothing_is_made(registry: Registry, app_zip: Path, uploads: Path) -> None:
    c = await registry.open()
    await c.create_environment({"name": "plain", "image": "me/img:1"})
    with pytest.raises(BadRequest, match="give a source archive"):
        await c.create_package("p", "python", "", None, None)
    with pytest.raises(BadRequest, match="name 'No_Caps' is invalid"):
        await c.create_package("No_Caps", "python", "", app_zip, None)
    with pytest.raises(BadRequest, match="environment 'nope' does not exist"):
        await c.create_package("p", "nope", "", app_zip, None)
    with pytest.raises(BadRequest, match="environment 'plain' has no builder image"):
        await c.create_package("p", "plain", "", app_zip, None)
    with pytest.raises(BadRequest, match="buildcmd must be at most 4096 characters"):
        await c.create_package("p", "python", "x" * 4097, app_zip, None)
    with pytest.raises(BadRequest, match="the source archive: not a zip or tar archive"):
        await c.create_package("p", "python", "", _text(uploads), None)
    assert c.catalog.packages == {}
    assert registry.blobs() == []
    assert registry.builds.submitted == []
    # A deployment archive needs no builder.
    assert (await c.create_package("p", "plain", "", None, app_zip)).status is BuildStatus.succeeded


def _text(folder: Path) -> Path:
    path = folder / "notes.txt"
    path.write_text("not an archive\n")
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_member("ok.py"), _member("../evil.py")], "archive member '../evil.py' leaves the package"),
        ([_member("/etc/cron.d/evil")], "archive member '/etc/cron.d/evil' is an absolute path"),
        ([_member("ok.py"), _member("link", tarfile.SYMTYPE, "../../etc/passwd")], "link"),
        ([_member("ok.py"), _member("abs", tarfile.SYMTYPE, "/etc/passwd")], "abs"),
    ],
)
async def test_an_archive_that_would_write_outside_the_package_is_400_and_nothing_is_kept(
    registry: Registry, uploads: Path, members: list[tarfile.TarInfo], message: str
) -> None:
    c = await registry.open()
    bad = make_tar(uploads / "bad.tar", members)
    for source, deploy in ((bad, None), (None, bad)):
        with pytest.raises(BadRequest, match="archive: ") as caught:
            await c.create_package("evil", "python", "", source, deploy)
        assert caught.value.status == 400
        assert message in caught.value.message
    assert c.catalog.packages == {}
    assert registry.blobs() == []
    assert list((registry.packages / "incoming").iterdir()) == []


async def test_a_compressed_archive_over_the_unpacked_limit_is_413(registry: Registry, uploads: Path) -> None:
    c = await registry.open()
    bomb = uploads / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf, zf.open("zeros", "w") as out:
        chunk = bytes(1 << 20)
        for _ in range(MAX_PACKAGE_BYTES // len(chunk) + 1):
            out.write(chunk)
    assert bomb.stat().st_size < 2 * 1024 * 1024
    with pytest.raises(PayloadTooLarge, match=f"over the limit of {MAX_PACKAGE_BYTES} bytes unpacked"):
        await c.create_package("bomb", "python", "", bomb, None)
    assert c.catalog.packages == {}
    assert registry.blobs() == []


async def test_a_second_package_of_the_same_name_is_409(registry: Registry, app_zip: Path) -> None:
    c = await registry.open()
    await c.create_package("app", "python", "", app_zip, None)
    with pytest.raises(Conflict, match="package 'app' exists already"):
        await c.create_package("app", "python", "", app_zip, None)
    assert len(registry.builds.submitted) == 1


# -- builds: what the queue reports ---------------------------------------------------------


async def test_a_build_goes_running_then_succeeded_and_survives_a_restart(
    registry: Registry, app_zip: Path, tmp_path: Path
) -> None:
    c = await registry.open()
    package = await c.create_package("app", "python", "", app_zip, None)
    fn = await c.create_function({"name": "app", "package": "app", "entrypoint": "main.main"})
    registry.changed.clear()

    running = await c.record_build("app", status=BuildStatus.running, deploy=None, log="", error="")
    assert running is not None
    assert c.catalog.packages["app"].status is BuildStatus.running
    assert registry.changed == [fn]  # the pool hears of it; the function itself is unchanged
    with pytest.raises(PackageNotReady, match="is not built yet"):
        c.deploy_for(fn)

    info = built_deploy(c, package.source_sha256, tmp_path / "work")
    done = await c.record_build(
        "app", status=BuildStatus.succeeded, deploy=info, log="installing six\nbuild succeeded\n", error=""
    )
    assert done is not None
    assert (done.status, done.deploy_sha256, done.deploy_size) == (BuildStatus.succeeded, info.sha256, info.size)
    assert c.catalog.packages["app"] == done
    # A new build is new code: the function gets a new revision, so calls go to new instances.
    rebuilt = c.catalog.functions["app"]
    assert rebuilt.revision == fn.revision + 1
    assert dataclasses.replace(rebuilt, revision=fn.revision, updated_at=fn.updated_at) == fn
    assert registry.changed == [fn, rebuilt]
    assert (await registry.open(FakeBuilds())).catalog.functions["app"].revision == fn.revision + 1
    assert c.deploy_for(rebuilt) == registry.packages / info.sha256
    assert registry.blobs() == sorted([package.source_sha256, info.sha256])

    reopened = await registry.open(FakeBuilds())
    again = reopened.catalog.packages["app"]
    assert (again.status, again.deploy_sha256, again.build_log) == (
        BuildStatus.succeeded,
        info.sha256,
        "installing six\nbuild succeeded\n",
    )
    assert registry.builds.submitted == []  # a finished build is not done again
    assert registry.blobs() == sorted([package.source_sha256, info.sha256])


async def test_a_failed_build_keeps_its_log_and_error_and_the_last_deployment(
    registry: Registry, app_zip: Path, tmp_path: Path
) -> None:
    c = await registry.open()
    package = await c.create_package("app", "python", "", app_zip, None)
    fn = await c.create_function({"name": "app", "package": "app"})
    first = built_deploy(c, package.source_sha256, tmp_path / "work")
    await c.record_build("app", status=BuildStatus.succeeded, deploy=first, log="ok\n", error="")

    rebuilt = await c.rebuild_package("app")
    assert (rebuilt.status, rebuilt.build_log, rebuilt.deploy_sha256) == (BuildStatus.pending, "", first.sha256)
    assert registry.builds.submitted[-1] == rebuilt
    assert c.deploy_for(fn) == registry.packages / first.sha256  # the last deployment serves meanwhile

    await c.record_build("app", status=BuildStatus.running, deploy=None, log="", error="")
    failed = await c.record_build(
        "app", status=BuildStatus.failed, deploy=None, log="ERROR: no matching distribution\n", error="exit code 1"
    )
    assert failed is not None
    assert (failed.status, failed.error, failed.deploy_sha256) == (BuildStatus.failed, "exit code 1", first.sha256)
    # The last good deployment keeps serving after a failed rebuild.
    assert c.deploy_for(fn) == registry.packages / first.sha256

    reopened = await registry.open(FakeBuilds())
    kept = reopened.catalog.packages["app"]
    assert (kept.status, kept.error, kept.build_log) == (
        BuildStatus.failed,
        "exit code 1",
        "ERROR: no matching distribution\n",
    )
    assert kept.to_json()["build_log"] == "ERROR: no matching distribution\n"
    assert "build_log" not in kept.to_json(with_log=False)


async def test_a_report_for_a_deleted_package_is_none_and_its_archive_goes(
    registry: Registry, app_zip: Path, tmp_path: Path
) -> None:
    c = await registry.open()
    package = await c.create_package("app", "python", "", app_zip, None)
    info = built_deploy(c, package.source_sha256, tmp_path / "work")  # made while the package is deleted
    await c.delete_package("app")
    assert registry.builds.cancelled == ["app"]
    assert registry.blobs() == [info.sha256]  # held: the queue has not reported yet

    assert await c.record_build("app", status=BuildStatus.succeeded, deploy=info, log="", error="") is None
    assert registry.blobs() == []
    assert await c.record_build("app", status=BuildStatus.running, deploy=None, log="", error="") is None


async def test_a_restart_submits_again_what_a_stop_interrupted(
    registry: Registry, app_zip: Path, deploy_zip: Path
) -> None:
    c = await registry.open()
    await c.create_package("waiting", "python", "", app_zip, None)
    await c.create_package("midway", "python", "make", app_zip, None)
    await c.create_package("site", "python", "", None, deploy_zip)
    await c.create_package("broken", "python", "", app_zip, None)
    await c.record_build("midway", status=BuildStatus.running, deploy=None, log="half a log", error="")
    await c.record_build("broken", status=BuildStatus.failed, deploy=None, log="", error="exit code 2")

    builds = FakeBuilds()
    reopened = await registry.open(builds)

    assert sorted(p.name for p in builds.submitted) == ["midway", "waiting"]
    for package in builds.submitted:
        assert (package.status, package.build_log, package.error) == (BuildStatus.pending, "", "")
        assert reopened.catalog.packages[package.name] == package
    assert reopened.catalog.packages["midway"].buildcmd == "make"
    assert reopened.catalog.packages["broken"].status is BuildStatus.failed
    # Without a build queue, they fail instead of waiting for ever.
    stopped = await registry.open(FakeBuilds(), with_builds=False)
    assert {n: p.error for n, p in stopped.catalog.packages.items() if p.status is BuildStatus.failed} == {
        "broken": "exit code 2",
        "midway": NO_BUILDER,
        "waiting": NO_BUILDER,
    }


async def test_a_restart_clears_leftovers_and_unused_archives(registry: Registry, deploy_zip: Path) -> None:
    c = await registry.open()
    kept = await c.create_package("site", "python", "", None, deploy_zip)
    (registry.packages / ("0" * 64)).write_bytes(b"an orphan")
    (registry.packages / "incoming" / "in-crashed.tar").write_bytes(b"half an upload")
    (registry.packages / "deps").mkdir(exist_ok=True)
    (registry.packages / "deps" / "k.tar").write_bytes(b"cached dependencies")
    await registry.open()
    assert registry.blobs() == [kept.deploy_sha256]
    assert list((registry.packages / "incoming").iterdir()) == []
    assert (registry.packages / "deps" / "k.tar").exists()


# -- updating, rebuilding, deleting ---------------------------------------------------------


async def test_update_builds_again_only_when_something_to_build_changed(
    registry: Registry, app_zip: Path, uploads: Path, tmp_path: Path
) -> None:
    c = await registry.open()
    package = await c.create_package("app", "python", "", app_zip, None)
    info = built_deploy(c, package.source_sha256, tmp_path / "work")
    await c.record_build("app", status=BuildStatus.succeeded, deploy=info, log="", error="")
    submitted = len(registry.builds.submitted)

    same = await c.update_package("app", source=app_zip)
    assert same.status is BuildStatus.succeeded
    assert len(registry.builds.submitted) == submitted

    changed = make_zip(uploads / "v2.zip", {"main.py": MAIN_PY + "# v2\n"})
    updated = await c.update_package("app", source=changed)
    assert (updated.status, updated.deploy_sha256) == (BuildStatus.pending, info.sha256)
    assert updated.source_sha256 != package.source_sha256
    assert registry.builds.submitted[-1] == updated
    assert registry.blobs() == sorted([updated.source_sha256, info.sha256])  # the old source went

    cmd = await c.update_package("app", buildcmd="./build.sh")
    assert (cmd.status, cmd.buildcmd) == (BuildStatus.pending, "./build.sh")
    assert registry.builds.submitted[-1] == cmd

    # A deployment given without a source is used as it is, and supersedes the build.
    given = await c.update_package("app", deploy=changed)
    assert (given.status, given.source_sha256) == (BuildStatus.succeeded, updated.source_sha256)
    assert registry.builds.cancelled == ["app"]
    assert tar_names(c.package_deploy("app")) == ["deploy", "deploy/main.py"]

    with pytest.raises(BadRequest, match="nothing to change"):
        await c.update_package("app")
    with pytest.raises(NotFound, match="package 'ghost' not found"):
        await c.update_package("ghost", buildcmd="x")


async def test_a_used_packages_environment_cannot_change(registry: Registry, app_zip: Path) -> None:
    c = await registry.open()
    await c.create_package("app", "python", "", app_zip, None)
    await c.create_environment({"name": "py2", "image": "me/py:1", "builder": "me/b:1"})
    moved = await c.update_package("app", environment="py2")
    assert (moved.environment, moved.status) == ("py2", BuildStatus.pending)
    await c.create_function({"name": "f", "package": "app"})
    with pytest.raises(Conflict, match="package 'app' is used by function\\(s\\) f of environment 'py2'"):
        await c.update_package("app", environment="python")
    with pytest.raises(Conflict, match="environment 'py2' is used by"):
        await c.delete_environment("py2")
    await c.delete_function("f")
    with pytest.raises(Conflict, match="environment 'py2' is used by package\\(s\\) app"):
        await c.delete_environment("py2")


async def test_delete_refuses_a_used_package_unless_forced(registry: Registry, app_zip: Path, tmp_path: Path) -> None:
    c = await registry.open()
    package = await c.create_package("app", "python", "", app_zip, None)
    info = built_deploy(c, package.source_sha256, tmp_path / "work")
    await c.record_build("app", status=BuildStatus.succeeded, deploy=info, log="", error="")
    await c.create_function({"name": "app", "package": "app"})
    await c.create_function({"name": "other", "package": "app", "entrypoint": "main.other"})
    await c.create_trigger({"method": "GET", "url": "/app", "function": "app"})
    await c.create_function({"name": "plain", "environment": "python", "code": MAIN_PY})

    with pytest.raises(Conflict, match=r"package 'app' is used by function\(s\) app, other; .*force=true"):
        await c.delete_package("app")
    assert "app" in c.catalog.packages

    await c.delete_package("app", force=True)
    assert sorted(c.catalog.functions) == ["plain"]
    assert c.catalog.triggers == {}
    assert c.catalog.packages == {}
    assert registry.blobs() == []  # neither archive is used any more
    reopened = await registry.open()
    assert sorted(reopened.catalog.functions) == ["plain"]
    assert (reopened.catalog.packages, reopened.catalog.triggers) == ({}, {})
    with pytest.raises(NotFound, match="package 'app' not found"):
        await reopened.delete_package("app")


async def test_an_archive_two_packages_share_stays_while_one_uses_it(registry: Registry, deploy_zip: Path) -> None:
    c = await registry.open()
    one = await c.create_package("one", "python", "", None, deploy_zip)
    await c.create_package("two", "python", "", None, deploy_zip)
    await c.delete_package("one")
    assert registry.blobs() == [one.deploy_sha256]
    await c.delete_package("two")
    assert registry.blobs() == []


# -- functions that run a package ------------------------------------------------------------


def _fn(package: str) -> Function:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return Function(package, "python", "", "", 60, "", 0, 1, now, now, package=package)


async def test_a_function_of_a_package_takes_the_packages_environment_and_no_code(
    registry: Registry, deploy_zip: Path
) -> None:
    c = await registry.open()
    await c.create_package("site", "python", "", None, deploy_zip)
    fn = await c.create_function({"name": "site", "package": "site", "entrypoint": "pkg.mod.func"})
    assert (fn.environment, fn.package, fn.entrypoint) == ("python", "site", "pkg.mod.func")
    assert (fn.code_sha256, fn.code_size, fn.filename) == ("", 0, "")
    assert fn.to_json()["package"] == "site"
    explicit = await c.create_function({"name": "f2", "package": "site", "environment": "python"})
    assert explicit.environment == "python"
    with pytest.raises(NotFound, match="function 'site' runs package 'site'"):
        c.function_code("site")
    reopened = await registry.open()
    assert reopened.catalog.functions["site"] == fn


async def test_a_function_of_a_package_is_checked(registry: Registry, deploy_zip: Path) -> None:
    c = await registry.open()
    await c.create_package("site", "python", "", None, deploy_zip)
    with pytest.raises(BadRequest, match="package 'ghost' does not exist"):
        await c.create_function({"name": "f", "package": "ghost"})
    with pytest.raises(BadRequest, match=r"give either code .* or package, not both"):
        await c.create_function({"name": "f", "package": "site", "code": MAIN_PY, "environment": "python"})
    with pytest.raises(BadRequest, match="environment 'nodejs' is not package 'site''s environment 'python'"):
        await c.create_function({"name": "f", "package": "site", "environment": "nodejs"})
    with pytest.raises(BadRequest, match="filename is for a function of one source file"):
        await c.create_function({"name": "f", "package": "site", "filename": "x.py"})
    with pytest.raises(BadRequest, match="entrypoint '1x' is invalid"):
        await c.create_function({"name": "f", "package": "site", "entrypoint": "1x"})
    with pytest.raises(BadRequest, match="code is required"):
        await c.create_function({"name": "f", "environment": "python"})
    assert "f" not in c.catalog.functions


async def test_a_function_moves_between_one_file_and_a_package(registry: Registry, deploy_zip: Path) -> None:
    c = await registry.open()
    await c.create_package("site", "python", "", None, deploy_zip)
    plain = await c.create_function({"name": "f", "environment": "nodejs", "code": HELLO, "entrypoint": "handler"})

    with pytest.raises(BadRequest, match="is not package 'site''s environment 'python'"):
        await c.update_function("f", {"package": "site", "environment": "nodejs"})
    packaged = await c.update_function("f", {"package": "site", "entrypoint": ""})
    assert (packaged.package, packaged.environment, packaged.code_sha256, packaged.filename) == (
        "site",
        "python",
        "",
        "",
    )
    assert packaged.revision == plain.revision + 1
    # The file is no longer the function's, but its version 1 still holds it (a rollback needs it).
    assert [p.name for p in (registry.root / "code").iterdir()] == [plain.code_sha256]

    with pytest.raises(BadRequest, match="runs package 'site' of environment 'python'; give another package"):
        await c.update_function("f", {"environment": "nodejs"})
    with pytest.raises(BadRequest, match="runs package 'site'; give code"):
        await c.update_function("f", {"package": ""})
    with pytest.raises(BadRequest, match="filename is for a function of one source file"):
        await c.update_function("f", {"filename": "x.py"})
    assert (await c.update_function("f", {"timeout": 5, "secrets": {"K": "v"}})).package == "site"

    back = await c.update_function("f", {"code": HELLO, "environment": "nodejs"})
    assert (back.package, back.filename, back.environment) == ("", "f.js", "nodejs")
    assert c.function_code("f").decode() == HELLO


# -- the package store ---------------------------------------------------------------------


def _archive(store: PackageStore, tmp_path: Path, text: str) -> tuple[Path, ArchiveInfo]:
    source = make_zip(tmp_path / f"{abs(hash(text))}.zip", {"f.txt": text})
    dest = store.incoming()
    return dest, archive.normalize(source, dest)


def test_the_store_moves_archives_in_by_their_digest(tmp_path: Path) -> None:
    store = PackageStore(tmp_path / "packages")
    path, info = _archive(store, tmp_path, "one")
    assert store.put(path, info) == info.sha256
    assert not path.exists()
    assert store.has(info.sha256) and store.path(info.sha256).stat().st_size == info.size
    again, same = _archive(store, tmp_path, "one")
    assert store.put(again, same) == info.sha256 and not again.exists()
    assert not store.has("f" * 64) and not store.has("../x")
    with pytest.raises(ValueError, match="not a sha256"):
        store.path("../../etc/passwd")


def test_collect_spares_what_is_kept_and_what_is_held(tmp_path: Path) -> None:
    store = PackageStore(tmp_path / "packages")
    kept_path, kept = _archive(store, tmp_path, "kept")
    held_path, held = _archive(store, tmp_path, "held")
    store.put(kept_path, kept)
    store.release(kept.sha256)
    store.put(held_path, held)  # put, not yet recorded by the registry
    assert store.collect({kept.sha256}) == 0
    assert store.has(held.sha256)
    store.release(held.sha256)
    assert store.collect({kept.sha256}) == 1
    assert not store.has(held.sha256) and store.has(kept.sha256)


def test_the_dependency_cache_has_its_own_corner(tmp_path: Path) -> None:
    store = PackageStore(tmp_path / "packages")
    key = "a" * 64
    assert not store.has_deps(key)
    store.deps_path(key).write_bytes(b"tar")
    assert store.has_deps(key)
    assert store.collect(set()) == 0
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="not a dependency cache key"):
            store.deps_path(bad)


# -- the admin API ---------------------------------------------------------------------------


@pytest.fixture
async def api(registry: Registry, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    controller = await registry.open()
    # A small client_max_size: uploads are streamed, never read whole, so it does not apply to them.
    app = web.Application(middlewares=[error_middleware], client_max_size=4096)
    AdminApi(
        controller, mock.MagicMock(), mock.MagicMock(), upload_dir=tmp_path / "tmp", max_package_bytes=64 * 1024
    ).add_routes(app)
    app[CONTROLLER] = controller
    async with TestClient(TestServer(app)) as client:
        yield client


CONTROLLER = web.AppKey("controller", Controller)


def form(**fields: str | Path) -> FormData:
    data = FormData(default_to_multipart=True)
    for name, value in fields.items():
        if isinstance(value, Path):
            data.add_field(name, value.read_bytes(), filename=value.name, content_type="application/zip")
        else:
            data.add_field(name, value)
    return data


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "tmp"
    yield folder
    assert not folder.exists() or list(folder.iterdir()) == []  # every upload file is removed


async def test_the_api_creates_lists_gets_downloads_and_deletes(
    api: TestClient[Any, Any], uploads: Path, app_zip: Path, leftovers: Path
) -> None:
    # Incompressible, and more than the app's client_max_size.
    deploy_zip = make_zip(uploads / "site.zip", {"main.py": MAIN_PY, "blob.bin": os.urandom(32 * 1024)})
    created = await api.post("/v1/packages", data=form(name="site", environment="python", deploy=deploy_zip))
    assert created.status == 201, await created.text()
    body = await created.json()
    assert (body["name"], body["status"], body["build_log"]) == ("site", "succeeded", "")
    assert body["deploy_size"] > 32 * 1024

    building = await api.post(
        "/v1/packages", data=form(name="app", environment="python", buildcmd="make", source=app_zip)
    )
    assert building.status == 201
    assert (await building.json())["status"] == "pending"

    listed = (await (await api.get("/v1/packages")).json())["items"]
    assert [p["name"] for p in listed] == ["app", "site"]
    assert all("build_log" not in p for p in listed)
    one = await (await api.get("/v1/packages/app")).json()
    assert (one["buildcmd"], one["build_log"]) == ("make", "")

    tar = await api.get("/v1/packages/site/deploy")
    assert tar.status == 200
    assert tar.headers["Content-Type"] == "application/x-tar"
    data = await tar.read()
    assert data == api.app[CONTROLLER].package_deploy("site").read_bytes()
    assert (await api.get("/v1/packages/app/deploy")).status == 404

    rebuilt = await api.post("/v1/packages/app/rebuild")
    assert rebuilt.status == 202
    patched = await api.patch("/v1/packages/app", data=form(buildcmd="make all"))
    assert (patched.status, (await patched.json())["buildcmd"]) == (200, "make all")
    renamed = await api.patch("/v1/packages/app", data=form(name="other", buildcmd="x"))
    assert renamed.status == 400

    assert (await api.delete("/v1/packages/site")).status == 204
    assert (await api.get("/v1/packages/site")).status == 404
    assert (await api.delete("/v1/packages/site")).status == 404


async def test_the_api_answers_409_for_a_used_package_and_deletes_it_with_force(
    api: TestClient[Any, Any], deploy_zip: Path, leftovers: Path
) -> None:
    await api.post("/v1/packages", data=form(name="site", environment="python", deploy=deploy_zip))
    made = await api.post("/v1/functions", json={"name": "site", "package": "site", "entrypoint": "main.main"})
    assert made.status == 201, await made.text()
    assert (await made.json())["code_size"] == 0
    refused = await api.delete("/v1/packages/site")
    assert refused.status == 409
    assert "used by function(s) site" in (await refused.json())["error"]["message"]
    code = await api.get("/v1/functions/site/code")
    assert code.status == 404
    assert (await api.delete("/v1/packages/site?force=true")).status == 204
    assert (await api.get("/v1/functions/site")).status == 404


async def test_an_upload_over_the_limit_is_413_and_not_read_whole(
    api: TestClient[Any, Any], uploads: Path, leftovers: Path
) -> None:
    big = uploads / "big.zip"
    big.write_bytes(b"PK\x03\x04" + bytes(200 * 1024))
    answer = await api.post("/v1/packages", data=form(name="big", environment="python", source=big))
    assert answer.status == 413
    message = (await answer.json())["error"]["message"]
    assert message == "the source archive is over the limit of 65,536 bytes"
    assert api.app[CONTROLLER].catalog.packages == {}


@pytest.mark.parametrize(
    ("send", "message"),
    [
        ({"json": {"name": "x"}}, "send a package as multipart/form-data"),
        ({"data": form(name="x", environment="python", colour="red")}, "unknown field 'colour'"),
        ({"data": form(name="x", environment="python")}, "give a source archive"),
    ],
)
async def test_a_malformed_upload_is_400(
    api: TestClient[Any, Any], leftovers: Path, send: dict[str, Any], message: str
) -> None:
    answer = await api.post("/v1/packages", **send)
    assert answer.status == 400
    assert message in (await answer.json())["error"]["message"]


async def test_a_bad_archive_is_400_naming_the_member_and_nothing_is_kept(
    api: TestClient[Any, Any], registry: Registry, uploads: Path, leftovers: Path
) -> None:
    bad = make_tar(uploads / "bad.tar", [_member("ok.py"), _member("../../evil.py")])
    answer = await api.post("/v1/packages", data=form(name="evil", environment="python", source=bad))
    assert answer.status == 400
    assert (await answer.json())["error"]["message"] == (
        "the source archive: archive member '../../evil.py' leaves the package"
    )
    assert registry.blobs() == []
    assert (await api.get("/v1/packages/evil")).status == 404
    missing = await api.patch("/v1/packages/evil", data=form(buildcmd="x"))
    assert missing.status == 404


async def test_the_api_document_describes_the_package_endpoints() -> None:
    from faasd.control.openapi import document

    paths = document()["paths"]
    assert set(paths["/v1/packages"]) == {"get", "post"}
    assert set(paths["/v1/packages/{name}"]) >= {"get", "patch", "delete"}
    assert "multipart/form-data" in paths["/v1/packages"]["post"]["requestBody"]["content"]
    assert paths["/v1/packages/{name}/deploy"]["get"]["operationId"] == "getPackageDeploy"
    schemas = document()["components"]["schemas"]
    assert "builder" in schemas["Environment"]["required"]
    assert "package" in schemas["Function"]["required"]
