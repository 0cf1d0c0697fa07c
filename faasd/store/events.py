"""Events in the registry's SQLite file: invocations, timers and watches.

Same database, same pragmas (WAL, synchronous=FULL) as faasd/store/registry.py:
an invocation that was answered 202 is on disk. Only faasd/events calls the
invocation half; the trigger half is the timers' and watches' registry.

Several faasd nodes may share the database: an unfinished call is delivered
only by the node that holds its lease (``lease_owner`` until ``lease_until``;
faasd/events/leases.py). Every claim is a conditional UPDATE whose row count
says whether it was taken, on SQLite and PostgreSQL alike. On SQLite the
writer's transactions begin IMMEDIATE: a transaction that read first and then
writes could otherwise fail at once (not wait) when another process wrote
meanwhile.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, literal, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from faasd.core.errors import Conflict
from faasd.core.events import Attempt, CallRequest, CallStatus, Invocation, MqTrigger, Timer, Watch
from faasd.store.models import InvocationRow, MqTriggerRow, TimerRow, WatchPositionRow, WatchRow
from faasd.store.registry import _aware

ACTIVE = (CallStatus.queued.value, CallStatus.running.value)
NO_LEASE: tuple[str | None, float] = (None, 0.0)
# (id, function, trigger, trigger name, due): an unfinished call as the queue indexes it.
IndexRow = tuple[str, str, str, str, float]
_INDEX_COLUMNS = (
    InvocationRow.id,
    InvocationRow.function,
    InvocationRow.trigger,
    InvocationRow.trigger_name,
    InvocationRow.next_at,
)


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
        self._immediate = engine.dialect.name == "sqlite"

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncSession]:
        """One transaction for a batch of writes: ``async with store.begin() as session``."""
        async with self._sessions.begin() as session:
            if self._immediate:
                # The write lock first (waiting up to the busy timeout), so that the batch's reads
                # (an Idempotency-Key, a claim) and writes see one state of the file.
                await session.execute(text("BEGIN IMMEDIATE"))
            yield session

    async def by_key(self, session: AsyncSession, key: str) -> str | None:
        return await session.scalar(select(InvocationRow.id).where(InvocationRow.idempotency_key == key))

    async def insert(self, session: AsyncSession, inv: Invocation, lease: tuple[str | None, float] = NO_LEASE) -> None:
        """A new call; ``lease``: (node, until) when the submitting node holds it from the start."""
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
                lease_owner=lease[0],
                lease_until=lease[1],
                **_progress(inv),
            )
        )

    async def save(
        self,
        session: AsyncSession,
        inv: Invocation,
        *,
        renewed: bool = False,
        holder: str | None = None,
        lease: tuple[str | None, float] | None = None,
    ) -> bool:
        """A call's progress; ``renewed`` (a redrive) also its age and attempt budget. ``holder``: only
        while that node holds the call; ``lease``: its new (owner, until). False when nothing was saved."""
        values = _progress(inv)
        if inv.status in (CallStatus.succeeded, CallStatus.failed):
            values["body"] = b""  # no redrive of a finished call: its request body is not kept
        if renewed:
            values.update(created_at=inv.created_at, max_attempts=inv.max_attempts, max_age=inv.max_age)
        if lease is not None:
            values.update(lease_owner=lease[0], lease_until=lease[1])
        query = update(InvocationRow).where(InvocationRow.id == inv.id)
        if holder is not None:
            query = query.where(InvocationRow.lease_owner == holder)
        result = await session.execute(query.values(**values))
        return _rowcount(result) > 0

    async def get(self, call_id: str) -> Invocation | None:
        found = await self.get_leased(call_id)
        return None if found is None else found[0]

    async def get_leased(self, call_id: str) -> tuple[Invocation, str | None, float] | None:
        """A call with its lease: (call, owner, until)."""
        async with self._sessions() as session:
            row = await session.get(InvocationRow, call_id)
            return None if row is None else (_invocation(row), row.lease_owner, float(row.lease_until or 0.0))

    # -- leases (faasd/events/leases.py) ---------------------------------------

    async def take_at_start(self, session: AsyncSession, node: str, now: float, until: float) -> list[IndexRow]:
        """Every unfinished call this node held before (a restart) or nobody holds now, held by ``node``
        until ``until``; such a call left running (its node stopped during it) is queued again, due now."""
        mine_or_free = or_(InvocationRow.lease_owner == node, InvocationRow.lease_until < now)
        await session.execute(
            update(InvocationRow)
            .where(InvocationRow.status == CallStatus.running.value, mine_or_free)
            .values(status=CallStatus.queued.value, next_at=now, updated_at=now)
        )
        await session.execute(
            update(InvocationRow)
            .where(InvocationRow.status.in_(ACTIVE), mine_or_free)
            .values(lease_owner=node, lease_until=until)
        )
        rows = await session.execute(
            select(*_INDEX_COLUMNS)
            .where(InvocationRow.status.in_(ACTIVE), InvocationRow.lease_owner == node)
            .order_by(InvocationRow.created_at)
        )
        return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    async def claimable(self, now: float, limit: int) -> list[IndexRow]:
        """Unfinished calls due by ``now`` that no node holds (released, or a lease that ran out)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(*_INDEX_COLUMNS)
                .where(
                    InvocationRow.status.in_(ACTIVE),
                    InvocationRow.lease_until < now,
                    InvocationRow.next_at <= now,
                )
                .order_by(InvocationRow.next_at)
                .limit(limit)
            )
            return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    async def held_by(self, node: str) -> list[IndexRow]:
        """The unfinished calls ``node`` holds (its lease, run out or not)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(*_INDEX_COLUMNS).where(InvocationRow.status.in_(ACTIVE), InvocationRow.lease_owner == node)
            )
            return [(r[0], r[1], r[2], r[3], float(r[4])) for r in rows]

    async def claim(self, session: AsyncSession, call_id: str, node: str, now: float, until: float) -> bool:
        """Take ``call_id`` for ``node`` when nobody else holds it: a conditional UPDATE, True when it
        changed the row. A call left running by a node that is gone is queued again."""
        result = await session.execute(
            update(InvocationRow)
            .where(
                InvocationRow.id == call_id,
                InvocationRow.status.in_(ACTIVE),
                or_(InvocationRow.lease_until < now, InvocationRow.lease_owner == node),
            )
            .values(lease_owner=node, lease_until=until, status=CallStatus.queued.value)
        )
        return _rowcount(result) > 0

    async def renew(self, session: AsyncSession, node: str, until: float) -> int:
        """Every unfinished call ``node`` holds is held until ``until``: one statement."""
        result = await session.execute(
            update(InvocationRow)
            .where(InvocationRow.lease_owner == node, InvocationRow.status.in_(ACTIVE))
            .values(lease_until=until)
        )
        return _rowcount(result)

    async def release(self, session: AsyncSession, node: str) -> int:
        """``node`` stops: its calls are free for any node (one cut off while running is queued again
        by the node that takes it)."""
        result = await session.execute(
            update(InvocationRow)
            .where(InvocationRow.lease_owner == node, InvocationRow.status.in_(ACTIVE))
            .values(lease_owner=None, lease_until=0.0)
        )
        return _rowcount(result)

    async def has_unfinished(self, session: AsyncSession, trigger: str, name: str) -> bool:
        """Whether a call of this trigger is queued or running, on any node."""
        found = await session.scalar(
            select(InvocationRow.id)
            .where(
                InvocationRow.status.in_(ACTIVE),
                InvocationRow.trigger == trigger,
                InvocationRow.trigger_name == name,
            )
            .limit(1)
        )
        return found is not None

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
        return _rowcount(result)

    async def status_of(self, session: AsyncSession, call_id: str) -> str | None:
        return await session.scalar(select(InvocationRow.status).where(InvocationRow.id == call_id))

    async def delete(self, session: AsyncSession, ids: Sequence[str], status: str | None = None) -> int:
        query = delete(InvocationRow).where(InvocationRow.id.in_(ids))
        if status is not None:
            query = query.where(InvocationRow.status == status)
        result = await session.execute(query)
        return _rowcount(result)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


class TriggerStore:
    """Timers and watches: the registry's rows for them. ``node``: whose watch positions (each node
    follows its own engine's events, so each keeps where it is in them)."""

    def __init__(self, engine: AsyncEngine, node: str = "local") -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self.node = node

    async def load(self) -> tuple[list[Timer], list[tuple[Watch, int, dict[str, Any]]]]:
        """The timers, and each watch with this node's stream cursor and last snapshot (0, {}: none yet)."""
        mine = select(WatchPositionRow.watch).where(WatchPositionRow.node == self.node)
        async with self._sessions.begin() as session:
            # A position from before nodes goes to the first node that starts (one UPDATE: one node).
            await session.execute(
                update(WatchPositionRow)
                .where(WatchPositionRow.node == "", WatchPositionRow.watch.not_in(mine))
                .values(node=self.node)
            )
            timers = [_timer(r) for r in await session.scalars(select(TimerRow))]
            positions = {
                r.watch: (r.cursor, json.loads(r.snapshot_json))
                for r in await session.scalars(select(WatchPositionRow).where(WatchPositionRow.node == self.node))
            }
            watches = [(_watch(r), *positions.get(r.name, (0, {}))) for r in await session.scalars(select(WatchRow))]
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
        }
        # ``last_tick`` only when it is made: afterwards only claim_tick moves it (an update carrying this
        # node's older tick would move it back, and a tick another node made would be made again).
        created = {**fields, "created_at": timer.created_at, "last_tick": timer.last_tick}
        await self._put(TimerRow, timer.name, new, created, fields)

    async def put_watch(self, watch: Watch, *, new: bool, cursor: int = 0, restart: bool = False) -> None:
        fields = {
            "function": watch.function,
            "type": watch.type,
            "labels_json": json.dumps(dict(watch.labels), sort_keys=True),
            "events_json": json.dumps(list(watch.events)),
            "include_faasd": watch.include_faasd,
            "updated_at": watch.updated_at,
        }
        created = {**fields, "created_at": watch.created_at, "cursor": 0, "snapshot_json": "{}"}
        await self._put(WatchRow, watch.name, new, created, fields)
        if new or restart:  # what it follows changed: every node starts from now, old snapshots do not apply
            async with self._sessions.begin() as session:
                await session.execute(delete(WatchPositionRow).where(WatchPositionRow.watch == watch.name))
        if new and cursor:
            await self.set_watch_cursor(watch.name, cursor)

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
        async with self._sessions.begin() as session:
            await session.execute(delete(WatchPositionRow).where(WatchPositionRow.watch == name))
            await session.execute(delete(WatchRow).where(WatchRow.name == name))

    async def set_last_tick(self, name: str, tick: float) -> None:
        async with self._sessions.begin() as session:
            await self.claim_tick(session, name, tick)

    @staticmethod
    async def claim_tick(session: AsyncSession, name: str, tick: float) -> bool:
        """Move the timer's ``last_tick`` up to ``tick``: True for the one node (of all sharing the
        database) whose conditional UPDATE did it, False when that tick or a later one was made."""
        result = await session.execute(
            update(TimerRow)
            .where(TimerRow.name == name, or_(TimerRow.last_tick.is_(None), TimerRow.last_tick < tick))
            .values(last_tick=tick)
        )
        return _rowcount(result) > 0

    async def set_watch_cursor(self, name: str, cursor: int) -> None:
        """The cursor alone: an event that changed no object (the snapshot is not written again)."""
        await self._set_position(name, {"cursor": cursor})

    async def set_watch_state(self, name: str, cursor: int, snapshot: dict[str, Any]) -> None:
        await self._set_position(name, {"cursor": cursor, "snapshot_json": json.dumps(snapshot, sort_keys=True)})

    async def _set_position(self, name: str, values: dict[str, Any]) -> None:
        """This node's position of watch ``name``: updated, or made (only while the watch exists). Only
        this node writes its row, so the update-then-insert does not race."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(WatchPositionRow)
                .where(WatchPositionRow.watch == name, WatchPositionRow.node == self.node)
                .values(**values)
            )
            if _rowcount(result):
                return
            row = {"watch": name, "node": self.node, "cursor": 0, "snapshot_json": "{}", **values}
            columns = list(row)
            exists = select(*(literal(row[c]) for c in columns)).where(
                select(WatchRow.name).where(WatchRow.name == name).exists()
            )
            await session.execute(insert(WatchPositionRow).from_select(columns, exists))


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
