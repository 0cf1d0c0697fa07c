"""Writes another faasd node made, applied here: the same catalog and pool steps as a local write.

Mixed into the Controller (faasd/control/controller.py). The follower (faasd/cluster/apply.py) holds
the controller's lock, reads the object as the registry has it now, and calls one ``follow_*`` method:
synchronous, so readers see the registry before or after it, never half of it (as with a local write).
A value of None means the object is gone. What the writing node does beyond that (collecting code
blobs and archives, submitting builds) stays with it: a follower never deletes or builds anything.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from faasd.control.catalog import Catalog
from faasd.core.entities import Environment, Function, HttpTrigger, Package
from faasd.pool.manager import PoolManager


class ReplicaControl:
    """The controller's follower side (it sets these attributes; see Controller.__init__)."""

    catalog: Catalog
    _lock: asyncio.Lock
    _pool: PoolManager
    _versions: dict[str, dict[int, str]]
    _version_blobs: Counter[str]

    if TYPE_CHECKING:  # the controller's

        def _functions_gone(self, name: str) -> None: ...

    def follow_environment(self, name: str, env: Environment | None) -> None:
        assert self._lock.locked()
        if env is None:
            if name in self.catalog.environments:
                self.catalog.drop_environment(name)
                self._pool.remove_environment(name)
            return
        if self.catalog.environments.get(name) != env:
            self.catalog.put_environment(env)
            self._pool.set_environment(env)

    def follow_function(self, name: str, fn: Function | None, versions: Mapping[int, str]) -> None:
        """``versions``: the function's kept version numbers and their code blobs, as the registry has them."""
        assert self._lock.locked()
        self._follow_versions(name, versions if fn is not None else {})
        if fn is None:
            if name in self.catalog.functions:
                self.catalog.drop_function(name)  # with its routes
                self._functions_gone(name)
            return
        if self.catalog.functions.get(name) != fn:
            self.catalog.put_function(fn)
            # As after a local update: calls from now on get the new revision; old instances finish and go.
            self._pool.function_changed(fn)

    def _follow_versions(self, name: str, versions: Mapping[int, str]) -> None:
        """The version index follows the registry; the blobs' counts too (nothing is discarded here)."""
        old = self._versions.pop(name, {})
        self._version_blobs.subtract(sha for sha in old.values() if sha)
        self._version_blobs.update(sha for sha in versions.values() if sha)
        for sha in [sha for sha, count in self._version_blobs.items() if count <= 0]:
            del self._version_blobs[sha]
        if versions:
            self._versions[name] = dict(versions)

    def follow_trigger(self, name: str, trigger: HttpTrigger | None) -> None:
        assert self._lock.locked()
        if trigger is None:
            self.catalog.drop_trigger(name)
        elif self.catalog.triggers.get(name) != trigger:
            self.catalog.put_trigger(trigger)

    def follow_package(self, name: str, package: Package | None) -> None:
        assert self._lock.locked()
        if package is None:
            self.catalog.drop_package(name)  # its functions went in the same write: their own rows follow
        elif self.catalog.packages.get(name) != package:
            self.catalog.put_package(package)
            # As after a local build's report: calls waiting for the package's deployment go on or fail now.
            for fn in self.catalog.functions_of(name):
                self._pool.function_changed(fn)
