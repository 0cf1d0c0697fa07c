"""The registry's objects as plain, immutable values.

The store returns these, the controller keeps them in memory, and the gateway
and pool read them; no SQLAlchemy object escapes faasd/store.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Environment:
    name: str
    image: str
    poolsize: int
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "poolsize": self.poolsize,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class Function:
    name: str
    environment: str
    filename: str
    entrypoint: str
    timeout: int
    code_sha256: str
    code_size: int
    revision: int
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "environment": self.environment,
            "filename": self.filename,
            "entrypoint": self.entrypoint,
            "timeout": self.timeout,
            "code_sha256": self.code_sha256,
            "code_size": self.code_size,
            "revision": self.revision,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class HttpTrigger:
    name: str
    method: str
    url: str
    function: str
    created_at: datetime
    updated_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "url": self.url,
            "function": self.function,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
