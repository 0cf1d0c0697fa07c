"""A function's versions: immutable snapshots of its code and settings (Fission's RFC-0025, Lambda's versions).

Every create, and every update that changes what the function is (its code
or any setting), records the next version. A rollback is an update whose
content is an older version's: it records a new version and never rewrites
history. Only the last ``keep`` versions are kept. A version of a package's
function names the package (and its entrypoint), not one of its builds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faasd.core.entities import Function

DEFAULT_KEEP_VERSIONS = 10  # as Fission's RFC-0025 proposes
# What a version does not hold: the name it belongs to, and what every write changes.
NOT_SNAPSHOTTED = frozenset({"name", "revision", "created_at", "updated_at"})
SNAPSHOT_FIELDS = tuple(f.name for f in dataclasses.fields(Function) if f.name not in NOT_SNAPSHOTTED)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def snapshot(fn: Function) -> dict[str, Any]:
    """Everything that makes the function what it is, secrets included (a rollback restores them)."""
    values: dict[str, Any] = {}
    for name in SNAPSHOT_FIELDS:
        value = getattr(fn, name)
        values[name] = dict(value) if isinstance(value, Mapping) else value
    return values


def restore(fn: Function, settings: Mapping[str, Any]) -> Function:
    """``fn`` with a version's code and settings; a setting the version predates keeps its current value."""
    return dataclasses.replace(fn, **{k: v for k, v in settings.items() if k in SNAPSHOT_FIELDS})


@dataclass(frozen=True)
class FunctionVersion:
    function: str
    number: int
    created_at: datetime
    settings: Mapping[str, Any]  # snapshot(): code_sha256 and secret values included

    @property
    def code_sha256(self) -> str:
        return str(self.settings.get("code_sha256", ""))

    def to_json(self) -> dict[str, Any]:
        """Secrets by name only, as a function's own answer gives them."""
        settings = {k: v for k, v in self.settings.items() if k not in ("code_sha256", "code_size")}
        settings["secrets"] = sorted(settings.get("secrets", {}))
        return {
            "function": self.function,
            "version": self.number,
            "created_at": _iso(self.created_at),
            "code_sha256": self.code_sha256,
            "code_size": self.settings.get("code_size", 0),
            "settings": settings,
        }


def dropped(numbers: Iterable[int], keep: int) -> list[int]:
    """The version numbers past the newest ``keep``, oldest first."""
    ordered = sorted(numbers)
    return ordered[: max(0, len(ordered) - keep)]


def previous(numbers: Iterable[int]) -> int | None:
    """The version before the newest (what a rollback without ``to`` goes back to), or None."""
    ordered = sorted(numbers)
    return ordered[-2] if len(ordered) > 1 else None
