"""faasd/events/queue.py: the durable queue of asynchronous calls, on a real SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from faasd.core.errors import NotFound, Overloaded
from faasd.core.events import Attempt, CallRequest, CallStatus, Invocation
from faasd.events.queue import CallQueue
from faasd.store.events import CallFilter, InvocationStore
from faasd.store.registry import Store

T0 = 1_800_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(InvocationStore):
    """Counts the writer's transactions (one per batch)."""

    commits = 0

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[Any]:
        async with super().begin() as session:
            yield session
        self.commits += 1


class Env:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.stores: list[Store] = []
        self.queues: list[CallQueue] = []
        self.clock = Clock()

    async def store(self) -> Store:
        store = await Store.open(self.path)
        self.stores.append(store)
        return store

    async def queue(self, max_queued: int = 100, *, start: bool = True) -> tuple[CallQueue, CountingStore]:
        calls = CountingStore((await self.store()).engine)
        queue = CallQueue(calls, max_queued=max_queued, clock=self.clock)
        self.queues.append(queue)
        if start:
            await queue.start()
        return queue, calls

    async def close(self) -> None:
        for queue in self.queues:
            await queue.close()
        for store in self.stores:
            await store.close()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    e = Env(tmp_path / "faasd.db")
    yield e
    await e.close()


def call(function: str = "hello", *, key: str = "", trigger: str = "async", name: str = "", body: bytes = b"hi"):  # type: ignore[no-untyped-def]
    return CallRequest(
        function=function,
        method="POST",
        target=f"/function/{function}",
        headers=(("Content-Type", "text/plain"), ("X-Thing", "1")),
        body=body,
        trigger=trigger,
        trigger_name=name,
        idempotency_key=key,
    )


async def submit(queue: CallQueue, request: CallRequest | None = None, **policy: int) -> str:
    call_id, repeated = await queue.submit(
        request or call(), max_attempts=policy.get("max_attempts", 5), max_age=policy.get("max_age", 3600)
    )
    assert not repeated
    return call_id


def attempted(inv: Invocation, *statuses: int | None, at: float = T0) -> Invocation:
    return replace(
        inv,
        attempts=tuple(Attempt(n, at, at + 0.1, status) for n, status in enumerate(statuses, start=1)),
        updated_at=at,
    )


# -- accepting -------------------------------------------------------------------------------------


async def test_submit_stores_the_call_before_it_returns(env: Env) -> None:
    queue, _ = await env.queue()
    call_id = await submit(queue, call(body=b"\x00\xffpayload"), max_attempts=3, max_age=600)
    # Another connection to the same file (another process, a restart) sees the row at once.
    other = InvocationStore((await env.store()).engine)
    inv = await other.get(call_id)
    assert inv is not None
    assert inv.status == CallStatus.queued
    assert inv.request == call(body=b"\x00\xffpayload")
    assert (inv.created_at, inv.updated_at, inv.next_at) == (T0, T0, T0)
    assert (inv.max_attempts, inv.max_age) == (3, 600)
    assert inv.attempts == ()
    assert queue.depth == 1
    assert call_id in queue.entries


async def test_the_same_idempotency_key_gives_the_first_call(env: Env) -> None:
    queue, _ = await env.queue()
    first, repeated = await queue.submit(call(key="order-1"), max_attempts=5, max_age=3600)
    assert not repeated
    again, repeated = await queue.submit(call(key="order-1", body=b"other"), max_attempts=5, max_age=3600)
    assert (again, repeated) == (first, True)
    other, repeated = await queue.submit(call(key="order-2"), max_attempts=5, max_age=3600)
    assert other != first and not repeated
    assert queue.depth == 2
    assert (await queue.counts())["queued"] == 2
    assert (await queue.get(first)).request.body == b"hi"


async def test_the_same_idempotency_key_twice_in_one_batch(env: Env) -> None:
    queue, calls = await env.queue()
    before = calls.commits
    results = await asyncio.gather(
        *(queue.submit(call(key="same"), max_attempts=5, max_age=3600) for _ in range(5)),
        queue.submit(call(key="different"), max_attempts=5, max_age=3600),
    )
    assert calls.commits - before == 1  # one batch
    ids = [r[0] for r in results[:5]]
    assert len(set(ids)) == 1
    assert [r[1] for r in results[:5]] == [False, True, True, True, True]
    assert results[5][0] != ids[0] and results[5][1] is False
    assert queue.depth == 2
    assert (await queue.counts())["queued"] == 2


async def test_a_key_stays_known_while_the_call_is_kept(env: Env) -> None:
    queue, _ = await env.queue()
    first, _ = await queue.submit(call(key="k"), max_attempts=5, max_age=3600)
    entry = queue.pop_due(T0)
    assert entry is not None
    await queue.record(replace(attempted(await queue.get(first), 200), status=CallStatus.succeeded))
    assert await queue.submit(call(key="k"), max_attempts=5, max_age=3600) == (first, True)
    assert queue.depth == 0


async def test_many_concurrent_submits_share_a_few_commits(env: Env) -> None:
    queue, calls = await env.queue(max_queued=1000)
    before = calls.commits
    results = await asyncio.gather(*(queue.submit(call(), max_attempts=5, max_age=3600) for _ in range(300)))
    assert len({call_id for call_id, _ in results}) == 300
    assert not any(repeated for _, repeated in results)
    assert calls.commits - before <= 3, calls.commits - before
    assert queue.depth == 300
    other = InvocationStore((await env.store()).engine)
    assert await other.counts() == {"queued": 300}
    assert len(await other.claimable(T0 + 1, 1000)) == 0  # all held by the queue's node, from the insert


# -- the bound --------------------------------------------------------------------------------------


async def test_the_bound_raises_overloaded_with_retry_after(env: Env) -> None:
    queue, _ = await env.queue(max_queued=2)
    first = await submit(queue)
    await submit(queue)
    with pytest.raises(Overloaded) as raised:
        await submit(queue)
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}
    assert "2" in raised.value.message
    assert (await queue.counts())["queued"] == 2
    # A finished call frees its place.
    assert queue.pop_due(T0) is not None
    await queue.record(replace(attempted(await queue.get(first), 204), status=CallStatus.succeeded))
    await submit(queue)
    assert queue.depth == 2


async def test_the_bound_holds_for_concurrent_submits(env: Env) -> None:
    queue, _ = await env.queue(max_queued=3)
    results = await asyncio.gather(
        *(queue.submit(call(), max_attempts=5, max_age=3600) for _ in range(8)), return_exceptions=True
    )
    accepted = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, Overloaded)]
    assert (len(accepted), len(refused)) == (3, 5)
    assert queue.depth == 3
    assert (await queue.counts())["queued"] == 3


# -- scheduling -------------------------------------------------------------------------------------


async def test_pop_due_in_due_order_and_never_twice(env: Env) -> None:
    queue, _ = await env.queue()
    ids = []
    for offset in (0.0, 1.0, 2.0):
        env.clock.now = T0 + offset
        ids.append(await submit(queue))
    a, b, c = ids
    assert queue.next_due() == T0
    assert queue.pop_due(T0 - 0.1) is None
    first = queue.pop_due(T0 + 0.5)
    assert first is not None and first.id == a and first.running
    assert queue.pop_due(T0 + 0.5) is None  # a runs; b is not due yet
    assert queue.next_due() == T0 + 1.0
    assert [e.id for e in (queue.pop_due(T0 + 10), queue.pop_due(T0 + 10))] == [b, c]  # type: ignore[union-attr]
    assert queue.pop_due(T0 + 10) is None
    assert queue.next_due() is None
    assert queue.depth == 3  # running calls are unfinished


async def test_put_back_makes_a_popped_call_due_again(env: Env) -> None:
    queue, _ = await env.queue()
    a = await submit(queue)
    entry = queue.pop_due(T0)
    assert entry is not None and entry.id == a
    queue.changed.clear()
    queue.put_back(entry, T0 + 5)
    assert queue.changed.is_set()
    assert not entry.running
    assert queue.pop_due(T0 + 4) is None
    again = queue.pop_due(T0 + 5)
    assert again is not None and again.id == a
    assert queue.pop_due(T0 + 100) is None


async def test_record_of_a_queued_retry_reschedules_it(env: Env) -> None:
    queue, _ = await env.queue()
    a = await submit(queue)
    b = await submit(queue)
    entry = queue.pop_due(T0)
    assert entry is not None and entry.id == a
    inv = attempted(await queue.get(a), 503)
    running = replace(inv, status=CallStatus.running, attempts=(Attempt(1, T0),))
    queue.record_soon(running)
    retry = replace(inv, status=CallStatus.queued, next_at=T0 + 30)
    queue.changed.clear()
    await queue.record(retry)
    assert queue.changed.is_set()
    assert queue.entries[a].due == T0 + 30 and not queue.entries[a].running
    stored = await queue.get(a)
    assert (stored.status, stored.next_at) == (CallStatus.queued, T0 + 30)
    assert [at.status for at in stored.attempts] == [503]
    # b (due at T0) comes first now, a when its time has come.
    second = queue.pop_due(T0 + 1)
    assert second is not None and second.id == b
    assert queue.pop_due(T0 + 29) is None
    third = queue.pop_due(T0 + 30)
    assert third is not None and third.id == a


@pytest.mark.parametrize("final", [CallStatus.succeeded, CallStatus.failed, CallStatus.dead])
async def test_a_finished_call_leaves_the_index(env: Env, final: CallStatus) -> None:
    queue, _ = await env.queue()
    a = await submit(queue, call(trigger="timer", name="nightly"))
    assert queue.has_unfinished("timer", "nightly")
    assert not queue.has_unfinished("timer", "other")
    assert not queue.has_unfinished("watch", "nightly")
    assert queue.pop_due(T0) is not None
    assert queue.has_unfinished("timer", "nightly")  # running is unfinished too
    queue.changed.clear()
    await queue.record(replace(attempted(await queue.get(a), 200), status=final, reason="why"))
    assert queue.changed.is_set()
    assert a not in queue.entries
    assert queue.depth == 0
    assert not queue.has_unfinished("timer", "nightly")
    assert queue.next_due() is None
    stored = await queue.get(a)
    assert (stored.status, stored.reason) == (final, "why")


async def test_start_requeues_a_running_call_and_loads_queued_ones(env: Env) -> None:
    first, _ = await env.queue()
    a = await submit(first)
    env.clock.now = T0 + 1
    b = await submit(first, call(trigger="timer", name="t"))
    env.clock.now = T0 + 2
    c = await submit(first)
    popped = first.pop_due(T0 + 2)
    assert popped is not None and popped.id == a
    await first.record(replace(await first.get(a), status=CallStatus.running, attempts=(Attempt(1, T0 + 2),)))
    retry = first.pop_due(T0 + 2)
    assert retry is not None and retry.id == b
    await first.record(replace(attempted(await first.get(b), 500), status=CallStatus.queued, next_at=T0 + 60))
    done = first.pop_due(T0 + 2)
    assert done is not None and done.id == c
    await first.record(replace(attempted(await first.get(c), 200), status=CallStatus.succeeded))
    await first.close()

    # faasd stops with a running; it starts again at T0 + 10.
    env.clock.now = T0 + 10
    second, _ = await env.queue()
    assert set(second.entries) == {a, b}
    assert second.entries[a].due == T0 + 10 and not second.entries[a].running
    assert second.entries[b].due == T0 + 60
    assert second.has_unfinished("timer", "t")
    stored = await second.get(a)
    assert (stored.status, stored.next_at) == (CallStatus.queued, T0 + 10)
    assert len(stored.attempts) == 1  # the interrupted attempt is kept: at-least-once, and counted
    assert (await second.get(b)).status == CallStatus.queued
    assert (await second.get(c)).status == CallStatus.succeeded
    entry = second.pop_due(T0 + 10)
    assert entry is not None and entry.id == a
    assert second.pop_due(T0 + 10) is None


async def test_load_of_an_unknown_call(env: Env) -> None:
    queue, _ = await env.queue()
    with pytest.raises(NotFound):
        await queue.get("no-such-call")


async def test_find_and_counts(env: Env) -> None:
    queue, _ = await env.queue()
    a = await submit(queue, call("one"))
    env.clock.now = T0 + 5
    await submit(queue, call("two"))
    assert queue.pop_due(T0) is not None
    await queue.record(replace(attempted(await queue.get(a), 500), status=CallStatus.dead, reason="gone"))
    assert await queue.counts() == {"queued": 1, "running": 0, "succeeded": 0, "failed": 0, "dead": 1}
    assert [inv.function for inv in await queue.find(CallFilter())] == ["two", "one"]
    assert [inv.id for inv in await queue.find(CallFilter(status="dead"))] == [a]
    assert [inv.function for inv in await queue.find(CallFilter(function="two"))] == ["two"]
    assert [inv.function for inv in await queue.find(CallFilter(since=T0 + 1))] == ["two"]


# -- dead letters ------------------------------------------------------------------------------------


async def dead_letter(queue: CallQueue, request: CallRequest | None = None) -> Invocation:
    call_id = await submit(queue, request, max_attempts=2, max_age=100)
    entry = queue.pop_due(T0 + 10**6)  # the only call due
    assert entry is not None and entry.id == call_id
    inv = replace(
        attempted(await queue.get(call_id), 503, 503),
        status=CallStatus.dead,
        reason="2 attempt(s) failed; the last: status 503",
    )
    await queue.record(inv)
    return await queue.get(call_id)


async def test_redrive_requeues_dead_letters_with_a_renewed_budget(env: Env) -> None:
    queue, _ = await env.queue()
    dead = await dead_letter(queue)
    live = await submit(queue)
    assert dead.id not in queue.entries
    env.clock.now = T0 + 500
    asked: list[str] = []

    def policy(function: str) -> tuple[int, int]:
        asked.append(function)
        return 3, 900

    ids = await queue.redrive([dead, await queue.get(live)], policy)
    assert ids == [dead.id]  # the queued call is no dead letter: left alone
    assert asked == ["hello"]
    assert dead.id in queue.entries and queue.entries[dead.id].due == T0 + 500
    stored = await queue.get(dead.id)
    assert stored.status == CallStatus.queued
    assert [a.status for a in stored.attempts] == [503, 503]  # the attempts are kept
    assert stored.max_attempts == 2 + 3  # three new attempts after the two made
    assert (stored.max_age, stored.created_at, stored.next_at, stored.updated_at) == (900, T0 + 500, T0 + 500, T0 + 500)
    assert stored.reason == ""
    popped = [queue.pop_due(T0 + 500), queue.pop_due(T0 + 500)]
    assert {e.id for e in popped if e is not None} == {dead.id, live}
    # Redriven again later, from a second dead state: the budget counts from the attempts made then.
    await queue.record(replace(attempted(stored, 503, 503, 500), status=CallStatus.dead, reason="again"))
    again = await queue.redrive([await queue.get(dead.id)], policy)
    assert again == [dead.id]
    assert (await queue.get(dead.id)).max_attempts == 3 + 3


async def test_redrive_refuses_to_pass_the_bound(env: Env) -> None:
    queue, _ = await env.queue(max_queued=2)
    first = await dead_letter(queue)
    second = await dead_letter(queue)
    await submit(queue)
    with pytest.raises(Overloaded) as raised:
        await queue.redrive([first, second], lambda f: (5, 3600))
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}
    assert queue.depth == 1
    assert (await queue.get(first.id)).status == CallStatus.dead
    assert (await queue.get(second.id)).status == CallStatus.dead
    assert await queue.redrive([first], lambda f: (5, 3600)) == [first.id]
    assert queue.depth == 2


async def test_redrive_of_nothing_dead_writes_nothing(env: Env) -> None:
    queue, calls = await env.queue()
    live = await submit(queue)
    before = calls.commits
    assert await queue.redrive([await queue.get(live)], lambda f: (5, 3600)) == []
    assert await queue.redrive([], lambda f: (5, 3600)) == []
    assert calls.commits == before


async def test_the_bound_holds_for_a_redrive_and_a_submit_at_once(env: Env) -> None:
    queue, _ = await env.queue(max_queued=2)
    dead = await dead_letter(queue)
    await submit(queue)
    assert queue.depth == 1
    results = await asyncio.gather(
        queue.redrive([dead], lambda f: (5, 3600)),
        queue.submit(call(), max_attempts=5, max_age=3600),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Overloaded) for r in results) == 1
    assert queue.depth <= queue.max_queued


async def test_purge_deletes(env: Env) -> None:
    queue, _ = await env.queue()
    first = await dead_letter(queue)
    second = await dead_letter(queue)
    assert await queue.purge([]) == 0
    assert await queue.purge([first.id, "no-such-call"]) == 1
    with pytest.raises(NotFound):
        await queue.get(first.id)
    assert (await queue.get(second.id)).status == CallStatus.dead
    other = InvocationStore((await env.store()).engine)
    assert await other.get(first.id) is None
    assert await queue.counts() == {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "dead": 1}


async def test_a_submit_cancelled_while_its_batch_commits_is_still_indexed(env: Env) -> None:
    queue, _ = await env.queue()
    task = asyncio.ensure_future(queue.submit(call(key="k"), max_attempts=5, max_age=3600))
    await asyncio.sleep(0)  # the op is with the writer
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    other = InvocationStore((await env.store()).engine)
    for _ in range(500):
        if queue.entries:
            break
        await asyncio.sleep(0.01)
    stored = await other.find(CallFilter())
    assert [inv.id for inv in stored] == list(queue.entries), "a stored call is in the index, to be delivered"
    assert queue.depth == 1


async def test_a_redrive_and_a_purge_act_only_on_calls_still_dead(env: Env) -> None:
    queue, _ = await env.queue()
    call_id = await submit(queue)
    inv = await queue.get(call_id)
    dead = replace(attempted(inv, 500), status=CallStatus.dead, reason="out of attempts")
    await queue.record(dead)

    first, second = await asyncio.gather(
        queue.redrive([dead], lambda _fn: (5, 3600)), queue.redrive([dead], lambda _fn: (5, 3600))
    )
    assert sorted([first, second]) == [[], [call_id]], "the second redrive finds it queued already"
    assert await queue.purge([call_id]) == 0, "a queued call is not purged"
    assert (await queue.get(call_id)).status == CallStatus.queued
