"""The registry's database engine, on SQLite or PostgreSQL, and what differs between the two.

SQLite (the default): one file, WAL journal, foreign keys on, every commit
fsynced. PostgreSQL: a pool of asyncpg connections checked before use, so a
restarted server costs one failed ping, not a failed write. Migrations run at
open on both (alembic, migrations/); on PostgreSQL under an advisory lock, so
nodes started at once migrate one after the other.
"""

from __future__ import annotations

import sqlite3
import threading
from importlib import resources
from pathlib import Path
from typing import Any, cast

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy import Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry

from faasd.core.database import DatabaseUrl, database_url

# Alembic keeps its context in module globals: one migration at a time in a process (nodes are processes,
# and take turns through the advisory lock of migrations/env.py).
_ALEMBIC = threading.Lock()

# Connections each faasd keeps to PostgreSQL: the controller's writes, the meter, the events' queue.
PG_POOL_SIZE = 5
PG_MAX_OVERFLOW = 10


def alembic_config(database: str | Path | DatabaseUrl) -> Config:
    """Alembic's configuration for ``database`` (a URL as ``--database`` takes, or a SQLite file)."""
    database = database if isinstance(database, DatabaseUrl) else database_url(database)
    config = Config()
    config.set_main_option("script_location", str(resources.files("faasd_migrations")))
    # SQLite migrates through the standard library's driver; PostgreSQL through asyncpg (migrations/env.py).
    url = f"sqlite:///{database.sqlite_path}" if database.dialect == "sqlite" else database.url
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def migrate(database: str | Path | DatabaseUrl) -> None:
    """Bring ``database`` to the newest alembic revision (blocks, and runs a loop of its own on
    PostgreSQL: callers use a thread)."""
    with _ALEMBIC:
        command.upgrade(alembic_config(database), "head")


# What opening a database that is not there raises, somewhere in the chain SQLAlchemy wraps: refused,
# unknown host, no such database, a login refused, a server starting or stopping, a SQLite file that
# cannot be opened or stays locked.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # a server shutting down or starting (CannotConnectNow)
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InterfaceError,
    sqlite3.OperationalError,
)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database is not there, rather than a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _set_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed change survives a power loss too, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def open_engine(
    database: DatabaseUrl,
    *,
    pool_size: int = PG_POOL_SIZE,
    max_overflow: int = PG_MAX_OVERFLOW,
    command_timeout: float = 60,
) -> AsyncEngine:
    """An engine on ``database`` (already migrated); ``command_timeout``: seconds a PostgreSQL query may take."""
    if database.dialect == "sqlite":
        database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(database.url)
        event.listen(engine.sync_engine, "connect", _set_pragmas)
        return engine
    return create_async_engine(
        database.url,
        pool_pre_ping=True,  # a connection PostgreSQL dropped (a restart) is replaced, not handed out
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        pool_timeout=10,
        connect_args={
            "timeout": 10,
            "command_timeout": command_timeout,
            "server_settings": {"application_name": "faasd"},
        },
    )


def upsert(session: AsyncSession, model: type[DeclarativeBase] | Table) -> Any:
    """``INSERT`` of the session's dialect, which has ``on_conflict_do_update``/``_nothing`` on both."""
    table = model if isinstance(model, Table) else cast(Table, model.__table__)
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
