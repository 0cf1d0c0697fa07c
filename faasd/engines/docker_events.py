"""The Docker engine's events and objects, for watch triggers (faasd/events/watches.py).

Speaks the engine's HTTP API directly (the SDK's event generator would hold a
thread per stream): ``GET /events`` as a stream of JSON lines from a given
time, and inspect/list of containers, networks, volumes and images.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from faasd.core.errors import EngineUnavailable
from faasd.engines.docker import TOKEN_ENV, DockerBackend

_INSPECT = {
    "container": "/containers/{id}/json",
    "network": "/networks/{id}",
    "volume": "/volumes/{id}",
    "image": "/images/{id}/json",
}
_LIST = {
    "container": "/containers/json?all=1",
    "network": "/networks",
    "volume": "/volumes",
    "image": "/images/json",
}


def since_arg(nanos: int) -> str:
    """The engine's ``since``/``until`` form of a time in nanoseconds: seconds.nanoseconds."""
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def label_filters(labels: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" if v else k for k, v in sorted(labels.items())]


class DockerEvents:
    def __init__(self, backend: DockerBackend) -> None:
        self._backend = backend

    async def _get(self, path: str, **params: str) -> Any:
        session, base = self._backend.engine_http()
        try:
            async with session.get(base + path, params=params or None) as resp:
                if resp.status == 404:
                    return None
                if resp.status >= 400:
                    raise EngineUnavailable(f"Docker engine error on {path}: {resp.status} {await resp.text()}")
                return await resp.json(content_type=None)
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnavailable(f"Docker engine unreachable: {exc}") from exc

    async def now(self) -> int:
        """The engine's clock in nanoseconds (its /info SystemTime), so that cursors share one clock."""
        info = await self._get("/info")
        stamp = info.get("SystemTime", "")
        whole, _, frac = stamp.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        zone = frac[len(digits) :] if digits else ""
        seconds = datetime.fromisoformat(whole + (zone.replace("Z", "+00:00") or "+00:00")).timestamp()
        return int(seconds) * 1_000_000_000 + int((digits + "000000000")[:9])

    async def inspect(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """The engine's inspect JSON, less the specialization token of faasd's own containers."""
        found = await self._get(_INSPECT[kind].format(id=object_id))
        if not isinstance(found, dict):
            return None
        config = found.get("Config")
        if isinstance(config, dict) and isinstance(config.get("Env"), list):
            config["Env"] = [e for e in config["Env"] if not str(e).startswith(TOKEN_ENV + "=")]
        return found

    async def list(self, kind: str, labels: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """The objects of ``kind`` with ``labels``, inspected: id -> inspect JSON."""
        filters = json.dumps({"label": label_filters(labels)}) if labels else None
        path = _LIST[kind]
        listed = await self._get(path, **({"filters": filters} if filters else {}))
        if kind == "volume":
            listed = (listed or {}).get("Volumes") or []
        found: dict[str, dict[str, Any]] = {}
        for item in listed or []:
            object_id = item.get("Id") or item.get("Name")
            if not object_id:
                continue
            inspected = await self.inspect(kind, object_id)
            if inspected is not None:
                found[object_id] = inspected
        return found

    async def stream(
        self, kind: str, labels: Mapping[str, str], since: int, until: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The engine's events of ``kind`` from ``since`` (ns): past ones first, then live (until ``until``).

        Ends when the engine closes the stream; raises EngineUnavailable when it cannot be reached.
        """
        session, base = self._backend.engine_http()
        filters: dict[str, list[str]] = {"type": [kind]}
        if labels:
            filters["label"] = label_filters(labels)
        params = {"since": since_arg(since), "filters": json.dumps(filters)}
        if until is not None:
            params["until"] = since_arg(until)
        try:
            async with session.get(
                base + "/events", params=params, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)
            ) as resp:
                if resp.status >= 400:
                    raise EngineUnavailable(f"Docker engine refused the event stream: {resp.status}")
                async for line in resp.content:
                    if line.strip():
                        yield json.loads(line)
        except (aiohttp.ClientError, OSError, json.JSONDecodeError) as exc:
            raise EngineUnavailable(f"the engine's event stream broke: {exc}") from exc
