"""The durable queue of asynchronous calls.

A call is written to SQLite before its caller hears 202. Writes go through
one task that commits them in batches (group commit): every call accepted
within one commit's fsync shares it, so a burst of calls costs a few fsyncs,
not one each, and the writes never race each other (an Idempotency-Key is
looked up and inserted by the same writer).

In memory the queue keeps only an index of the unfinished calls this node
holds (id, function, trigger, when due); bodies stay on disk until delivery.
faasd/events/delivery.py takes due calls from here and reports each attempt
back. With several nodes on one database, each call is held by one node at a
time (faasd/events/leases.py): a submitted call is held by its node from the
insert, in the same transaction.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from faasd.cluster.availability import describe, is_unavailable
from faasd.core.errors import NotFound, Overloaded, RegistryUnavailable
from faasd.core.events import RESULT_RETENTION, CallRequest, CallStatus, Invocation
from faasd.events.leases import RELEASE_TIMEOUT, LeaseKeeper, LeasePolicy
from faasd.events.tasks import stop_tasks
from faasd.store.events import NO_LEASE, CallFilter, InvocationStore

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[AsyncSession], Awaitable[Any]]
MAX_BATCH = 512
JANITOR_PERIOD = 60.0
# Seconds a submit waits for its commit at most (the database's own timeouts: PostgreSQL's 10 s to connect,
# SQLite's 5 s busy timeout, and a few more): past it the caller hears 503 registry_unavailable.
SUBMIT_TIMEOUT = 15.0


@dataclass
class Entry:
    """An unfinished call as the scheduler sees it."""

    id: str
    function: str
    trigger: str
    trigger_name: str
    due: float
    running: bool = False


class CallQueue:
    def __init__(
        self,
        store: InvocationStore,
        *,
        max_queued: int,
        clock: Callable[[], float] = time.time,
        leases: LeasePolicy | None = None,
        submit_timeout: float = SUBMIT_TIMEOUT,
    ) -> None:
        self._store = store
        self.max_queued = max_queued
        self.submit_timeout = submit_timeout
        self._clock = clock
        self.leases = leases or LeasePolicy()
        self.keeper = LeaseKeeper(self, self.leases)
        self._ops: list[tuple[Op, asyncio.Future[Any]]] = []
        self._wake_writer = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._janitor: asyncio.Task[None] | None = None
        self.entries: dict[str, Entry] = {}
        self._due: list[tuple[float, int, str]] = []  # heap of (due, seq, id); stale items are skipped
        self._seq = itertools.count()
        self.changed = asyncio.Event()  # set when a call becomes due sooner or a slot frees
        self._reserved = 0  # accepted calls not yet in entries (their batch is being committed)
        # A write failed: it may have committed all the same (the error came after the commit), leaving a
        # call held by this node in the database but not in its index. The lease keeper looks (leases.py).
        self.maybe_unindexed = False
        self._down = False  # the last batch failed because the database cannot be reached (logged once)

    # -- life ------------------------------------------------------------------

    @property
    def store(self) -> InvocationStore:
        return self._store

    def clock(self) -> float:
        return self._clock()

    def _lease(self) -> tuple[str, float]:
        return self.leases.node, self._clock() + self.leases.lease

    async def start(self) -> None:
        """Take the unfinished calls this node held before and those nobody holds. A call that was
        running when its node stopped runs again (at-least-once)."""
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop(), name="faasd-calls-writer")
        node, until = self._lease()
        rows = await self.write(lambda s: self._store.take_at_start(s, node, self._clock(), until))
        for call_id, function, trigger, trigger_name, due in rows:
            self._add(call_id, function, trigger, trigger_name, due)
        if self.entries:
            log.info("%d asynchronous call(s) to deliver", len(self.entries))
        self._janitor = loop.create_task(self._expire_loop(), name="faasd-calls-janitor")
        self.keeper.start()

    async def close(self) -> None:
        """Stop; the calls this node holds are released for the other nodes (and this one's next start)."""
        await self.keeper.close()
        if self._writer is not None and not self._writer.done():
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT):
                    await self.write(lambda s: self._store.release(s, self.leases.node))
            except Exception as exc:  # the database is gone: the leases run out instead
                log.warning(
                    "releasing this node's asynchronous calls failed (%s); they are free in %.0f s",
                    exc or type(exc).__name__,
                    self.leases.lease,
                )
        await stop_tasks([self._janitor, self._writer])
        for _op, future in self._ops:
            if not future.done():
                future.cancel()
        self._ops.clear()

    # -- the writer ------------------------------------------------------------

    def write(self, op: Callable[[AsyncSession], Awaitable[T]]) -> asyncio.Future[T]:
        """Run ``op`` in the next batch's transaction; the future resolves once it is committed."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._ops.append((op, future))
        self._wake_writer.set()
        return future

    async def _write_loop(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            while self._ops:
                batch, self._ops = self._ops[:MAX_BATCH], self._ops[MAX_BATCH:]
                results: list[Any] = []
                try:
                    async with self._store.begin() as session:
                        for op, _future in batch:
                            results.append(await op(session))
                except asyncio.CancelledError:
                    for _op, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:
                    self.maybe_unindexed = True
                    if is_unavailable(exc):
                        self._fail(batch, exc)  # each change alone would wait out the timeout again
                    elif len(batch) > 1:
                        # One change may have failed them all (another node inserted the same
                        # Idempotency-Key first): each again in a transaction of its own.
                        await self._write_alone(batch)
                    else:
                        log.exception("writing %d asynchronous call change(s) failed", len(batch))
                        self._fail(batch, exc)
                    continue
                if self._down:
                    self._down = False
                    log.info("writing asynchronous call changes works again")
                for (_op, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)

    def _fail(self, batch: list[tuple[Op, asyncio.Future[Any]]], exc: Exception) -> None:
        """Every change of ``batch`` failed with ``exc``; the database unreachable is a RegistryUnavailable
        (503 registry_unavailable to an API caller)."""
        error: Exception = exc
        if is_unavailable(exc):
            error = RegistryUnavailable(f"{describe(exc)}; retry when it answers again")
            error.__cause__ = exc
            if not self._down:
                self._down = True
                log.warning("writing asynchronous call changes failed: %s (logged once until it works)", error)
        for _op, future in batch:
            if not future.done():
                future.set_exception(error)

    async def _write_alone(self, batch: list[tuple[Op, asyncio.Future[Any]]]) -> None:
        """The changes of ``batch``, each in a transaction of its own."""
        failed: Exception | None = None
        for at, (op, future) in enumerate(batch):
            if future.done():
                continue
            try:
                async with self._store.begin() as session:
                    result = await op(session)
            except asyncio.CancelledError:
                for _op, left in batch:
                    left.cancel()
                raise
            except Exception as exc:
                if is_unavailable(exc):  # the database went away meanwhile: the rest fail at once
                    self._fail(batch[at:], exc)
                    return
                failed = exc
                future.set_exception(exc)
                continue
            future.set_result(result)
        if failed is not None:
            log.error("writing asynchronous call changes failed: %s", failed)

    async def _expire_old(self, session: AsyncSession) -> int:
        return await self._store.expire(session, self._clock() - RESULT_RETENTION)

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(JANITOR_PERIOD)
            try:
                gone = await self.write(self._expire_old)
            except Exception:
                log.exception("expiring old asynchronous calls failed")
                continue
            if gone:
                log.info("%d finished asynchronous call(s) older than 24 h removed", gone)

    # -- accepting -------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Calls queued or running."""
        return len(self.entries) + self._reserved

    async def submit(
        self,
        request: CallRequest,
        *,
        max_attempts: int,
        max_age: int,
        guard: Callable[[AsyncSession], Awaitable[bool]] | None = None,
    ) -> tuple[str, bool]:
        """Store a new call; (its id, False). With a known Idempotency-Key: (the first call's id, True).
        ``guard`` runs in the insert's transaction first: when it answers False nothing is stored and
        the answer is ("", False)."""
        if self.depth >= self.max_queued:
            raise Overloaded(
                f"the asynchronous call queue holds {self.max_queued} unfinished calls, its limit; retry later",
                {"Retry-After": "5"},
            )
        now = self._clock()
        inv = Invocation(
            id=str(uuid.uuid4()),
            request=request,
            status=CallStatus.queued,
            created_at=now,
            updated_at=now,
            next_at=now,
            max_attempts=max_attempts,
            max_age=max_age,
        )

        async def insert(session: AsyncSession) -> str | None:
            if guard is not None and not await guard(session):
                return ""
            if request.idempotency_key:
                first = await self._store.by_key(session, request.idempotency_key)
                if first is not None:
                    return first
            await self._store.insert(session, inv, self._lease())  # held by this node from the start
            await session.flush()
            return None

        def committed(future: asyncio.Future[str | None]) -> None:
            # Indexed as soon as it is on disk, even when the submitter was cancelled meanwhile
            # (a watch being updated): a stored call is always delivered.
            self._reserved -= 1
            if not future.cancelled() and future.exception() is None and future.result() is None:
                self._index(inv)

        self._reserved += 1
        written = self.write(insert)
        written.add_done_callback(committed)
        deadline = asyncio.timeout(self.submit_timeout)
        try:
            async with deadline:
                first = await asyncio.shield(written)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise self._gave_up(written) from None
        if first == "":
            return "", False
        return (first, True) if first is not None else (inv.id, False)

    def _gave_up(self, written: asyncio.Future[Any]) -> RegistryUnavailable:
        """A submit that waited ``submit_timeout`` for its commit: withdrawn when the writer has not taken it
        yet; a commit under way may still store the call (it is indexed and delivered then)."""
        waited = describe(TimeoutError(f"no commit within {self.submit_timeout:g} s"))
        for at, (_op, queued) in enumerate(self._ops):
            if queued is written:
                del self._ops[at]
                written.cancel()
                return RegistryUnavailable(f"{waited}; the call was not stored, retry it")
        return RegistryUnavailable(
            f"{waited}; the call may be stored all the same: retry it with an Idempotency-Key to make it once"
        )

    # -- scheduling ------------------------------------------------------------

    def _index(self, inv: Invocation) -> None:
        if inv.id in self.entries:  # taken up by the lease keeper already (leases.py, take_free)
            return
        req = inv.request
        self._add(inv.id, req.function, req.trigger, req.trigger_name, inv.next_at)

    def adopt(self, call_id: str, function: str, trigger: str, trigger_name: str, due: float) -> None:
        """A call this node claimed (faasd/events/leases.py) joins the index."""
        self._add(call_id, function, trigger, trigger_name, due)

    def _add(self, call_id: str, function: str, trigger: str, trigger_name: str, due: float) -> None:
        self.entries[call_id] = Entry(call_id, function, trigger, trigger_name, due)
        self._push(call_id, due)

    def _push(self, call_id: str, due: float) -> None:
        heapq.heappush(self._due, (due, next(self._seq), call_id))
        self.changed.set()

    def next_due(self) -> float | None:
        """When the earliest queued call is due; None when none is queued."""
        while self._due:
            due, _seq, call_id = self._due[0]
            entry = self.entries.get(call_id)
            if entry is not None and not entry.running and entry.due == due:
                return due
            heapq.heappop(self._due)  # finished, running or rescheduled since
        return None

    def pop_due(self, now: float) -> Entry | None:
        """The earliest call due by ``now``, marked running; None when none is."""
        due = self.next_due()
        if due is None or due > now:
            return None
        _due, _seq, call_id = heapq.heappop(self._due)
        entry = self.entries[call_id]
        entry.running = True
        return entry

    def put_back(self, entry: Entry, due: float) -> None:
        """A popped call not started after all (its function is at its share): due again at ``due``."""
        entry.running = False
        entry.due = due
        self._push(entry.id, due)

    def forget(self, call_id: str) -> None:
        """A call that is gone from the store leaves the index."""
        if self.entries.pop(call_id, None) is not None:
            self.changed.set()

    def has_unfinished(self, trigger: str, name: str) -> bool:
        return any(e.trigger == trigger and e.trigger_name == name for e in self.entries.values())

    # -- progress --------------------------------------------------------------

    async def get(self, call_id: str) -> Invocation:
        inv = await self._store.get(call_id)
        if inv is None:
            raise NotFound(f"call '{call_id}' not found")
        return inv

    async def get_held(self, call_id: str) -> tuple[Invocation, bool]:
        """A call to deliver, and whether this node holds it (a lease of its own that has not run out)."""
        found = await self._store.get_leased(call_id)
        if found is None:
            raise NotFound(f"call '{call_id}' not found")
        inv, owner, until = found
        return inv, owner == self.leases.node and until > self._clock()

    async def claim(self, call_id: str) -> bool:
        """Take a call nobody else holds (a released retry, a lease that ran out); False: another node has it."""
        node, until = self._lease()
        return bool(await self.write(lambda s: self._store.claim(s, call_id, node, self._clock(), until)))

    def record_soon(self, inv: Invocation) -> None:
        """Store a running call's attempt without waiting for the commit (a failure is logged by the writer)."""
        future = self.write(lambda s: self._store.save(s, inv, holder=self.leases.node))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def record(self, inv: Invocation) -> bool:
        """Store a call's new state; a queued one is scheduled again, a finished one leaves the index.
        A queued or finished call is released. False (and the call leaves the index): another node
        holds it now (this one stalled past its lease), and its record stands."""
        lease = None if inv.status == CallStatus.running else NO_LEASE
        held = await self.write(lambda s: self._store.save(s, inv, holder=self.leases.node, lease=lease))
        if not held:
            log.warning("call %s: another node took it over; this node's attempt is not recorded", inv.id)
            self.forget(inv.id)
            return False
        entry = self.entries.get(inv.id)
        if entry is None:
            return True
        if inv.status.finished:
            del self.entries[inv.id]
            self.changed.set()
        elif inv.status == CallStatus.queued:
            entry.running = False
            entry.due = inv.next_at
            self._push(inv.id, inv.next_at)
        return True

    # -- reading and dead letters ---------------------------------------------

    async def find(self, what: CallFilter) -> list[Invocation]:
        return await self._store.find(what)

    async def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in CallStatus}
        counts.update(await self._store.counts())
        return counts

    async def redrive(self, invs: list[Invocation], policy: Callable[[str], tuple[int, int]]) -> list[str]:
        """Dead letters queued again as new attempts: attempts kept, age and attempt budget renewed."""
        if self.depth + len(invs) > self.max_queued:
            raise Overloaded(
                f"redriving {len(invs)} call(s) would take the asynchronous call queue past its limit "
                f"of {self.max_queued}; redrive fewer, or later",
                {"Retry-After": "5"},
            )
        now = self._clock()
        again = []
        for inv in invs:
            if inv.status != CallStatus.dead:
                continue
            max_attempts, max_age = policy(inv.function)
            again.append(
                replace(
                    inv,
                    status=CallStatus.queued,
                    next_at=now,
                    updated_at=now,
                    created_at=now,
                    max_attempts=len(inv.attempts) + max_attempts,
                    max_age=max_age,
                    reason="",
                )
            )
        if not again:
            return []
        self._reserved += len(again)
        try:
            done = await self.write(lambda s: self._redrive_rows(s, again))
        finally:
            self._reserved -= len(again)
        for inv in again:
            if inv.id in done:
                self._index(inv)
        return [inv.id for inv in again if inv.id in done]

    async def _redrive_rows(self, session: AsyncSession, invs: list[Invocation]) -> set[str]:
        """Only calls still dead when the writer gets to them (a concurrent redrive or purge came first)."""
        done: set[str] = set()
        lease = self._lease()
        for inv in invs:
            if await self._store.status_of(session, inv.id) == CallStatus.dead.value:
                await self._store.save(session, inv, renewed=True, lease=lease)
                done.add(inv.id)
        return done

    async def purge(self, ids: list[str]) -> int:
        """Delete dead letters (a call that is not dead any more, redriven meanwhile, stays)."""
        if not ids:
            return 0
        return int(await self.write(lambda s: self._store.delete(s, ids, status=CallStatus.dead.value)))
