"""Functions' versions: what a version holds, when one is made, how many are kept, and rollback."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete

from faasd.core.entities import Function
from faasd.core.errors import BadRequest, Conflict, NotFound
from faasd.core.versions import SNAPSHOT_FIELDS, FunctionVersion, dropped, previous, restore, snapshot
from faasd.store.models import FunctionVersionRow
from tests.unit.test_registry import HELLO, Registry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def function(**changes: object) -> Function:
    fn = Function("f", "nodejs", "f.js", "", 60, "a" * 64, 10, 1, NOW, NOW, env={"A": "1"}, secrets={"K": "s3cret"})
    return dataclasses.replace(fn, **changes)  # type: ignore[arg-type]


# -- the pure rules ------------------------------------------------------------------------


def test_a_snapshot_is_code_and_settings_not_name_revision_or_times() -> None:
    values = snapshot(function())
    assert "name" not in values and "revision" not in values and "updated_at" not in values
    assert values["code_sha256"] == "a" * 64 and values["secrets"] == {"K": "s3cret"}
    assert set(values) == set(SNAPSHOT_FIELDS)
    # A later write that changed nothing but the revision and the time is the same version.
    assert snapshot(function(revision=7, updated_at=datetime(2027, 1, 1, tzinfo=UTC))) == values
    assert snapshot(function(timeout=5)) != values


def test_restore_takes_the_versions_content_and_keeps_the_rest() -> None:
    old = snapshot(function(timeout=5, env={}, secrets={"K": "old"}))
    now = function(revision=4)
    back = restore(now, old)
    assert (back.timeout, dict(back.env), dict(back.secrets), back.revision) == (5, {}, {"K": "old"}, 4)
    # A setting the version predates keeps its value.
    assert restore(now, {"timeout": 9}).memory_mb == now.memory_mb


def test_a_versions_answer_names_its_secrets_but_never_their_values() -> None:
    doc = FunctionVersion("f", 3, NOW, snapshot(function())).to_json()
    assert doc["version"] == 3 and doc["code_sha256"] == "a" * 64 and doc["created_at"] == "2026-12-01T12:00:00Z"
    assert doc["settings"]["secrets"] == ["K"]
    assert "s3cret" not in repr(doc) and "code_sha256" not in doc["settings"]


def test_the_oldest_versions_past_keep_are_dropped() -> None:
    assert dropped([1, 2, 3], 10) == []
    assert dropped([5, 1, 4, 3, 2], 3) == [1, 2]
    assert dropped([1, 2], 1) == [1]


def test_previous_is_the_version_before_the_newest() -> None:
    assert previous([3, 5, 4]) == 4
    assert previous([1]) is None
    assert previous([]) is None


# -- the controller, on a real registry ---------------------------------------------------------


@pytest.fixture
async def registry(tmp_path: Path, database: str) -> AsyncIterator[Registry]:
    reg = Registry(tmp_path, database)
    yield reg
    await reg.close()


def code(n: int) -> str:
    return HELLO + f"\n// v{n}"


async def numbers(c: object, name: str = "hello") -> list[int]:
    return [v.number for v in await c.function_versions(name)]  # type: ignore[attr-defined]


async def test_create_is_version_1_and_every_change_the_next(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "hello", "environment": "nodejs", "code": code(1)})
    assert await numbers(c) == [1]
    await c.update_function("hello", {"code": code(2)})
    await c.update_function("hello", {"timeout": 5})
    await c.update_function("hello", {"secrets": {"K": "v"}})
    assert await numbers(c) == [4, 3, 2, 1]  # newest first
    # An update that changes nothing makes none.
    await c.update_function("hello", {"code": code(2), "timeout": 5})
    assert await numbers(c) == [4, 3, 2, 1]
    newest = (await c.function_versions("hello"))[0]
    assert newest.settings["timeout"] == 5 and newest.to_json()["settings"]["secrets"] == ["K"]
    with pytest.raises(NotFound, match="function 'nope' not found"):
        await c.function_versions("nope")


async def test_only_the_last_n_are_kept_with_the_code_they_hold(registry: Registry) -> None:
    c = await registry.open(keep_versions=3)
    first = await c.create_function({"name": "hello", "environment": "nodejs", "code": code(1)})
    second = await c.update_function("hello", {"code": code(2)})
    blobs = registry.root / "code"
    assert (blobs / first.code_sha256).exists()  # version 1 still holds it
    await c.update_function("hello", {"code": code(3)})
    await c.update_function("hello", {"code": code(4)})
    assert await numbers(c) == [4, 3, 2]
    assert not (blobs / first.code_sha256).exists()  # version 1 is gone, and so is its code
    assert (blobs / second.code_sha256).exists()
    # A restart with a lower --keep-versions drops the extra ones, and their code.
    c = await registry.open(keep_versions=1)
    assert await numbers(c) == [4]
    assert sorted(p.name for p in blobs.iterdir()) == [c.catalog.functions["hello"].code_sha256]


async def test_rollback_makes_a_new_version_with_the_old_content(registry: Registry) -> None:
    c = await registry.open()
    v1 = await c.create_function(
        {"name": "hello", "environment": "nodejs", "code": code(1), "secrets": {"K": "one"}, "timeout": 7}
    )
    await c.update_function("hello", {"code": code(2), "secrets": {"K": "two"}, "timeout": 9})
    told: list[Function] = []
    registry.pools[-1].function_changed = told.append  # type: ignore[method-assign]
    back, version = await c.rollback_function("hello")  # the previous version: 1
    assert version == 3 and await numbers(c) == [3, 2, 1]
    assert c.function_code("hello").decode() == code(1)
    assert (back.timeout, dict(back.secrets), back.code_sha256) == (7, {"K": "one"}, v1.code_sha256)
    assert back.revision == 3  # an update like any other: new instances from the pool
    assert told == [back]  # the pool retires the old instances; the next call specializes one from the pool
    again, version = await c.rollback_function("hello", 2)
    assert version == 4 and c.function_code("hello").decode() == code(2) and dict(again.secrets) == {"K": "two"}
    # Back to what it is already: nothing changes, no version.
    same, version = await c.rollback_function("hello", 4)
    assert version == 4 and same.revision == again.revision and told == [back, again]
    # It survives a restart.
    c = await registry.open()
    assert await numbers(c) == [4, 3, 2, 1] and c.function_code("hello").decode() == code(2)


async def test_rollback_errors_name_the_problem(registry: Registry) -> None:
    c = await registry.open(keep_versions=2)
    with pytest.raises(NotFound, match="function 'hello' not found"):
        await c.rollback_function("hello")
    await c.create_function({"name": "hello", "environment": "nodejs", "code": code(1)})
    with pytest.raises(BadRequest, match="only version 1: there is no earlier version"):
        await c.rollback_function("hello")
    for n in (2, 3, 4):
        await c.update_function("hello", {"code": code(n)})
    with pytest.raises(NotFound, match=r"has no version 1: it keeps 3 to 4 \(the last 2: --keep-versions\)"):
        await c.rollback_function("hello", 1)


async def test_a_version_whose_environment_is_gone_cannot_be_rolled_back_to(registry: Registry) -> None:
    c = await registry.open()
    await c.create_environment({"name": "old", "image": "me/img:1", "poolsize": 0})
    await c.create_function({"name": "hello", "environment": "old", "code": code(1)})
    await c.update_function("hello", {"environment": "nodejs"})
    await c.delete_environment("old")
    with pytest.raises(Conflict, match="version 1 of function 'hello' runs in environment 'old', which no longer"):
        await c.rollback_function("hello", 1)


async def test_delete_takes_the_versions_along(registry: Registry) -> None:
    c = await registry.open()
    first = await c.create_function({"name": "hello", "environment": "nodejs", "code": code(1)})
    await c.update_function("hello", {"code": code(2)})
    await c.delete_function("hello")
    assert list((registry.root / "code").iterdir()) == []
    await c.create_function({"name": "hello", "environment": "nodejs", "code": code(3)})
    assert await numbers(c) == [1]  # a new function of that name starts again
    assert first.code_sha256 not in {v.code_sha256 for v in await c.function_versions("hello")}


async def test_a_function_from_before_versions_gets_version_1_at_start(registry: Registry) -> None:
    c = await registry.open()
    await c.create_function({"name": "hello", "environment": "nodejs", "code": code(1)})
    await c.update_function("hello", {"code": code(2)})
    async with registry.stores[-1].engine.begin() as conn:  # as a database of migration 0009 would be
        await conn.execute(delete(FunctionVersionRow))
    c = await registry.open()
    versions = await c.function_versions("hello")
    assert [v.number for v in versions] == [1]
    assert versions[0].code_sha256 == c.catalog.functions["hello"].code_sha256
