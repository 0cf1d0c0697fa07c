"""From a request line to a function and a lease: what the data plane asks of the control plane.

route match -> function -> pool lease. The forwarding itself is in
faasd/dataplane/ (see its package docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any, Protocol

from faasd.core.entities import Function
from faasd.core.errors import NotFound, UpstreamError
from faasd.dataplane.routing import Match, RouteTable, split_path
from faasd.pool.manager import Lease, PoolManager

# /function/<name>[/...] reaches any function, routed or not (as OpenFaaS and Fission); so does
# /fission-function/<name>, the internal URL Fission's own tools and scripts use.
DIRECT_PREFIXES = frozenset({"function", "fission-function"})
_DIRECT_STARTS = tuple(DIRECT_PREFIXES)


class CatalogView(Protocol):
    """What the gateway reads of the registry's in-memory snapshot (faasd.control.catalog.Catalog)."""

    @property
    def routes(self) -> RouteTable: ...
    @property
    def functions(self) -> Mapping[str, Function]: ...


class Gateway:
    def __init__(self, catalog: Callable[[], CatalogView], pool: PoolManager) -> None:
        # A getter, not a value: the control plane swaps its catalog on every write.
        self._catalog = catalog
        self._pool = pool

    def resolve(self, method: str, path: str) -> Match:
        """/function/<name>[/...] reaches any function; anything else goes by the route table."""
        # Only a path whose first segment may be one of them is split here (the table splits it again).
        if path.lstrip("/").startswith(_DIRECT_STARTS) or "%" in path:
            parts = split_path(path)
            if parts and parts[0] in DIRECT_PREFIXES:
                if len(parts) < 2:
                    raise NotFound("name a function: /function/<name>")
                return Match(parts[1], {})  # route "": the access log says /function/<name>
        return self._catalog().routes.match(method, path)

    def function(self, name: str) -> Function:
        fn = self._catalog().functions.get(name)
        if fn is None:
            raise NotFound(f"function '{name}' not found")
        return fn

    def lease_now(self, fn: Function) -> Lease | None:
        """A lease without waiting when ``fn`` has a warm instance with a free slot, else None."""
        return self._pool.lease_now(fn)

    def lease(self, fn: Function) -> Coroutine[Any, Any, Lease]:
        """An instance of ``fn`` for one call; release the lease exactly once."""
        return self._pool.lease(fn)

    def upstream_failed(self, lease: Lease, detail: str) -> Coroutine[Any, Any, UpstreamError]:
        """The instance broke a call off: the error that says why (it is taken out of service)."""
        return self._pool.upstream_failed(lease, detail)
