"""Whether an error means the registry's database cannot be reached, and a cheap question that tells.

The one place that knows which of SQLAlchemy's, asyncpg's and the socket layer's errors mean "the
database is not there" (stopped, restarting, unreachable, locked by another process past the busy
timeout) rather than a bug. The admin app answers those 503 ``registry_unavailable``
(faasd/app.py's error middleware); the request path never reads the registry, so calls go on.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import exc as sa
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from faasd.core.errors import RegistryUnavailable

PING_TIMEOUT = 1.0

_DOWN = (
    sa.OperationalError,  # SQLite: locked past the busy timeout, cannot open; PostgreSQL: the server went
    sa.InterfaceError,
    sa.TimeoutError,  # no connection free in the pool in time
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.InterfaceError,
)
# The socket layer's errors (refused, reset, no such host, a connect timeout): asyncpg raises them as they
# are, so they count when they come out of the drivers' code only; from anywhere else (another node's
# answer, the container engine) they say nothing about the database.
_SOCKET = (OSError, TimeoutError)
_DRIVERS = ("asyncpg", "sqlalchemy", "aiosqlite", "sqlite3")


def _from_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        if str(traceback.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVERS):
            return True
        traceback = traceback.tb_next
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the registry's database cannot be used now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DOWN) or (isinstance(current, _SOCKET) and _from_driver(current)):
            return True
        if isinstance(current, sa.DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__ or current.__context__
    return False


def describe(exc: BaseException) -> str:
    """One line: the database cannot be reached, and the lower library's reason."""
    reason = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return f"the registry's database cannot be reached ({reason.splitlines()[0][:200]})"


def unavailable_error(exc: BaseException) -> RegistryUnavailable:
    """What an admin write that failed for ``exc`` answers."""
    return RegistryUnavailable(
        f"{describe(exc)}; nothing was changed. Calls to functions go on; retry the change when the database "
        "answers again"
    )


async def ping(engine: AsyncEngine, timeout: float = PING_TIMEOUT) -> None:  # noqa: ASYNC109 - one bound for all
    """One indexed read of a table within ``timeout`` seconds (``SELECT 1`` alone would not touch a SQLite
    file); raises RegistryUnavailable when it does not answer."""
    try:
        async with asyncio.timeout(timeout):
            async with engine.connect() as connection:
                await connection.execute(text("SELECT max(id) FROM changes"))
    except TimeoutError as exc:
        raise RegistryUnavailable(describe(TimeoutError(f"no answer within {timeout:g} s"))) from exc
    except Exception as exc:
        if is_unavailable(exc):
            raise RegistryUnavailable(describe(exc)) from exc
        raise
