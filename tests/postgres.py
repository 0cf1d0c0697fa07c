"""A real PostgreSQL for the tests: Debian's server binaries, a cluster of its own in a temporary directory.

:class:`PostgresServer` runs ``initdb`` and ``pg_ctl`` as the unprivileged
``postgres`` system user (when the tests run as root), listening on 127.0.0.1
on a free port and on a socket directory of its own, trusting every local
connection. It can be stopped and started again under the same port (the
cluster test restarts it under load). The fixtures (tests/conftest.py):

- ``postgres``: the session's server, started at the first test that needs it,
  stopped (``pg_ctl stop -m fast``) and removed at the end, also after failures;
- ``postgres_url``: a fresh empty database for one test, dropped after it;
- ``database``: the registry's URL, once on SQLite and once on PostgreSQL
  (a parametrized test runs on both).

There is no skip: without PostgreSQL installed (``make postgresql``) the tests
that need it fail and say so.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

INSTALL_HINT = "install it with `make postgresql` (scripts/ensure-postgresql.sh: apt-get install postgresql)"


def postgres_bindir() -> Path:
    """The newest installed server's bin directory; raises RuntimeError when there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(f"PostgreSQL's server (initdb, pg_ctl) is not installed: {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in ``root`` (made by :meth:`start`, removed by :meth:`remove`)."""

    def __init__(self, root: Path, port: int | None = None, *, durable: bool = False) -> None:
        """``durable``: fsync on (the default off makes CREATE DATABASE per test fast; a crash of
        the test machine is all it would lose)."""
        self.bindir = postgres_bindir()
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.logfile = root / "postgresql.log"
        self.port = port or free_port()
        self.durable = durable
        self._as_user: list[str] = []
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:  # initdb refuses root: the server runs as the postgres system user
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(f"no 'postgres' system user to run PostgreSQL as: {INSTALL_HINT}") from None
            self._owner = (entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    # -- the server ----------------------------------------------------------------

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockets.mkdir(exist_ok=True)
        if self._owner is not None:
            os.chown(self.root, *self._owner)
            os.chown(self.sockets, *self._owner)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sockets}'",
            "max_connections": "200",
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
            "log_min_messages": "warning",
        }
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start(self) -> None:
        """Start the server (initialized at the first start) and wait until it takes connections."""
        if not self.data.is_dir():
            self.init()
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port}",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast`` (or ``immediate``: as a crash would, recovery at the next start)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @property
    def running(self) -> bool:
        status = subprocess.run(
            [*self._as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
            cwd=self.root,
            check=False,
        )
        return status.returncode == 0

    def remove(self) -> None:
        """Stop the server if it runs, then remove its directory."""
        try:
            if self.data.is_dir() and self.running:
                self.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        """The URL faasd takes (``--database``): trust authentication, so no password."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its output (unaligned, tuples only)."""
        result = self._run(
            str(self.bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-At",
            "-c",
            statement,
            timeout=60,
        )
        return result.stdout.strip()

    def create_database(self) -> str:
        name = f"faasd_{secrets.token_hex(6)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_postgres(port: int | None = None, *, durable: bool = False) -> Iterator[PostgresServer]:
    """A started server in a fresh temporary directory, stopped and removed afterwards whatever happens."""
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="faasd-pg-")), port, durable=durable)
    try:
        server.start()
        yield server
    finally:
        server.remove()


# -- fixtures (tests/conftest.py makes them every test's) ------------------------------


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server."""
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server (``postgresql://postgres@127.0.0.1:PORT/NAME``)."""
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The registry's database URL: a SQLite file in the test's directory, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faasd.db'}"
    return str(request.getfixturevalue("postgres_url"))
