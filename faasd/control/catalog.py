"""What the request path reads: an immutable snapshot of the registry.

The controller builds a new Catalog after every write and swaps it in with
one assignment, so a call sees either the old registry or the new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from faasd.core.entities import Environment, Function, HttpTrigger, Package
from faasd.core.validation import url_key
from faasd.dataplane.routing import RouteTable


@dataclass(frozen=True)
class Catalog:
    environments: Mapping[str, Environment] = field(default_factory=dict)
    functions: Mapping[str, Function] = field(default_factory=dict)
    triggers: Mapping[str, HttpTrigger] = field(default_factory=dict)
    routes: RouteTable = field(default_factory=RouteTable)
    # (method, URL pattern with parameter names blanked) -> route name: duplicates are 409.
    route_keys: Mapping[tuple[str, str], str] = field(default_factory=dict)
    packages: Mapping[str, Package] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        environments: Iterable[Environment],
        functions: Iterable[Function],
        triggers: Iterable[HttpTrigger],
        packages: Iterable[Package] = (),
    ) -> Catalog:
        trigger_map = {t.name: t for t in triggers}
        return cls(
            environments=MappingProxyType({e.name: e for e in environments}),
            functions=MappingProxyType({f.name: f for f in functions}),
            triggers=MappingProxyType(trigger_map),
            routes=RouteTable((t.method, t.url, t.functions or t.function, t.is_async) for t in trigger_map.values()),
            route_keys=MappingProxyType({(t.method, url_key(t.url)): t.name for t in trigger_map.values()}),
            packages=MappingProxyType({p.name: p for p in packages}),
        )

    def replace(
        self,
        environments: Iterable[Environment] | None = None,
        functions: Iterable[Function] | None = None,
        triggers: Iterable[HttpTrigger] | None = None,
        packages: Iterable[Package] | None = None,
    ) -> Catalog:
        if triggers is not None:
            return Catalog.build(
                self.environments.values() if environments is None else environments,
                self.functions.values() if functions is None else functions,
                triggers,
                self.packages.values() if packages is None else packages,
            )
        # The routes did not change: keep the table rather than build it again.
        return Catalog(
            environments=self.environments
            if environments is None
            else MappingProxyType({e.name: e for e in environments}),
            functions=self.functions if functions is None else MappingProxyType({f.name: f for f in functions}),
            triggers=self.triggers,
            routes=self.routes,
            route_keys=self.route_keys,
            packages=self.packages if packages is None else MappingProxyType({p.name: p for p in packages}),
        )
