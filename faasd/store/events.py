"""Events in the registry's SQLite file: invocations, timers and watches.

Same database, same pragmas (WAL, synchronous=FULL) as faasd/store/registry.py:
an invocation that was answered 202 is on disk. Only faasd/events calls the
invocation half; the trigger half is the timers' and watches' registry.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faasd.core.errors import Conflict
from faasd.core.events import Attempt, CallRequest, CallStatus, Invocation, MqTrigger, Timer, Watch
from faasd.store.models import InvocationRow, MqTriggerRow, TimerRow, WatchRow
from faasd.store.registry import _aware

ACTIVE = (CallStatus.queued.value, CallStatus.running.value)


def _invocation(row: InvocationRow) -> Invocation:
    return Invocation(
        id=row.id,
        request=CallRequest(
            function=row.function,
            method=row.method,
            target=row.target,
            headers=tuple((k, v) for k, v in json.loads(row.headers_json)),
            body=row.body,
            trigger=row.trigger,
            trigger_name=row.trigger_name,
            callback_url=row.callback_url,
            idempotency_key=row.idempotency_key or "",
        ),
        status=CallStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        next_at=row.next_at,
        max_attempts=row.max_attempts,
        max_age=row.max_age,
        attempts=tuple(Attempt.from_json(a) for a in json.loads(row.attempts_json)),
        response_status=row.response_status,
        response_headers=tuple((k, v) for k, v in json.loads(row.response_headers_json)),
        response_body=row.response_body,
        response_truncated=row.response_truncated,
        reason=row.reason,
    )


def _progress(inv: Invocation) -> dict[str, Any]:
    """The columns that change as a call goes: status, attempts, answer."""
    return {
        "status": inv.status.value,
        "updated_at": inv.updated_at,
        "next_at": inv.next_at,
        "attempts_json": json.dumps([a.to_row() for a in inv.attempts]),
        "response_status": inv.response_status,
        "response_headers_json": json.dumps([list(h) for h in inv.response_headers]),
        "response_body": inv.response_body,
        "response_truncated": inv.response_truncated,
        "reason": inv.reason,
    }


@dataclass(frozen=True)
class CallFilter:
    function: str = ""
    status: str = ""
    since: float | None = None  # created at or after (Unix seconds)
    limit: int = 100


class InvocationStore:
    """Writes come from one task at a time (faasd/events/queue.py batches them)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    def begin(self) -> Any:
        """One transaction for a batch of writes: ``async with store.begin() as session``."""
        return self._sessions.begin()

    async def by_key(self, session: AsyncSession, key: str) -> str | None:
        return await session.scalar(select(InvocationRow.id).where(InvocationRow.idempotency_key == key))

    async def insert(self, session: AsyncSession, inv: Invocation) -> None:
        req = inv.request
        session.add(
            InvocationRow(
                id=inv.id,
                function=req.function,
                method=req.method,
                target=req.target,
                headers_json=json.dumps([list(h) for h in req.headers]),
                body=req.body,
                trigger=req.trigger,
                trigger_name=req.trigger_name,
                callback_url=req.callback_url,
                idempotency_key=req.idempotency_key or None,
                created_at=inv.created_at,
                max_attempts=inv.max_attempts,
                max_age=inv.max_age,
                **_progress(inv),
            )
        )

    async def save(self, session: AsyncSession, inv: Invocation, *, renewed: bool = False) -> None:
        """A call's progress; ``renewed`` (a redrive) also its age and attempt budget."""
        values = _progress(inv)
        if inv.status in (CallStatus.succeeded, CallStatus.failed):
            values["body"] = b""  # no redrive of a finished call: its request body is not kept
        if renewed:
            values.update(created_at=inv.created_at, max_attempts=inv.max_attempts, max_age=inv.max_age)
        await session.execute(update(InvocationRow).where(InvocationRow.id == inv.id).values(**values))

    async def get(self, call_id: str) -> Invocation | None:
        async with self._sessions() as session:
            row = await session.get(InvocationRow, call_id)
            return None if row is None else _invocation(row)

    async def active_index(self, now: float) -> list[tuple[str, str, str, str, float]]:
        """(id, function, trigger, trigger name, due) of every unfinished call, oldest first, without
        their bodies; a call left running (faasd stopped during it) is queued again, due ``now``."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(InvocationRow)
                .where(InvocationRow.status == CallStatus.running.value)
                .values(status=CallStatus.queued.value, next_at=now, updated_at=now)
            )
            rows = await session.execute(
                select(
                    InvocationRow.id,
                    InvocationRow.function,
                    InvocationRow.trigger,
                    InvocationRow.trigger_name,
                    InvocationRow.next_at,
                )
                .where(InvocationRow.status.in_(ACTIVE))
                .order_by(InvocationRow.created_at)
            )
            return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    async def find(self, what: CallFilter) -> list[Invocation]:
        query = select(InvocationRow)
        if what.function:
            query = query.where(InvocationRow.function == what.function)
        if what.status:
            query = query.where(InvocationRow.status == what.status)
        if what.since is not None:
            query = query.where(InvocationRow.created_at >= what.since)
        query = query.order_by(InvocationRow.created_at.desc()).limit(what.limit)
        async with self._sessions() as session:
            return [_invocation(r) for r in await session.scalars(query)]

    async def counts(self) -> dict[str, int]:
        async with self._sessions() as session:
            rows = await session.execute(select(InvocationRow.status, func.count()).group_by(InvocationRow.status))
            return {str(row[0]): int(row[1]) for row in rows}

    async def expire(self, session: AsyncSession, before: float) -> int:
        """Succeeded and failed calls finished before ``before`` go (dead letters stay until purged)."""
        done = (CallStatus.succeeded.value, CallStatus.failed.value)
        result = await session.execute(
            delete(InvocationRow).where(InvocationRow.status.in_(done), InvocationRow.updated_at < before)
        )
        await session.execute(
            update(InvocationRow)
            .where(InvocationRow.status == CallStatus.dead.value, InvocationRow.updated_at < before)
            .values(idempotency_key=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def status_of(self, session: AsyncSession, call_id: str) -> str | None:
        return await session.scalar(select(InvocationRow.status).where(InvocationRow.id == call_id))

    async def delete(self, session: AsyncSession, ids: Sequence[str], status: str | None = None) -> int:
        query = delete(InvocationRow).where(InvocationRow.id.in_(ids))
        if status is not None:
            query = query.where(InvocationRow.status == status)
        result = await session.execute(query)
        return int(getattr(result, "rowcount", 0) or 0)


class TriggerStore:
    """Timers and watches: the registry's rows for them."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def load(self) -> tuple[list[Timer], list[tuple[Watch, int, dict[str, Any]]]]:
        """The timers, and each watch with its stream cursor and last snapshot."""
        async with self._sessions() as session:
            timers = [_timer(r) for r in await session.scalars(select(TimerRow))]
            watches = [
                (_watch(r), r.cursor, json.loads(r.snapshot_json)) for r in await session.scalars(select(WatchRow))
            ]
        return timers, watches

    async def put_timer(self, timer: Timer, *, new: bool) -> None:
        fields = {
            "function": timer.function,
            "cron": timer.cron,
            "timezone": timer.timezone,
            "method": timer.method,
            "subpath": timer.subpath,
            "overlap": timer.overlap,
            "catch_up": timer.catch_up,
            "updated_at": timer.updated_at,
            "last_tick": timer.last_tick,
        }
        await self._put(TimerRow, timer.name, new, {**fields, "created_at": timer.created_at}, fields)

    async def put_watch(self, watch: Watch, *, new: bool, cursor: int = 0, restart: bool = False) -> None:
        fields = {
            "function": watch.function,
            "type": watch.type,
            "labels_json": json.dumps(dict(watch.labels), sort_keys=True),
            "events_json": json.dumps(list(watch.events)),
            "include_faasd": watch.include_faasd,
            "updated_at": watch.updated_at,
        }
        created = {**fields, "created_at": watch.created_at, "cursor": cursor, "snapshot_json": "{}"}
        if restart:  # what it follows changed: it starts from now, its old snapshot does not apply
            fields = {**fields, "cursor": 0, "snapshot_json": "{}"}
        await self._put(WatchRow, watch.name, new, created, fields)

    async def load_mq(self) -> list[MqTrigger]:
        async with self._sessions() as session:
            return [_mq(r) for r in await session.scalars(select(MqTriggerRow))]

    async def put_mq(self, trigger: MqTrigger, *, new: bool) -> None:
        fields = {
            "function": trigger.function,
            "mqtype": trigger.mqtype,
            "topic": trigger.topic,
            "resptopic": trigger.resptopic,
            "errortopic": trigger.errortopic,
            "maxretries": trigger.maxretries,
            "maxconcurrency": trigger.maxconcurrency,
            "contenttype": trigger.contenttype,
            "connection": trigger.connection,
            "connection_secret": trigger.connection_secret,
            "method": trigger.method,
            "updated_at": trigger.updated_at,
        }
        await self._put(MqTriggerRow, trigger.name, new, {**fields, "created_at": trigger.created_at}, fields)

    async def delete_mq(self, name: str) -> None:
        await self.delete(MqTriggerRow, name)

    async def _put(
        self,
        model: type[TimerRow] | type[WatchRow] | type[MqTriggerRow],
        name: str,
        new: bool,
        created: dict[str, Any],
        fields: dict[str, Any],
    ) -> None:
        try:
            async with self._sessions.begin() as session:
                if new:
                    session.add(model(name=name, **created))
                else:
                    await session.execute(update(model).where(model.name == name).values(**fields))
        except IntegrityError as exc:
            raise Conflict(f"{model.__tablename__[:-1]} '{name}' conflicts with an existing one") from exc

    async def delete(self, model: type[TimerRow] | type[WatchRow] | type[MqTriggerRow], name: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(model).where(model.name == name))

    async def delete_timer(self, name: str) -> None:
        await self.delete(TimerRow, name)

    async def delete_watch(self, name: str) -> None:
        await self.delete(WatchRow, name)

    async def set_last_tick(self, name: str, tick: float) -> None:
        async with self._sessions.begin() as session:
            await session.execute(update(TimerRow).where(TimerRow.name == name).values(last_tick=tick))

    async def set_watch_cursor(self, name: str, cursor: int) -> None:
        """The cursor alone: an event that changed no object (the snapshot is not written again)."""
        async with self._sessions.begin() as session:
            await session.execute(update(WatchRow).where(WatchRow.name == name).values(cursor=cursor))

    async def set_watch_state(self, name: str, cursor: int, snapshot: dict[str, Any]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(WatchRow)
                .where(WatchRow.name == name)
                .values(cursor=cursor, snapshot_json=json.dumps(snapshot, sort_keys=True))
            )


def _timer(row: TimerRow) -> Timer:
    return Timer(
        name=row.name,
        function=row.function,
        cron=row.cron,
        timezone=row.timezone,
        method=row.method,
        subpath=row.subpath,
        overlap=row.overlap,
        catch_up=row.catch_up,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
        last_tick=row.last_tick,
    )


def _watch(row: WatchRow) -> Watch:
    return Watch(
        name=row.name,
        function=row.function,
        type=row.type,
        labels=json.loads(row.labels_json),
        events=tuple(json.loads(row.events_json)),
        include_faasd=row.include_faasd,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )


def _mq(row: MqTriggerRow) -> MqTrigger:
    return MqTrigger(
        name=row.name,
        function=row.function,
        mqtype=row.mqtype,
        topic=row.topic,
        resptopic=row.resptopic,
        errortopic=row.errortopic,
        maxretries=row.maxretries,
        maxconcurrency=row.maxconcurrency,
        contenttype=row.contenttype,
        connection=row.connection,
        connection_secret=row.connection_secret,
        method=row.method,
        created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at),
    )
