"""What the request path reads: the registry in memory, changed in place write by write.

After a write has committed to SQLite, the controller (faasd/control/controller.py)
applies it here with one ``put_*`` or ``drop_*`` call, which keeps the maps,
the route table and the indexes below in step. None of them costs more with
more objects registered: a route write changes its own entries of the route
table (faasd/dataplane/routing.py), a function write its own entries; nothing
is rebuilt from the whole registry but at start.

No reader sees half a write. The gateway (faasd/dataplane/gateway.py), the
admin API and the controller all read the catalog on the event loop's thread,
without a lock; every method here is synchronous (no ``await`` inside), and a
controller write that changes several things (a forced function delete drops
its routes and then the function) makes all its calls between the same two
awaits. So a reader sees the registry as it was before a write or as it is
after it. What readers get are live read-only views (``MappingProxyType``):
one that awaits between two reads may find the registry changed, as it would
find a newer catalog; it must not iterate a view across an await.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from faasd.core.entities import Environment, Function, HttpTrigger, Package
from faasd.core.validation import url_key
from faasd.dataplane.routing import RouteTable


def _key(trigger: HttpTrigger) -> tuple[str, str]:
    """The route's key in :attr:`Catalog.route_keys` (a URL without parameters is its own)."""
    return trigger.method, url_key(trigger.url) if "{" in trigger.url else trigger.url


def _link(index: dict[str, set[str]], key: str, name: str) -> None:
    index.setdefault(key, set()).add(name)


def _unlink(index: dict[str, set[str]], key: str, name: str) -> None:
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]


class Catalog:
    """Environments, functions, routes (and their table) and packages by name, with the indexes writes need."""

    def __init__(
        self,
        environments: Iterable[Environment] = (),
        functions: Iterable[Function] = (),
        triggers: Iterable[HttpTrigger] = (),
        packages: Iterable[Package] = (),
    ) -> None:
        self._environments: dict[str, Environment] = {e.name: e for e in environments}
        self._functions: dict[str, Function] = {}
        self._triggers: dict[str, HttpTrigger] = {}
        self._packages: dict[str, Package] = {p.name: p for p in packages}
        self.environments: Mapping[str, Environment] = MappingProxyType(self._environments)
        self.functions: Mapping[str, Function] = MappingProxyType(self._functions)
        self.triggers: Mapping[str, HttpTrigger] = MappingProxyType(self._triggers)
        self.packages: Mapping[str, Package] = MappingProxyType(self._packages)
        self.routes = RouteTable()
        # (method, URL pattern with parameter names blanked) -> route name: duplicates are 409.
        self._route_keys: dict[tuple[str, str], str] = {}
        self.route_keys: Mapping[tuple[str, str], str] = MappingProxyType(self._route_keys)
        # The indexes: what refers to what, so that no write scans the registry.
        self._places = itertools.count()
        self._place: dict[str, int] = {}  # route -> when it was first put (the order routes are listed in)
        self._routes_to: dict[str, set[str]] = {}  # function -> the routes naming it
        self._in_environment: dict[str, set[str]] = {}  # environment -> its functions
        self._of_package: dict[str, set[str]] = {}  # package -> the functions running it
        self._code_users: dict[str, set[str]] = {}  # code blob's sha256 -> the functions running it
        for fn in functions:
            self.put_function(fn)
        for trigger in triggers:
            self.put_trigger(trigger)

    # -- reads the indexes answer ---------------------------------------------------------

    def routes_to(self, function: str) -> list[HttpTrigger]:
        """The routes that name ``function`` (alone or among others), in the order of :attr:`triggers`."""
        names = sorted(self._routes_to.get(function, ()), key=self._place.__getitem__)
        return [self._triggers[name] for name in names]

    def functions_in(self, environment: str) -> list[str]:
        return sorted(self._in_environment.get(environment, ()))

    def functions_of(self, package: str) -> list[Function]:
        """The functions that run ``package``, by name."""
        return [self._functions[name] for name in sorted(self._of_package.get(package, ()))]

    def code_used(self, sha256: str) -> bool:
        """Whether a function runs the code blob ``sha256``."""
        return sha256 in self._code_users

    # -- writes: each applies one committed change ----------------------------------------

    def put_environment(self, env: Environment) -> None:
        self._environments[env.name] = env

    def drop_environment(self, name: str) -> None:
        self._environments.pop(name, None)

    def put_package(self, package: Package) -> None:
        self._packages[package.name] = package

    def drop_package(self, name: str) -> None:
        self._packages.pop(name, None)

    def put_function(self, fn: Function) -> None:
        old = self._functions.get(fn.name)
        if old is not None:
            self._unindex(old)
        self._functions[fn.name] = fn
        _link(self._in_environment, fn.environment, fn.name)
        if fn.package:
            _link(self._of_package, fn.package, fn.name)
        if fn.code_sha256:
            _link(self._code_users, fn.code_sha256, fn.name)

    def drop_function(self, name: str) -> None:
        """The function goes, and the routes that name it with it."""
        for trigger in self.routes_to(name):
            self.drop_trigger(trigger.name)
        fn = self._functions.pop(name, None)
        if fn is not None:
            self._unindex(fn)

    def _unindex(self, fn: Function) -> None:
        _unlink(self._in_environment, fn.environment, fn.name)
        _unlink(self._of_package, fn.package, fn.name)
        _unlink(self._code_users, fn.code_sha256, fn.name)

    def put_trigger(self, trigger: HttpTrigger) -> None:
        old = self._triggers.get(trigger.name)
        if old is None:
            self._place[trigger.name] = next(self._places)
        else:
            self._unroute(old)
        self._triggers[trigger.name] = trigger
        self.routes.add(trigger.method, trigger.url, trigger.functions or trigger.function, trigger.is_async)
        self._route_keys[_key(trigger)] = trigger.name
        for function in trigger.names:
            _link(self._routes_to, function, trigger.name)

    def drop_trigger(self, name: str) -> None:
        trigger = self._triggers.pop(name, None)
        if trigger is not None:
            self._unroute(trigger)
            del self._place[name]

    def _unroute(self, trigger: HttpTrigger) -> None:
        """Take ``trigger``'s entries out of the route table and the indexes."""
        key = _key(trigger)
        if self._route_keys.get(key) == trigger.name:  # (always, but for duplicates the controller refuses)
            del self._route_keys[key]
            self.routes.remove(trigger.method, trigger.url)
        for function in trigger.names:
            _unlink(self._routes_to, function, trigger.name)
