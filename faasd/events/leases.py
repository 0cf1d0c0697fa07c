"""Leases on asynchronous calls: several faasd nodes share one registry, each call is delivered by one.

A node holds every call in its queue's index by a lease in the database
(``invocations.lease_owner``, ``lease_until``):

- a call submitted through a node is held by it from its insert (the same
  transaction: no extra round trip on one node);
- while it holds calls, a node renews all its leases in one UPDATE every
  ``renew_every`` seconds (a third of the lease), so a live node never loses
  one, however long a call runs or waits;
- a retry that is scheduled releases the call (any node may take it when it
  is due); so does a finished call, and a node that stops (SIGTERM) releases
  all of its calls at once;
- every ``poll_every`` seconds a node looks for due calls that nobody holds
  (submitted through a node that released them, or held by a node that died:
  its leases ran out) and claims them, each with a conditional UPDATE whose
  row count says whether it won; a call its dead node left running is queued
  again and delivered once more (at least once, as after a restart);
- a write that failed may have committed all the same (the error came after
  the commit): a call held by this node in the database but not in its index,
  which its renewals would keep from every node. After a failed write, or a
  renewal that counted more held calls than the index has, the next look
  takes such calls into the index.

Before an attempt the dispatcher reads the call (as it always did) and sees
its lease: a call it does not hold, or whose lease ran out, is claimed first
or left to the node that has it. A node's writes of a call's progress are
conditional on holding it, so a node that stalled past its lease and woke up
cannot overwrite what the node that took over recorded: a call that
succeeded is never delivered again.

Times are the nodes' own clocks (Unix seconds): nodes on several machines
keep them in step (NTP); a skew well under the lease time does no harm.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from faasd.events.tasks import stop_tasks

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from faasd.events.queue import CallQueue
    from faasd.store.events import IndexRow

log = logging.getLogger(__name__)

LEASE = 30.0  # seconds a call stays held by a node that stopped renewing
POLL_EVERY = 1.0  # seconds between looks for calls nobody holds
MAX_CLAIM = 512  # calls claimed in one transaction
RELEASE_TIMEOUT = 5.0  # seconds a stopping node waits for its release to be written


@dataclass(frozen=True)
class LeasePolicy:
    """Who this node is, and the times of its leases."""

    node: str = "local"
    lease: float = LEASE
    poll_every: float = POLL_EVERY

    @property
    def renew_every(self) -> float:
        return self.lease / 3


class LeaseKeeper:
    """Renews this node's leases and claims the calls nobody holds, for ``queue``."""

    def __init__(self, queue: CallQueue, policy: LeasePolicy) -> None:
        self._queue = queue
        self._policy = policy
        self._tasks: list[asyncio.Task[None]] = []
        self.renewed_at = 0.0  # the queue's clock at the last renewal written
        self.taken = 0  # calls claimed from other nodes (or released ones) since start
        self._failing: set[str] = set()  # the loops whose last round failed (logged once, until it works)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._renew_loop(), name="faasd-calls-leases"),
            loop.create_task(self._poll_loop(), name="faasd-calls-takeover"),
        ]

    async def close(self) -> None:
        await stop_tasks(self._tasks)

    async def _renew_loop(self) -> None:
        queue, policy = self._queue, self._policy
        while True:
            await asyncio.sleep(policy.renew_every)
            now = queue.clock()
            until = now + policy.lease
            try:
                held = await queue.write(lambda s, until=until: queue.store.renew(s, policy.node, until))  # type: ignore[misc]
            except Exception:
                self._failed("renewing the leases of this node's asynchronous calls")
                continue
            if held > len(queue.entries):
                queue.maybe_unindexed = True  # the next look finds which (take_free)
            self._worked("renewing the leases of this node's asynchronous calls")
            self.renewed_at = now

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._policy.poll_every)
            try:
                while await self.take_free() >= MAX_CLAIM:
                    pass  # a full batch: there may be more
            except Exception:
                self._failed("looking for asynchronous calls that no node holds")
                continue
            self._worked("looking for asynchronous calls that no node holds")

    def _failed(self, what: str) -> None:
        """Once per outage (the database away for a while fails every round): the first failure, in full."""
        if what not in self._failing:
            self._failing.add(what)
            log.exception("%s failed; trying again (logged once until it works)", what)

    def _worked(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            log.info("%s works again", what)

    async def take_free(self) -> int:
        """Claim the due calls nobody holds (as many as the queue has room for); how many it took. After a
        failed write, also the calls this node holds that are not in its index."""
        queue, policy = self._queue, self._policy
        taken = await self._take_unindexed() if queue.maybe_unindexed else 0
        room = min(MAX_CLAIM, queue.max_queued - queue.depth)
        if room <= 0:
            return taken
        now = queue.clock()
        found = await queue.store.claimable(now, room)
        # This node's own released calls (a retry due) are its dispatcher's to claim, when it gets to them.
        wanted = [row for row in found if row[0] not in queue.entries]
        if not wanted:
            return taken

        until = now + policy.lease

        async def claim(session: AsyncSession) -> list[IndexRow]:
            return [row for row in wanted if await queue.store.claim(session, row[0], policy.node, now, until)]

        claimed = 0
        for call_id, function, trigger, trigger_name, _due in await queue.write(claim):
            if call_id not in queue.entries:
                queue.adopt(call_id, function, trigger, trigger_name, now)
                claimed += 1
        if claimed:
            self.taken += claimed
            log.info(
                "took %d asynchronous call(s) that no node held (released, or their node's lease ran out)", claimed
            )
        return taken + claimed

    async def _take_unindexed(self) -> int:
        """The unfinished calls this node holds in the database but not in its index (a write whose commit it
        saw fail: a submit, a claim), into the index; else its renewals would keep them from every node."""
        queue = self._queue
        queue.maybe_unindexed = False
        try:
            rows = await queue.store.held_by(self._policy.node)
        except Exception:
            queue.maybe_unindexed = True  # look again next time
            raise
        taken = 0
        for call_id, function, trigger, trigger_name, due in rows:
            if call_id not in queue.entries:
                queue.adopt(call_id, function, trigger, trigger_name, due)
                taken += 1
        if taken:
            log.warning(
                "%d asynchronous call(s) held by this node were not in its index (a write that failed here "
                "was committed); they are delivered now",
                taken,
            )
        return taken
