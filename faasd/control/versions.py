"""Functions' versions in the controller: recorded with every change, kept to the last N, rolled back to.

Mixed into the Controller (faasd/control/controller.py), whose lock it
shares. A write that changes a function's code or settings records its next
version in the same transaction (faasd/store/registry.py); one that changes
nothing records none. A rollback is such a write with an older version's
content: a new version, so history is never rewritten, and like any update
the pool retires the old instances and specializes new ones on the next
call. The controller keeps, per function, the kept version numbers and the
code blob each refers to, and per blob how many kept versions hold it, so a
blob stays on disk while a kept version needs it (and finding that out does
not scan every version).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from faasd.cluster.journal import ChangeKind, recording
from faasd.control.catalog import Catalog
from faasd.core.entities import Function
from faasd.core.errors import BadRequest, Conflict, NotFound
from faasd.core.versions import FunctionVersion, dropped, previous, restore, snapshot
from faasd.pool.manager import PoolManager
from faasd.store.codestore import CodeStore
from faasd.store.registry import Store, utcnow

log = logging.getLogger(__name__)


def version_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"to must be a version number (a whole number from 1), got {value!r}")
    return value


class VersionControl:
    """The controller's versions (it sets these attributes; see Controller.__init__)."""

    catalog: Catalog
    _lock: asyncio.Lock
    _store: Store
    _codes: CodeStore
    _pool: PoolManager
    _keep_versions: int
    # Function -> its kept version numbers -> the sha256 of the code blob each holds ("" for a package's).
    _versions: dict[str, dict[int, str]]
    # Code blob's sha256 -> how many kept versions hold it (none of a package's "").
    _version_blobs: Counter[str]

    if TYPE_CHECKING:  # the controller's (a stub here would hide it)

        async def _check_specialization(self, fn: Function, code: bytes | None) -> None: ...

    # -- the index -------------------------------------------------------------------

    async def _start_versions(self) -> None:
        """Load the index; a function without versions (made before versions were kept) gets its version 1,
        and versions past a --keep-versions lowered since the last start go."""
        self._versions = await self._store.version_index()
        now = utcnow()
        first = [
            FunctionVersion(fn.name, 1, now, snapshot(fn))
            for fn in self.catalog.functions.values()
            if fn.name not in self._versions
        ]
        keep = self._keep_versions
        drop = {name: dropped(n, keep) for name, n in self._versions.items() if len(n) > keep}
        if first or drop:
            await self._store.sync_versions(first, drop)
        for version in first:
            self._versions[version.function] = {1: version.code_sha256}
        for name, numbers in drop.items():
            for number in numbers:
                del self._versions[name][number]
        self._version_blobs = Counter()
        self._hold(sha for numbers in self._versions.values() for sha in numbers.values())

    def _version_codes(self) -> set[str]:
        """The code blobs the kept versions hold."""
        return set(self._version_blobs)

    def _hold(self, blobs: Iterable[str]) -> None:
        self._version_blobs.update(sha for sha in blobs if sha)

    def _let_go(self, blobs: Iterable[str]) -> set[str]:
        """Versions holding ``blobs`` went; the blobs among them no kept version holds any more."""
        free = set()
        for sha in blobs:
            if sha and self._version_blobs[sha] > 0:
                self._version_blobs[sha] -= 1
                if not self._version_blobs[sha]:
                    del self._version_blobs[sha]
                    free.add(sha)
        return free

    def _next_version(self, before: Function | None, after: Function) -> tuple[FunctionVersion | None, list[int]]:
        """The version a write of ``after`` records (None: nothing changed) and the numbers it pushes out."""
        if before is not None and snapshot(before) == snapshot(after):
            return None, []
        kept = self._versions.get(after.name, {})
        number = max(kept, default=0) + 1
        version = FunctionVersion(after.name, number, after.updated_at, snapshot(after))
        return version, dropped([*kept, number], self._keep_versions)

    def _recorded(self, name: str, version: FunctionVersion | None, drop: list[int]) -> None:
        """After the write committed: the index follows, and blobs only the dropped versions held go."""
        kept = self._versions.setdefault(name, {})
        if version is not None:
            kept[version.number] = version.code_sha256
            self._hold([version.code_sha256])
        for sha in self._let_go([kept.pop(number) for number in drop]):
            self._forget_code(sha)

    def _versions_gone(self, names: set[str]) -> None:
        """The functions ``names`` were deleted with their versions (under the lock)."""
        for sha in self._let_go([sha for name in names for sha in self._versions.pop(name, {}).values()]):
            self._forget_code(sha)

    def _forget_code(self, sha256: str) -> None:
        """Discard a code blob that no function and no kept version uses (under the lock)."""
        if sha256 and not self.catalog.code_used(sha256) and sha256 not in self._version_blobs:
            self._codes.discard(sha256)

    # -- reads -------------------------------------------------------------------------

    def current_version(self, name: str) -> int:
        return max(self._versions.get(name, {}), default=0)

    async def function_versions(self, name: str) -> list[FunctionVersion]:
        """The function's kept versions, newest first."""
        if name not in self.catalog.functions:
            raise NotFound(f"function '{name}' not found")
        return await self._store.versions(name)

    # -- rollback ------------------------------------------------------------------------

    def _kept_text(self, name: str) -> str:
        kept = sorted(self._versions.get(name, {}))
        if not kept:
            return "it has none"
        listed = f"{kept[0]} to {kept[-1]}" if len(kept) > 1 else str(kept[0])
        return f"it keeps {listed} (the last {self._keep_versions}: --keep-versions)"

    async def rollback_function(self, name: str, to: int | None = None) -> tuple[Function, int]:
        """Make the content of version ``to`` (default: the one before the newest) the function's, as a new
        version; answer the function and its version now. Back to what it already is: nothing changes."""
        async with self._lock:
            fn = self.catalog.functions.get(name)
            if fn is None:
                raise NotFound(f"function '{name}' not found")
            kept = self._versions.get(name, {})
            if to is None:
                to = previous(kept)
                if to is None:
                    raise BadRequest(
                        f"function '{name}' has only version {self.current_version(name)}: "
                        "there is no earlier version to roll back to"
                    )
            elif to not in kept:
                raise NotFound(f"function '{name}' has no version {to}: {self._kept_text(name)}")
            target = next(v for v in await self._store.versions(name) if v.number == to)
            changed = restore(fn, target.settings)
            if changed.package:
                package = self.catalog.packages.get(changed.package)
                if package is None:
                    raise Conflict(
                        f"version {to} of function '{name}' runs package '{changed.package}', which no longer exists"
                    )
                changed = dataclasses.replace(changed, environment=package.environment)
            if changed.environment not in self.catalog.environments:
                raise Conflict(
                    f"version {to} of function '{name}' runs in environment '{changed.environment}', "
                    "which no longer exists"
                )
            if snapshot(changed) == snapshot(fn):
                return fn, self.current_version(name)
            changed = dataclasses.replace(changed, revision=fn.revision + 1, updated_at=utcnow())
            code = None
            if not changed.package:
                try:
                    code = await asyncio.to_thread(self._codes.get, changed.code_sha256)
                except FileNotFoundError:
                    missing = f"the code of version {to} of function '{name}' is missing from the state dir"
                    raise Conflict(missing) from None
            await self._check_specialization(changed, code)
            version, drop = self._next_version(fn, changed)
            with recording(ChangeKind.function, name):
                await self._store.update_function(changed, version, drop)
            self.catalog.put_function(changed)
            self._recorded(name, version, drop)
            self._forget_code(fn.code_sha256)
            now = self.current_version(name)
        log.info("function %s rolled back to version %d (now version %d)", name, to, now)
        # Like any update: calls from now on get the new revision; old instances finish and go.
        self._pool.function_changed(changed)
        return changed, now
