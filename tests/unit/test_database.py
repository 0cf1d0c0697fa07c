"""The registry's database: --database, the migrations and the upserts, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from faasd.core.canary import Canary, CanaryStatus, CanaryStep
from faasd.core.database import database_url
from faasd.core.errors import RegistryUnavailable
from faasd.core.settings import load_settings
from faasd.events.cron import MAX_EXPRESSION
from faasd.store.canaries import CanaryStore
from faasd.store.database import migrate, open_engine
from faasd.store.labels import LabelStore
from faasd.store.models import Base, EnvironmentRow, FunctionRow, MqTriggerRow, TimerRow
from faasd.store.registry import Store
from faasd.store.usage import Usage, UsageStore
from faasd.tools.images import environment_images
from tests.postgres import PostgresServer, free_port

# -- --database ---------------------------------------------------------------------------------


def test_the_default_is_the_sqlite_file_in_the_state_dir() -> None:
    settings = load_settings(["--state-dir", "/srv/faasd"], {})
    assert settings.database_url.dialect == "sqlite"
    assert settings.database_url.sqlite_path == Path("/srv/faasd/faasd.db")


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("postgresql://u:p@db:5433/reg", "postgresql+asyncpg://u:p@db:5433/reg"),
        ("postgresql+asyncpg://u@db/reg", "postgresql+asyncpg://u@db/reg"),
        ("postgres://db/reg?ssl=require", "postgresql+asyncpg://db/reg?ssl=require"),
        ("sqlite:////var/lib/faasd/x.db", "sqlite+aiosqlite:////var/lib/faasd/x.db"),
        ("sqlite:///rel.db", "sqlite+aiosqlite:///rel.db"),
    ],
)
def test_accepted_urls_become_the_async_drivers(given: str, url: str) -> None:
    assert load_settings(["--database", given], {}).database_url.url == url
    assert load_settings([], {"FAASD_DATABASE": given}).database_url.url == url


def test_the_password_is_never_shown() -> None:
    found = database_url("postgresql://faasd:s3cret@db.local:5432/registry")
    assert found.redacted() == "postgresql+asyncpg://faasd:***@db.local:5432/registry"
    assert "s3cret" not in str(found)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("mysql://u:secretpw@h/db", "unknown scheme 'mysql://'"),
        ("db.local:5432", "must be a URL"),
        ("postgresql://u:secretpw@h", "names no database"),
        ("postgresql://u:secretpw@h:port/db", "port of the PostgreSQL URL is not a number"),
        ("sqlite://", "needs the path of the file"),
    ],
)
def test_a_bad_url_is_a_one_line_startup_error_without_the_password(
    given: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        load_settings(["--database", given], {})
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in error
    assert "secretpw" not in error


# -- migrations ---------------------------------------------------------------------------------


async def test_the_migrations_make_the_models_schema(database: str) -> None:
    """upgrade head on an empty database; then alembic finds nothing the models have and the schema has not."""
    await asyncio.to_thread(migrate, database)
    engine = open_engine(database_url(database))
    try:
        async with engine.connect() as connection:

            def differences(sync: Any) -> list[Any]:
                return list(compare_metadata(MigrationContext.configure(sync), Base.metadata))

            assert await connection.run_sync(differences) == []
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            assert version
        await asyncio.to_thread(migrate, database)  # at head: nothing to do, and no error
    finally:
        await engine.dispose()


async def test_nodes_that_start_at_once_migrate_one_after_the_other(postgres_url: str) -> None:
    program = f"from faasd.store.database import migrate; migrate({postgres_url!r})"
    nodes = [await asyncio.create_subprocess_exec(sys.executable, "-c", program) for _ in range(3)]
    assert [await asyncio.wait_for(node.wait(), 120) for node in nodes] == [0, 0, 0]
    engine = open_engine(database_url(postgres_url))
    try:
        async with engine.connect() as connection:
            versions = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
        assert len(versions) == 1
    finally:
        await engine.dispose()


# -- the stores that insert or update -----------------------------------------------------------


@pytest.fixture
async def engine(database: str) -> Any:
    await asyncio.to_thread(migrate, database)
    made = open_engine(database_url(database))
    yield made
    await made.dispose()


async def test_usage_adds_to_the_row_of_its_hour(engine: Any) -> None:
    store = UsageStore(engine)
    await store.add([Usage("f", 3600, 2, 30, 0.5, 1.0), Usage("g", 3600, 1, 5, 0.25, 0.0)])
    await store.add([Usage("f", 3600, 3, 70, 0.25, 2.0), Usage("f", 7200, 1, 1, 0.0, 0.5)])
    assert await store.query(0) == [
        Usage("f", 3600, 5, 100, 0.75, 3.0),
        Usage("g", 3600, 1, 5, 0.25, 0.0),
        Usage("f", 7200, 1, 1, 0.0, 0.5),
    ]
    assert await store.query(7200, "f") == [Usage("f", 7200, 1, 1, 0.0, 0.5)]


async def test_labels_are_replaced_and_removed(engine: Any) -> None:
    store = LabelStore(engine)
    await store.set("function", "f", {"app": "a"})
    await store.set("function", "f", {"app": "b", "tier": "web"})
    await store.set("route", "r", {"app": "a"})
    await store.set("route", "r", {})
    again = LabelStore(engine)
    await again.load()
    assert again.get("function", "f") == {"app": "b", "tier": "web"}
    assert again.get("route", "r") == {}


async def test_a_canary_is_inserted_then_replaced(engine: Any) -> None:
    store = CanaryStore(engine)
    made = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    canary = Canary(
        name="c",
        newfunction="new",
        oldfunction="old",
        httptrigger="r",
        created_at=made,
        updated_at=made,
        increment_step=20,
        increment_interval=60,
        failure_threshold=10,
        status=CanaryStatus.running,
        weight=0,
    )
    await store.save(canary)
    step = CanaryStep(made.timestamp() + 60, 20, 10, 0, 0.0)
    await store.save(dataclasses.replace(canary, weight=20, history=(step,)))
    [loaded] = await store.load()
    assert (loaded.weight, loaded.history, loaded.created_at) == (20, (step,), made)


async def test_images_prune_reads_the_environments_of_either_registry(database: str, tmp_path: Path) -> None:
    await asyncio.to_thread(migrate, database)
    engine = open_engine(database_url(database))
    made = datetime(2026, 11, 30, tzinfo=UTC)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                EnvironmentRow.__table__.insert().values(
                    name="py", image="me/py:1", builder="me/py-builder:1", poolsize=1, created_at=made, updated_at=made
                )
            )
    finally:
        await engine.dispose()
    found = await asyncio.to_thread(environment_images, tmp_path / "elsewhere", database)
    assert found == ["me/py:1", "me/py-builder:1"]


async def test_the_longest_values_the_api_takes_fit_their_columns(engine: Any) -> None:
    """PostgreSQL holds a VARCHAR to its length (SQLite never did): a cron expression may be 1024 characters
    (faasd/events/cron.py), a content type as long as its pattern lets it be."""
    made = datetime(2026, 11, 30, tzinfo=UTC)
    cron = ("0," * 511 + "0")[:1023] + "0"
    assert len(cron) == MAX_EXPRESSION
    async with engine.begin() as connection:
        await connection.execute(
            EnvironmentRow.__table__.insert().values(
                name="e", image="x:1", builder="", poolsize=0, created_at=made, updated_at=made
            )
        )
        await connection.execute(
            FunctionRow.__table__.insert().values(
                name="f",
                environment="e",
                filename="f.js",
                entrypoint="",
                timeout=60,
                code_sha256="",
                code_size=0,
                revision=1,
                created_at=made,
                updated_at=made,
            )
        )
        await connection.execute(
            TimerRow.__table__.insert().values(
                name="t",
                function="f",
                cron=cron,
                timezone="America/Argentina/ComodRivadavia",
                method="GET",
                subpath="/" + "x" * 1023,
                overlap="skip",
                catch_up="none",
                created_at=made,
                updated_at=made,
            )
        )
        await connection.execute(
            MqTriggerRow.__table__.insert().values(
                name="m",
                function="f",
                mqtype="redis",
                topic="t" * 255,
                resptopic="",
                errortopic="",
                maxretries=0,
                maxconcurrency=1,
                contenttype="application/json" + "; p=v" * 200,
                connection="",
                connection_secret="",
                method="POST",
                created_at=made,
                updated_at=made,
            )
        )
        stored = (await connection.execute(select(TimerRow.cron))).scalar_one()
    assert stored == cron


async def test_a_database_not_there_is_one_line_naming_it_without_the_password(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    missing = postgres.url("no_such_database").replace("postgres@", "postgres:s3cret@")
    with pytest.raises(RegistryUnavailable) as raised:
        await Store.open(missing)
    assert raised.value.message == (
        f"the registry's database postgresql+asyncpg://postgres:***@127.0.0.1:{postgres.port}/no_such_database "
        'cannot be reached: database "no_such_database" does not exist'
    )
    with pytest.raises(RegistryUnavailable, match=r"cannot be reached: .*Connect call failed"):
        await Store.open(f"postgresql://faasd:s3cret@127.0.0.1:{free_port()}/faasd")
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(RegistryUnavailable, match=r"database sqlite\+aiosqlite:///.*/file/faasd.db cannot be opened: "):
        await Store.open(tmp_path / "file" / "faasd.db")
