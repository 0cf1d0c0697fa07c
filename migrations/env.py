"""Alembic environment: faasd applies these migrations itself at start (faasd/store/database.py).

SQLite migrates through the standard library's driver (``sqlite:///``);
PostgreSQL through asyncpg (``postgresql+asyncpg://``), the only driver faasd
installs, under an advisory lock: nodes that start at once migrate in turn,
and the later ones find the schema at head already.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool, text
from sqlalchemy.ext.asyncio import async_engine_from_config

from faasd.cluster.journal import MIGRATION_LOCK  # pg_advisory_xact_lock's key, held until the commit
from faasd.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    # Batch mode recreates tables on SQLite (its ALTER TABLE is limited) and is plain ALTER TABLE elsewhere.
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()


async def _migrate_async() -> None:
    engine = async_engine_from_config(
        config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:  # a test's own connection
        _migrate(given)
        return
    url = config.get_main_option("sqlalchemy.url") or ""
    if "+asyncpg" in url or "+aiosqlite" in url:
        asyncio.run(_migrate_async())  # in the thread faasd migrates in: no loop runs there
        return
    connectable = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        _migrate(connection)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
