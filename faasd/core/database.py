"""Where the registry lives: ``--database`` read into one value, its password never shown.

Empty: the SQLite file ``<state dir>/faasd.db`` (the default, nothing to install).
``sqlite:///path``: another SQLite file. ``postgresql://user:pass@host:port/db``
(or ``postgresql+asyncpg://``): a PostgreSQL that several faasd nodes share.
Every form comes out as the URL of the async driver SQLAlchemy opens it with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

Dialect = Literal["sqlite", "postgresql"]

_POSTGRESQL_SCHEMES = ("postgresql", "postgresql+asyncpg", "postgres")
_SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")


@dataclass(frozen=True)
class DatabaseUrl:
    """A registry database: its dialect and the URL SQLAlchemy's async engine takes."""

    dialect: Dialect
    url: str  # sqlite+aiosqlite:///path or postgresql+asyncpg://...

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file (a SQLite database only)."""
        if self.dialect != "sqlite":
            raise ValueError(f"{self.redacted()} is not a SQLite database")
        return Path(unquote(urlsplit(self.url).path[1:]))

    def redacted(self) -> str:
        """The URL with its password as ``***``: for logs and error messages."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))

    def __str__(self) -> str:
        return self.redacted()


def sqlite_database(path: Path) -> DatabaseUrl:
    return DatabaseUrl("sqlite", f"sqlite+aiosqlite:///{path}")


def database_url(raw: str | Path, state_dir: Path | None = None) -> DatabaseUrl:
    """``--database`` as given (a Path: a SQLite file); raises ValueError with one line saying what is wrong."""
    if isinstance(raw, Path):
        return sqlite_database(raw)
    text = raw.strip()
    if not text:
        if state_dir is None:
            raise ValueError("no database given")
        return sqlite_database(state_dir / "faasd.db")
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(
            "--database must be a URL: postgresql://USER:PASSWORD@HOST:PORT/DATABASE or sqlite:///PATH "
            "(empty: the SQLite file in the state dir)"
        )
    if scheme in _SQLITE_SCHEMES:
        path = rest[1:] if rest.startswith("/") else ""
        if not path or "?" in path:
            raise ValueError("--database sqlite:///PATH needs the path of the file (sqlite:////abs/path or ///rel)")
        return sqlite_database(Path(unquote(path)))
    if scheme in _POSTGRESQL_SCHEMES:
        parts = urlsplit("postgresql+asyncpg://" + rest)
        try:
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            raise ValueError("--database: the port of the PostgreSQL URL is not a number") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("--database postgresql://...: the URL names no host")
        if not parts.path.strip("/"):
            raise ValueError("--database postgresql://...: the URL names no database (postgresql://HOST/DATABASE)")
        return DatabaseUrl("postgresql", urlunsplit(parts))
    raise ValueError(f"--database: unknown scheme '{scheme}://' (postgresql:// or sqlite:///)")
