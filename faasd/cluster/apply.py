"""A change row from another node, applied here: reload the object it names, hand it to its owner.

Under the controller's lock (the registry's writers take it too), so a reload and a local write of the
same object never interleave: whichever runs second reads the registry as the first left it. The
owners apply it the way their own writes do: the controller's catalog and pools
(faasd/control/replica.py), the triggers' in-memory sets and their schedulers (faasd/events/triggers.py
listeners), the canaries and their runner, the labels. :meth:`Applier.reload_all` does it for every
object, for a follower that fell behind the rows kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from faasd.cluster.journal import ChangeKind
from faasd.cluster.reader import RegistryReader
from faasd.control.canary import CanaryControl
from faasd.control.controller import Controller
from faasd.store.labels import LabelStore
from faasd.store.registry import Store

log = logging.getLogger(__name__)

# Seconds a reload may hold the controller's lock (a database that stopped answering mid-read): then it
# fails, the lock is free for the writers (who get their own 503), and the next pass tries again.
APPLY_TIMEOUT = 5.0
RELOAD_TIMEOUT = 60.0


class _Listener(Protocol):
    def changed(self, name: str) -> None: ...


class TriggerSets(Protocol):
    """What the events part keeps of its triggers (faasd/events/triggers.py's TriggerControl)."""

    timers: dict[str, Any]
    watches: dict[str, Any]
    mq: dict[str, Any]
    timer_listener: _Listener | None
    watch_listener: _Listener | None
    mq_listener: _Listener | None


def _same_timer(old: Any, new: Any) -> bool:
    """The same definition (the tick the scheduler keeps moving is not part of it)."""
    return old is not None and dataclasses.replace(old, last_tick=new.last_tick) == new


class Applier:
    def __init__(
        self,
        controller: Controller,
        store: Store,
        reader: RegistryReader,
        *,
        triggers: TriggerSets | None = None,
        canaries: CanaryControl | None = None,
        labels: LabelStore | None = None,
    ) -> None:
        self._controller = controller
        self._store = store
        self._reader = reader
        self.triggers = triggers
        self.canaries = canaries
        self.labels = labels

    async def apply(self, kind: str, name: str) -> None:
        """Reload ``kind``/``name`` and apply it (an unknown kind, from a newer faasd, is ignored)."""
        c = self._controller
        r = self._reader
        async with c.lock, asyncio.timeout(APPLY_TIMEOUT):  # writers wait for the lock: never for long
            if kind == ChangeKind.environment:
                c.follow_environment(name, await r.environment(name))
            elif kind == ChangeKind.function:
                fn = await r.function(name)
                c.follow_function(name, fn, await r.versions(name) if fn is not None else {})
            elif kind == ChangeKind.route:
                c.follow_trigger(name, await r.trigger(name))
            elif kind == ChangeKind.package:
                c.follow_package(name, await r.package(name))
            elif kind == ChangeKind.timer and self.triggers is not None:
                self._follow(self.triggers.timers, self.triggers.timer_listener, name, await r.timer(name))
            elif kind == ChangeKind.watch and self.triggers is not None:
                self._follow(self.triggers.watches, self.triggers.watch_listener, name, await r.watch(name))
            elif kind == ChangeKind.mqtrigger and self.triggers is not None:
                self._follow(self.triggers.mq, self.triggers.mq_listener, name, await r.mqtrigger(name))
            elif kind == ChangeKind.canary and self.canaries is not None:
                self._follow(self.canaries.canaries, self.canaries.listener, name, await r.canary(name))
            elif kind == ChangeKind.labels and self.labels is not None:
                await self.labels.load()

    @staticmethod
    def _follow(items: dict[str, Any], listener: _Listener | None, name: str, value: Any) -> None:
        old = items.get(name)
        if value is None:
            if old is None:
                return
            del items[name]
        elif old == value or (hasattr(value, "last_tick") and _same_timer(old, value)):
            return
        else:
            items[name] = value
        if listener is not None:
            listener.changed(name)

    async def reload_all(self) -> None:
        """Every object as the registry has it now (the rows this node missed were trimmed)."""
        c = self._controller
        r = self._reader
        async with c.lock, asyncio.timeout(RELOAD_TIMEOUT):
            contents = await self._store.load()
            versions = await self._store.version_index()
            # Deletes before puts, and environments and packages before the functions that use them
            # (functions before the routes to them), as the writers made them.
            envs = {e.name: e for e in contents.environments}
            packages = {p.name: p for p in contents.packages}
            functions = {f.name: f for f in contents.functions}
            routes = {t.name: t for t in contents.triggers}
            for name in set(c.catalog.triggers) - routes.keys():
                c.follow_trigger(name, None)
            for name in set(c.catalog.functions) - functions.keys():
                c.follow_function(name, None, {})
            for name in set(c.catalog.packages) - packages.keys():
                c.follow_package(name, None)
            for name in set(c.catalog.environments) - envs.keys():
                c.follow_environment(name, None)
            for name, env in envs.items():
                c.follow_environment(name, env)
            for name, package in packages.items():
                c.follow_package(name, package)
            for name, fn in functions.items():
                c.follow_function(name, fn, versions.get(name, {}))
            for name, route in routes.items():
                c.follow_trigger(name, route)
            if self.triggers is not None:
                t = self.triggers
                self._follow_all(t.timers, t.timer_listener, {x.name: x for x in await r.timers()})
                self._follow_all(t.watches, t.watch_listener, {x.name: x for x in await r.watches()})
                self._follow_all(t.mq, t.mq_listener, {x.name: x for x in await r.mqtriggers()})
            if self.canaries is not None:
                self._follow_all(
                    self.canaries.canaries, self.canaries.listener, {x.name: x for x in await r.canaries()}
                )
            if self.labels is not None:
                await self.labels.load()
        log.info("reloaded the whole registry (this node fell behind the changes kept)")

    def _follow_all(self, items: dict[str, Any], listener: _Listener | None, now: Mapping[str, Any]) -> None:
        for name in set(items) | set(now):
            self._follow(items, listener, name, now.get(name))
