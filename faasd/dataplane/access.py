"""The access log: one line per function call, off unless ``--access-log text|json``.

A line names the call's id, function, method and path, the status, how long it
took, whether it waited for a cold start, and the instance that served it. It
goes to the ``faasd.access`` logger, so it lands wherever faasd's log goes.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faasd.dataplane.exchange import Exchange

log = logging.getLogger("faasd.access")

FORMATS = ("off", "text", "json")


class AccessLog:
    def __init__(self, fmt: str) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"access log format must be text or json, not {fmt!r}")
        self.json = fmt == "json"

    def write(self, ex: Exchange, duration: float) -> None:
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "request_id": ex.request_id.decode("latin-1"),
            "function": ex.fn_name,
            "route": ex.route or "/function/" + ex.fn_name,
            "method": ex.method.decode("latin-1"),
            "path": ex.path.decode("utf-8", "replace"),
            "status": ex.status,
            "duration_ms": round(duration * 1000, 3),
            "start": "cold" if ex.cold else "warm",
            "instance": ex.instance,
            "error": ex.error or None,
        }
        if self.json:
            log.info("%s", json.dumps(record, separators=(",", ":")))
        else:
            log.info(
                '%s %s %s "%s %s" %d %.3fms %s %s',
                record["request_id"],
                record["function"],
                record["route"],
                record["method"],
                record["path"],
                record["status"],
                record["duration_ms"],
                record["start"],
                record["instance"] or "-",
            )
