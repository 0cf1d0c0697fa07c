"""The registry: environments, functions (with their versions), HTTP triggers and packages.

In SQLite or PostgreSQL (faasd/store/database.py), opened with alembic's migrations applied.
Queries return the plain values of faasd/core/entities.py. Only the controller
calls this module; the request path never does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faasd.core.blobs import SharedBlobs
from faasd.core.database import DatabaseUrl, database_url
from faasd.core.entities import BuildStatus, Environment, Function, HttpTrigger, Package
from faasd.core.errors import Conflict, NotFound, RegistryUnavailable
from faasd.core.versions import FunctionVersion
from faasd.store.blobs import BlobTable
from faasd.store.database import migrate, open_engine, unreachable
from faasd.store.models import (
    Base,
    CanaryRow,
    EnvironmentRow,
    FunctionRow,
    FunctionVersionRow,
    HttpTriggerRow,
    MqTriggerRow,
    PackageRow,
    TimerRow,
    WatchRow,
)

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back without a zone; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _object(text: str) -> Any:
    """A JSON column's value; most are empty, and ``{}`` needs no parser."""
    return {} if text == "{}" else json.loads(text)


# The rows below are the tables' rows as load() reads them (columns by name, no ORM objects: a
# start with thousands of functions would spend most of its time making those).


def _environment(row: Any) -> Environment:
    return Environment(
        name=row.name,
        image=row.image,
        poolsize=row.poolsize,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        builder=row.builder,
    )


def _function(row: Any) -> Function:
    return Function(
        name=row.name,
        environment=row.environment,
        filename=row.filename,
        entrypoint=row.entrypoint,
        timeout=row.timeout,
        code_sha256=row.code_sha256,
        code_size=row.code_size,
        revision=row.revision,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        env=_object(row.env_json),
        secrets=_object(row.secrets_json),
        memory_mb=row.memory_mb,
        concurrency=row.concurrency,
        max_instances=row.max_instances,
        min_instances=row.min_instances,
        idle_timeout=row.idle_timeout,
        queue_timeout=row.queue_timeout,
        cpu_millis=row.cpu_millis,
        network=row.network,
        package=row.package,
        retries=row.retries,
        retry_max_age=row.retry_max_age,
        executor=row.executor,
    )


def _version(row: FunctionVersionRow) -> FunctionVersion:
    return FunctionVersion(row.function, row.number, _aware(row.created_at), json.loads(row.settings_json))


def _version_row(version: FunctionVersion) -> FunctionVersionRow:
    return FunctionVersionRow(
        function=version.function,
        number=version.number,
        created_at=version.created_at,
        code_sha256=version.code_sha256,
        settings_json=json.dumps(dict(version.settings), sort_keys=True),
    )


def _trigger(row: Any) -> HttpTrigger:
    return HttpTrigger(
        name=row.name,
        method=row.method,
        url=row.url,
        function=row.function,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        is_async=row.is_async,
        functions=_weights(row.functions_json),
    )


def _weights(text: str | None) -> tuple[tuple[str, int], ...]:
    if not text or text == "[]":
        return ()
    return tuple((str(name), int(weight)) for name, weight in json.loads(text))


def _package(row: Any) -> Package:
    return Package(
        name=row.name,
        environment=row.environment,
        status=BuildStatus(row.status),
        source_sha256=row.source_sha256,
        source_size=row.source_size,
        deploy_sha256=row.deploy_sha256,
        deploy_size=row.deploy_size,
        buildcmd=row.buildcmd,
        build_log=row.build_log,
        error=row.error,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


@dataclass(frozen=True)
class Contents:
    """Everything in the registry, read once at start."""

    environments: list[Environment]
    functions: list[Function]
    triggers: list[HttpTrigger]
    packages: list[Package] = field(default_factory=list)


Row = EnvironmentRow | FunctionRow | HttpTriggerRow | PackageRow
RowType = type[EnvironmentRow] | type[FunctionRow] | type[HttpTriggerRow] | type[PackageRow]

# Said of a write that found the registry changed by another node since this node last read it.
MEANWHILE = "(by another node sharing the registry, meanwhile)"


def _kind(model: RowType) -> str:
    """A table's objects as users name them: "environment", "function", "route", "package"."""
    return "route" if model is HttpTriggerRow else model.__tablename__[:-1]


async def _users(session: AsyncSession, model: RowType, name: str) -> list[str]:
    """What refers to ``model``'s row ``name``, as users name it ("route 'r'"): what keeps it from going."""
    if model is EnvironmentRow:
        refs: list[tuple[str, Any, Any]] = [
            ("function", FunctionRow, FunctionRow.environment == name),
            ("package", PackageRow, PackageRow.environment == name),
        ]
    elif model is FunctionRow:
        split = HttpTriggerRow.functions_json.contains(json.dumps(name), autoescape=True)  # one of its weights
        refs = [
            ("route", HttpTriggerRow, or_(HttpTriggerRow.function == name, split)),
            ("timer", TimerRow, TimerRow.function == name),
            ("watch", WatchRow, WatchRow.function == name),
            ("mqtrigger", MqTriggerRow, MqTriggerRow.function == name),
        ]
    else:
        refs = []
    users = []
    for kind, table, where in refs:
        users += [f"{kind} '{n}'" for n in await session.scalars(select(table.name).where(where).order_by(table.name))]
    return users


def _in_use(model: RowType, name: str, users: list[str], force_hint: bool = False) -> Conflict:
    used = ", ".join(users) if users else "another object"
    then = "delete them first or pass force=true" if force_hint else "delete them first"
    return Conflict(f"{_kind(model)} '{name}' is used by {used} {MEANWHILE}: nothing was deleted; {then}")


class Store:
    def __init__(self, engine: AsyncEngine, database: DatabaseUrl | None = None) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.database = database
        # On PostgreSQL the code blobs and package archives live in the database too, for every node.
        self._blobs = BlobTable(database) if database is not None and database.is_postgresql else None

    @property
    def blobs(self) -> SharedBlobs | None:
        """Where the file stores keep their blobs for the other nodes (None on SQLite: the files are all)."""
        return self._blobs

    @classmethod
    async def open(cls, database: str | Path | DatabaseUrl) -> Store:
        """The registry at ``database`` (a URL as ``--database`` takes, or a SQLite file), migrated to head."""
        url = database if isinstance(database, DatabaseUrl) else database_url(database)
        try:
            if url.dialect == "sqlite":
                url.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(migrate, url)
        except Exception as exc:
            if not unreachable(exc):
                raise
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
            what = "reached" if url.is_postgresql else "opened"
            raise RegistryUnavailable(
                f"the registry's database {url.redacted()} cannot be {what}: {reason[0]}"
            ) from exc
        log.info("registry: %s", url.redacted())
        return cls(open_engine(url), url)

    @property
    def engine(self) -> AsyncEngine:
        """The database's engine, for the other stores that live in the same file (faasd/store/events.py)."""
        return self._engine

    async def close(self) -> None:
        if self._blobs is not None:
            await asyncio.to_thread(self._blobs.close)
        await self._engine.dispose()

    async def load(self) -> Contents:
        async with self._sessions() as session:
            envs = (await session.execute(self._in_order(EnvironmentRow))).all()
            fns = (await session.execute(self._in_order(FunctionRow))).all()
            triggers = (await session.execute(self._in_order(HttpTriggerRow))).all()
            packages = (await session.execute(self._in_order(PackageRow))).all()
        return Contents(
            environments=[_environment(r) for r in envs],
            functions=[_function(r) for r in fns],
            triggers=[_trigger(r) for r in triggers],
            packages=[_package(r) for r in packages],
        )

    def _in_order(self, model: RowType) -> Select[Any]:
        """Every row, in the order they were made: SQLite reads its tables in that order (by rowid) already;
        PostgreSQL's order moves with updates, so it is asked for."""
        query = select(model.__table__)
        if self._engine.dialect.name == "postgresql":
            query = query.order_by(model.created_at, model.name)
        return query

    async def _insert(self, row: Row) -> None:
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise Conflict(f"{row.__tablename__[:-1]} '{row.name}' conflicts with an existing one") from exc

    async def _update(self, model: RowType, name: str, fields: dict[str, Any]) -> None:
        """NotFound when there is no such row (another node deleted it): nothing is written."""
        async with self._sessions.begin() as session:
            result = await session.execute(update(model).where(model.name == name).values(**fields))
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise NotFound(f"{_kind(model)} '{name}' not found: it was deleted {MEANWHILE}")

    async def _delete(self, model: RowType, name: str) -> None:
        """Conflict, naming them, when other rows still refer to it (made by another node: this one checked)."""
        try:
            async with self._sessions.begin() as session:
                await session.execute(delete(model).where(model.name == name))
        except IntegrityError as exc:
            async with self._sessions() as session:
                users = await _users(session, model, name)
            raise _in_use(model, name, users) from exc

    # environments
    async def add_environment(self, env: Environment) -> None:
        await self._insert(
            EnvironmentRow(
                name=env.name,
                image=env.image,
                poolsize=env.poolsize,
                created_at=env.created_at,
                updated_at=env.updated_at,
                builder=env.builder,
            )
        )

    async def update_environment(self, env: Environment) -> None:
        fields = {"image": env.image, "builder": env.builder, "poolsize": env.poolsize, "updated_at": env.updated_at}
        await self._update(EnvironmentRow, env.name, fields)

    async def delete_environment(self, name: str) -> None:
        await self._delete(EnvironmentRow, name)

    # functions
    async def add_function(self, fn: Function, version: FunctionVersion | None = None) -> None:
        """The function and its first version, in one transaction."""
        try:
            async with self._sessions.begin() as session:
                session.add(FunctionRow(**_function_fields(fn), name=fn.name, created_at=fn.created_at))
                if version is not None:
                    await session.flush()  # the function's row first: its versions refer to it
                    session.add(_version_row(version))
        except IntegrityError as exc:
            raise Conflict(f"function '{fn.name}' conflicts with an existing one") from exc

    async def update_function(
        self, fn: Function, version: FunctionVersion | None = None, drop: Iterable[int] = ()
    ) -> None:
        """The function, its new version (if any) and the versions past the kept ones, in one transaction.

        ``fn`` is one revision past the stored one: a write from a node that read an older revision (another
        node sharing the registry changed or deleted the function meanwhile) changes nothing and is a
        Conflict, so that no node overwrites a change it has not seen, nor takes its version number."""
        conflict = Conflict(
            f"function '{fn.name}' was changed or deleted meanwhile (by another node sharing the registry): "
            "nothing was changed; read it again and retry"
        )
        try:
            async with self._sessions.begin() as session:
                result = await session.execute(
                    update(FunctionRow)
                    .where(FunctionRow.name == fn.name, FunctionRow.revision == fn.revision - 1)
                    .values(**_function_fields(fn))
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise conflict
                if version is not None:
                    session.add(_version_row(version))
                await _drop_versions(session, fn.name, drop)
        except IntegrityError as exc:
            raise conflict from exc

    async def sync_versions(self, add: Iterable[FunctionVersion], drop: Mapping[str, Iterable[int]]) -> None:
        """At start: first versions of functions that have none, and versions past a lowered --keep-versions."""
        async with self._sessions.begin() as session:
            session.add_all([_version_row(v) for v in add])
            for function, numbers in drop.items():
                await _drop_versions(session, function, numbers)

    async def versions(self, function: str) -> list[FunctionVersion]:
        """The function's kept versions, newest first."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(FunctionVersionRow)
                .where(FunctionVersionRow.function == function)
                .order_by(FunctionVersionRow.number.desc())
            )
            return [_version(r) for r in rows]

    async def version_index(self) -> dict[str, dict[int, str]]:
        """Every function's kept version numbers, each with its code blob's sha256."""
        index: dict[str, dict[int, str]] = {}
        async with self._sessions() as session:
            rows = await session.execute(
                select(FunctionVersionRow.function, FunctionVersionRow.number, FunctionVersionRow.code_sha256)
            )
            for function, number, sha256 in rows:
                index.setdefault(function, {})[number] = sha256
        return index

    async def delete_function(self, name: str, routes: Iterable[str] = (), *, force: bool = False) -> None:
        """The function, its versions and its canaries, in one transaction; with ``force`` the routes,
        timers, watches and message-queue triggers that use it too (``routes``: those that split their
        calls between it and others). Without ``force`` nothing may use it (the caller found nothing: what
        uses it now another node made meanwhile): a Conflict naming them, and nothing is deleted."""
        try:
            async with self._sessions.begin() as session:
                if not force and (users := await _users(session, FunctionRow, name)):
                    raise _in_use(FunctionRow, name, users, force_hint=True)
                await session.execute(delete(FunctionVersionRow).where(FunctionVersionRow.function == name))
                await session.execute(delete(HttpTriggerRow).where(HttpTriggerRow.function == name))
                await session.execute(delete(HttpTriggerRow).where(HttpTriggerRow.name.in_(list(routes))))
                await session.execute(
                    delete(CanaryRow).where(or_(CanaryRow.newfunction == name, CanaryRow.oldfunction == name))
                )
                await session.execute(delete(TimerRow).where(TimerRow.function == name))
                await session.execute(delete(WatchRow).where(WatchRow.function == name))
                await session.execute(delete(MqTriggerRow).where(MqTriggerRow.function == name))
                await session.execute(delete(FunctionRow).where(FunctionRow.name == name))
        except IntegrityError as exc:  # a use committed between the check and the delete
            async with self._sessions() as session:
                users = await _users(session, FunctionRow, name)
            raise _in_use(FunctionRow, name, users, force_hint=not force) from exc

    # HTTP triggers
    async def add_trigger(self, trigger: HttpTrigger, url_key: str) -> None:
        await self._insert(
            HttpTriggerRow(
                name=trigger.name,
                method=trigger.method,
                url=trigger.url,
                url_key=url_key,
                function=trigger.function,
                created_at=trigger.created_at,
                updated_at=trigger.updated_at,
                is_async=trigger.is_async,
                functions_json=_weights_json(trigger),
            )
        )

    async def update_trigger(
        self, trigger: HttpTrigger, url_key: str, then: Callable[[AsyncSession], Awaitable[None]] | None = None
    ) -> None:
        """``then`` writes more in the same transaction (a canary's step: faasd/store/canaries.py)."""
        fields = {
            "method": trigger.method,
            "url": trigger.url,
            "url_key": url_key,
            "function": trigger.function,
            "updated_at": trigger.updated_at,
            "is_async": trigger.is_async,
            "functions_json": _weights_json(trigger),
        }
        try:
            async with self._sessions.begin() as session:
                row = HttpTriggerRow.name == trigger.name
                result = await session.execute(update(HttpTriggerRow).where(row).values(**fields))
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    raise NotFound(f"route '{trigger.name}' not found: it was deleted {MEANWHILE}")
                if then is not None:
                    await then(session)
        except IntegrityError as exc:
            raise Conflict(f"route {trigger.method} {trigger.url} exists already") from exc

    async def delete_trigger(self, name: str) -> None:
        await self._delete(HttpTriggerRow, name)

    # packages
    async def add_package(self, package: Package) -> None:
        await self._insert(PackageRow(**_package_fields(package), name=package.name, created_at=package.created_at))

    async def update_package(self, package: Package) -> None:
        await self._update(PackageRow, package.name, _package_fields(package))

    async def delete_package(self, name: str, functions: list[str], routes: Iterable[str] = ()) -> None:
        """The package, the ``functions`` that run it and the routes to them, in one transaction.

        A function that runs it and is not among ``functions`` (another node made it meanwhile) is a
        Conflict naming it, and nothing is deleted."""
        async with self._sessions.begin() as session:
            others = await session.scalars(
                select(FunctionRow.name)
                .where(FunctionRow.package == name, FunctionRow.name.not_in(functions))
                .order_by(FunctionRow.name)
            )
            users = [f"function '{n}'" for n in others]
            if users:
                raise Conflict(
                    f"package '{name}' is used by {', '.join(users)} {MEANWHILE}: nothing was deleted; "
                    "read it again and retry"
                )
            await session.execute(delete(HttpTriggerRow).where(HttpTriggerRow.name.in_(list(routes))))
            if functions:
                await session.execute(delete(FunctionVersionRow).where(FunctionVersionRow.function.in_(functions)))
                await session.execute(delete(HttpTriggerRow).where(HttpTriggerRow.function.in_(functions)))
                await session.execute(
                    delete(CanaryRow).where(
                        or_(CanaryRow.newfunction.in_(functions), CanaryRow.oldfunction.in_(functions))
                    )
                )
                await session.execute(delete(TimerRow).where(TimerRow.function.in_(functions)))
                await session.execute(delete(WatchRow).where(WatchRow.function.in_(functions)))
                await session.execute(delete(MqTriggerRow).where(MqTriggerRow.function.in_(functions)))
                await session.execute(delete(FunctionRow).where(FunctionRow.name.in_(functions)))
            await session.execute(delete(PackageRow).where(PackageRow.name == name))


def _weights_json(trigger: HttpTrigger) -> str:
    return json.dumps([[name, weight] for name, weight in trigger.functions])


async def _drop_versions(session: AsyncSession, function: str, numbers: Iterable[int]) -> None:
    numbers = list(numbers)
    if numbers:
        await session.execute(
            delete(FunctionVersionRow).where(
                FunctionVersionRow.function == function, FunctionVersionRow.number.in_(numbers)
            )
        )


def _function_fields(fn: Function) -> dict[str, Any]:
    return {
        "environment": fn.environment,
        "filename": fn.filename,
        "entrypoint": fn.entrypoint,
        "timeout": fn.timeout,
        "code_sha256": fn.code_sha256,
        "code_size": fn.code_size,
        "revision": fn.revision,
        "updated_at": fn.updated_at,
        "env_json": json.dumps(dict(fn.env), sort_keys=True),
        "secrets_json": json.dumps(dict(fn.secrets), sort_keys=True),
        "memory_mb": fn.memory_mb,
        "concurrency": fn.concurrency,
        "max_instances": fn.max_instances,
        "min_instances": fn.min_instances,
        "idle_timeout": fn.idle_timeout,
        "queue_timeout": fn.queue_timeout,
        "cpu_millis": fn.cpu_millis,
        "network": fn.network,
        "package": fn.package,
        "retries": fn.retries,
        "retry_max_age": fn.retry_max_age,
        "executor": fn.executor,
    }


def _package_fields(package: Package) -> dict[str, Any]:
    return {
        "environment": package.environment,
        "status": package.status.value,
        "source_sha256": package.source_sha256,
        "source_size": package.source_size,
        "deploy_sha256": package.deploy_sha256,
        "deploy_size": package.deploy_size,
        "buildcmd": package.buildcmd,
        "build_log": package.build_log,
        "error": package.error,
        "updated_at": package.updated_at,
    }


__all__ = ["Base", "Contents", "Store", "migrate", "utcnow"]
