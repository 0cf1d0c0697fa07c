"""Delivering asynchronous calls: due call -> lease -> HTTP request -> outcome -> next state.

One loop takes due calls from the queue (faasd/events/queue.py) and starts a
delivery task for each, within two limits:

- at most ``concurrency`` deliveries in flight in all (``--async-concurrency``);
- per function at most half of what the function can take at once
  (``concurrency x max_instances``, at least 1), so asynchronous work never
  holds all of a function's slots: synchronous calls keep the other half.

A delivery leases an instance from the same pool as a synchronous call (the
same instances, limits and queue timeout) and sends the stored request with
faasd's headers (X-Faasd-Call-Id, -Attempt, -Trigger, ...; runtimes expose
them as the request's context). The answer is kept (first 1 MiB), and
faasd/events/retry.py decides what comes next. When a call is finished and
named an ``X-Callback-Url``, the result is POSTed there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import aiohttp

from faasd.core.entities import Function
from faasd.core.errors import FaasdError, NotFound
from faasd.core.events import MAX_RESULT_BODY, Attempt, CallStatus, Invocation
from faasd.events.queue import CallQueue, Entry
from faasd.events.retry import Outcome, next_step, parse_retry_after
from faasd.events.tasks import stop_tasks
from faasd.observe.calls import TIMED_OUT
from faasd.pool.manager import PoolManager

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
FAULT_RETRY = 10.0  # seconds before a delivery that failed inside faasd is tried again
CALLBACK_ATTEMPTS = 3
CALLBACK_TIMEOUT = 10.0
# Response headers not kept with a call's result.
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


async def send(
    pool: PoolManager,
    session: aiohttp.ClientSession,
    fn: Function,
    method: str,
    target: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[Outcome, dict[str, Any]]:
    """One request to an instance of ``fn``, leased from the pool: its outcome, and the answer kept.

    The answer (``response_status``, ``response_headers``, ``response_body`` (first 1 MiB),
    ``response_truncated``) is empty when there was none. Message-queue triggers send this way too.
    """
    began = time.monotonic()
    try:
        lease = await pool.lease(fn)
    except FaasdError as err:
        pool.calls.record(fn.name, err.status, time.monotonic() - began, None, err.code)
        retry_after = parse_retry_after(err.headers.get("Retry-After"), time.time())
        return Outcome(None, f"{err.code}: {err}", retry_after), {}
    leased = time.monotonic()
    try:
        async with asyncio.timeout(fn.timeout):
            async with session.request(
                method,
                lease.url + target,
                headers=headers,
                data=body,
                allow_redirects=False,
                skip_auto_headers=("User-Agent", "Content-Type"),
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                while size < MAX_RESULT_BODY and (chunk := await resp.content.read(MAX_RESULT_BODY - size)):
                    chunks.append(chunk)
                    size += len(chunk)
                kept_body = b"".join(chunks)
                truncated = False
                while await resp.content.read(65536):
                    truncated = True  # read to the end, so that the connection can be used again
                status = resp.status
                kept = tuple((k, v) for k, v in resp.headers.items() if k.lower() not in _HOP)
                retry_after = parse_retry_after(resp.headers.get("Retry-After"), time.time())
    except TimeoutError:
        lease.discard()
        lease.release()
        pool.calls.record(fn.name, 504, time.monotonic() - began, leased - began, TIMED_OUT)
        return Outcome(None, f"timeout: no answer within the function's timeout of {fn.timeout} s"), {}
    except (aiohttp.ClientError, OSError) as exc:
        failure = await pool.upstream_failed(lease, str(exc) or type(exc).__name__)
        lease.release()
        pool.calls.record(fn.name, failure.status, time.monotonic() - began, leased - began, failure.code)
        return Outcome(None, str(failure)), {}
    except BaseException:
        # Cancelled (a trigger stopping, faasd shutting down) or a request aiohttp refused (a header
        # value it cannot send): the slot goes back, whatever happened.
        lease.release()
        raise
    lease.release()
    pool.calls.record(fn.name, status, time.monotonic() - began, leased - began)
    answer = {
        "response_status": status,
        "response_headers": kept,
        "response_body": kept_body,
        "response_truncated": truncated,
    }
    return Outcome(status, "", retry_after), answer


def share_of(fn: Function) -> int:
    """Asynchronous deliveries one function may have in flight: half its capacity."""
    return max(1, fn.concurrency * fn.max_instances // 2)


class Dispatcher:
    def __init__(
        self,
        queue: CallQueue,
        functions: Callable[[], Mapping[str, Function]],
        pool: PoolManager,
        session: aiohttp.ClientSession,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._functions = functions
        self._pool = pool
        self._session = session
        self.concurrency = concurrency
        self._clock = clock
        self._inflight: dict[str, int] = {}
        self._held: dict[str, deque[Entry]] = {}  # due calls of functions at their share, oldest first
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self.delivered = 0  # attempts made since start

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run(), name="faasd-dispatcher")

    async def close(self) -> None:
        """Stop delivering; calls in flight are cut off and run again at the next start."""
        await stop_tasks([self._loop_task, *self._tasks])

    @property
    def inflight(self) -> int:
        return sum(self._inflight.values())

    # -- the loop --------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        while True:
            queue.changed.clear()
            now = self._clock()
            while self.inflight < self.concurrency:
                entry = queue.pop_due(now)
                if entry is None:
                    break
                name = entry.function
                fn = self._functions().get(name)
                if fn is not None and self._inflight.get(name, 0) >= share_of(fn):
                    # The function is at its share: the call waits for one of its calls to end.
                    self._held.setdefault(name, deque()).append(entry)
                    continue
                # Counted here, before the task runs: the limits hold within this very loop.
                self._inflight[name] = self._inflight.get(name, 0) + 1
                self._spawn(self._deliver(entry, fn))
            due = queue.next_due()
            wait = None if due is None or self.inflight >= self.concurrency else max(0.0, due - self._clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await queue.changed.wait()  # a new call, or a delivery's end

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one attempt -----------------------------------------------------------

    async def _deliver(self, entry: Entry, fn: Function | None) -> None:
        """One attempt of ``entry``; the dispatcher counted it in ``_inflight`` already."""
        name = entry.function
        try:
            inv, holding = await self._queue.get_held(entry.id)
            if inv.status.finished:  # another node finished it (this node's index was behind)
                self._queue.forget(entry.id)
                return
            if not holding and not await self._queue.claim(entry.id):
                self._queue.forget(entry.id)  # another node holds it now (faasd/events/leases.py)
                return
            now = self._clock()
            if fn is None:
                await self._finish(replace(inv, status=CallStatus.dead, reason=f"function '{name}' was deleted"))
                return
            if now > inv.created_at + inv.max_age:
                reason = f"past its maximum age of {inv.max_age} s before attempt {len(inv.attempts) + 1}"
                await self._finish(replace(inv, status=CallStatus.dead, reason=reason, updated_at=now))
                return
            attempt = Attempt(len(inv.attempts) + 1, now)
            inv = replace(inv, status=CallStatus.running, attempts=(*inv.attempts, attempt), updated_at=now)
            self._queue.record_soon(inv)  # not awaited: the writer keeps the order of a call's writes
            outcome, answer = await self._attempt(inv, fn, attempt.number)
            self.delivered += 1
            done = self._clock()
            attempt = replace(attempt, finished_at=done, status=outcome.status, error=outcome.error)
            step = next_step(
                outcome,
                attempt=attempt.number,
                max_attempts=inv.max_attempts,
                created_at=inv.created_at,
                max_age=inv.max_age,
                now=done,
            )
            inv = replace(
                inv,
                status=step.status,
                attempts=(*inv.attempts[:-1], attempt),
                updated_at=done,
                next_at=step.next_at if step.status == CallStatus.queued else inv.next_at,
                reason=step.reason,
                **answer,
            )
            if step.status.finished:
                await self._finish(inv)
            else:
                log.info(
                    "call %s to %s: attempt %d: %s; again in %.1f s",
                    inv.id,
                    name,
                    attempt.number,
                    outcome.describe(),
                    step.next_at - done,
                )
                await self._queue.record(inv)
        except asyncio.CancelledError:
            raise
        except NotFound:
            self._queue.forget(entry.id)  # purged meanwhile: nothing left to deliver
        except Exception:
            # A fault of faasd's own (the store, a bug): the call is tried again later, not forgotten.
            log.exception("delivering call %s to %s failed; trying again in %.0f s", entry.id, name, FAULT_RETRY)
            if entry.id in self._queue.entries:
                self._queue.put_back(entry, self._clock() + FAULT_RETRY)
        finally:
            left = self._inflight[name] - 1
            if left:
                self._inflight[name] = left
            else:
                del self._inflight[name]
            held = self._held.get(name)
            if held:  # one call ended: one held call may go
                again = held.popleft()
                if not held:
                    del self._held[name]
                self._queue.put_back(again, again.due)
            self._queue.changed.set()

    async def _attempt(self, inv: Invocation, fn: Function, number: int) -> tuple[Outcome, dict[str, Any]]:
        req = inv.request
        headers = [*req.headers, ("X-Faasd-Call-Id", inv.id), ("X-Faasd-Attempt", str(number))]
        if not any(k.lower() == "x-request-id" for k, _ in req.headers):
            headers.append(("X-Request-Id", inv.id))  # the call's id is its request id, as Lambda's
        headers.append(("X-Faasd-Trigger", req.trigger))
        if req.trigger_name:
            headers.append(("X-Faasd-Trigger-Name", req.trigger_name))
        return await send(self._pool, self._session, fn, req.method, req.target, headers, req.body)

    async def _finish(self, inv: Invocation) -> None:
        if not await self._queue.record(inv):
            return  # another node took the call over: its outcome is the one kept
        if inv.status == CallStatus.dead:
            log.warning("call %s to %s is a dead letter: %s", inv.id, inv.function, inv.reason)
        if inv.request.callback_url:
            self._spawn(self._callback(inv))

    async def _callback(self, inv: Invocation) -> None:
        """POST the result to the call's X-Callback-Url: a few tries, then it is logged and dropped."""
        headers = {
            "X-Call-Id": inv.id,
            "X-Call-Status": inv.status.value,
            "X-Attempt": str(len(inv.attempts)),
        }
        if inv.response_status is not None:
            headers["X-Function-Status"] = str(inv.response_status)
        content_type = dict((k.lower(), v) for k, v in inv.response_headers).get("content-type")
        if content_type:
            headers["Content-Type"] = content_type
        for attempt in range(1, CALLBACK_ATTEMPTS + 1):
            try:
                async with asyncio.timeout(CALLBACK_TIMEOUT):
                    async with self._session.post(
                        inv.request.callback_url, data=inv.response_body, headers=headers, allow_redirects=False
                    ) as resp:
                        await resp.read()
                        if resp.status < 500:
                            return
                        why = f"status {resp.status}"
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                why = str(exc) or type(exc).__name__
            if attempt < CALLBACK_ATTEMPTS:
                await asyncio.sleep(attempt)
        log.warning(
            "callback of call %s to %s failed %d times; the last: %s",
            inv.id,
            inv.request.callback_url,
            CALLBACK_ATTEMPTS,
            why,
        )
