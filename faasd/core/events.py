"""Events as plain values: asynchronous calls (invocations), timers and watches.

An invocation is one request to a function that faasd stores before it
answers 202 and delivers later, retrying as its policy says. Timers and
watches make invocations: a tick, or an event of the container engine.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# Retries of an asynchronous call, and why: Lambda retries an async event twice
# over up to 6 h; OpenFaaS's queue worker retries 429/5xx with a capped backoff.
# faasd makes 5 attempts in all (--retries 4), 1 s doubling to 60 s between them,
# with jitter, within 6 h of the call's arrival.
DEFAULT_RETRIES = 4
DEFAULT_RETRY_MAX_AGE = 6 * 3600
MAX_RETRIES = 100
MAX_RETRY_MAX_AGE = 7 * 86400
BACKOFF_BASE = 1.0
BACKOFF_CAP = 60.0
# What an asynchronous call may carry, and how long its result is kept.
MAX_ASYNC_BODY = 1024 * 1024
MAX_RESULT_BODY = 1024 * 1024
RESULT_RETENTION = 24 * 3600  # succeeded and failed calls, their Idempotency-Key too
DEFAULT_MAX_QUEUED = 10_000  # queued + running calls; past this, 503 with Retry-After

TIMER_OVERLAPS = ("forbid", "allow")
TIMER_CATCH_UPS = ("once", "none")
WATCH_TYPES = ("container", "network", "volume", "image")
WATCH_EVENTS = ("added", "removed", "updated")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class CallStatus(StrEnum):
    queued = "queued"  # waiting for its first or next attempt
    running = "running"  # an attempt is in flight
    succeeded = "succeeded"  # the function answered 1xx-3xx
    failed = "failed"  # the function answered a 4xx that is not worth a retry
    dead = "dead"  # out of attempts or of age: a dead letter

    @property
    def finished(self) -> bool:
        return self in (CallStatus.succeeded, CallStatus.failed, CallStatus.dead)


@dataclass(frozen=True)
class Attempt:
    number: int
    started_at: float
    finished_at: float | None = None
    status: int | None = None  # the function's HTTP status; None: no answer (see error)
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": _iso(from_epoch(self.started_at)),
            "finished_at": _iso(from_epoch(self.finished_at)),
            "status": self.status,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Attempt:
        return cls(doc["n"], doc["s"], doc.get("f"), doc.get("c"), doc.get("e", ""))

    def to_row(self) -> dict[str, Any]:
        return {"n": self.number, "s": self.started_at, "f": self.finished_at, "c": self.status, "e": self.error}


@dataclass(frozen=True)
class CallRequest:
    """What an asynchronous call sends to its function."""

    function: str
    method: str
    target: str  # path and query as the function sees them
    headers: tuple[tuple[str, str], ...]
    body: bytes
    trigger: str = "async"  # async, timer or watch
    trigger_name: str = ""
    callback_url: str = ""
    idempotency_key: str = ""


@dataclass(frozen=True)
class Invocation:
    id: str
    request: CallRequest
    status: CallStatus
    created_at: float
    updated_at: float
    next_at: float  # when the next attempt may start (queued)
    max_attempts: int
    max_age: int
    attempts: tuple[Attempt, ...] = ()
    response_status: int | None = None
    response_headers: tuple[tuple[str, str], ...] = ()
    response_body: bytes = b""
    response_truncated: bool = False
    reason: str = ""  # why it failed or died

    @property
    def function(self) -> str:
        return self.request.function

    def to_json(self, with_body: bool = True) -> dict[str, Any]:
        req = self.request
        doc: dict[str, Any] = {
            "id": self.id,
            "function": req.function,
            "method": req.method,
            "path": req.target,
            "trigger": req.trigger,
            "trigger_name": req.trigger_name,
            "status": self.status.value,
            "created_at": _iso(from_epoch(self.created_at)),
            "updated_at": _iso(from_epoch(self.updated_at)),
            "next_attempt_at": _iso(from_epoch(self.next_at)) if self.status == CallStatus.queued else None,
            "max_attempts": self.max_attempts,
            "max_age": self.max_age,
            "attempts": [a.to_json() for a in self.attempts],
            "reason": self.reason,
            "callback_url": req.callback_url,
            "idempotency_key": req.idempotency_key,
            "response": None,
        }
        if self.response_status is not None:
            response: dict[str, Any] = {
                "status": self.response_status,
                "headers": dict(self.response_headers),
                "truncated": self.response_truncated,
            }
            if with_body:
                try:
                    response["body"] = self.response_body.decode("utf-8")
                except UnicodeDecodeError:
                    response["body_base64"] = base64.b64encode(self.response_body).decode()
            doc["response"] = response
        return doc


@dataclass(frozen=True)
class Timer:
    name: str
    function: str
    cron: str
    timezone: str
    method: str
    subpath: str
    overlap: str  # forbid: skip a tick while the previous one's call is unfinished; allow
    catch_up: str  # once: one run at start when ticks were missed while faasd was down; none
    created_at: datetime
    updated_at: datetime
    last_tick: float | None = None  # the scheduled time of the last tick made

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "function": self.function,
            "cron": self.cron,
            "timezone": self.timezone,
            "method": self.method,
            "subpath": self.subpath,
            "overlap": self.overlap,
            "catch_up": self.catch_up,
            "last_tick_at": _iso(from_epoch(self.last_tick)),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass(frozen=True)
class Watch:
    name: str
    function: str
    type: str  # container, network, volume or image
    labels: Mapping[str, str] = field(default_factory=dict)
    events: tuple[str, ...] = WATCH_EVENTS
    include_faasd: bool = False  # faasd's own containers too
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "function": self.function,
            "type": self.type,
            "labels": dict(self.labels),
            "events": list(self.events),
            "include_faasd": self.include_faasd,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


MQ_TYPES = ("redis", "nats")
# A topic: a Redis stream key or a NATS subject (no wildcards).
TOPIC_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$"
DEFAULT_MQ_MAX_RETRIES = 3  # attempts of one message in all; then the error topic
DEFAULT_MQ_MAX_CONCURRENCY = 10  # messages of one trigger in flight at once
MAX_MQ_CONCURRENCY = 1000


SECRET_PARAMS = ("password", "pass", "token", "secret")


def redact_url(url: str) -> str:
    """A connection URL with its secrets hidden (a password, a token alone, a password parameter),
    for listings, errors and logs; each URL of a comma-separated server list."""
    if "," in url:
        return ",".join(redact_url(part) for part in url.split(","))
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    userinfo, at, host = rest.rpartition("@")
    if at:
        user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
        rest = f"{user}:***@{host}" if user else f"***@{host}"
    base, q, query = rest.partition("?")
    if q:
        parts = []
        for item in query.split("&"):
            key, eq, _value = item.partition("=")
            parts.append(f"{key}=***" if eq and key.lower() in SECRET_PARAMS else item)
        rest = base + "?" + "&".join(parts)
    return f"{scheme}://{rest}"


@dataclass(frozen=True)
class MqTrigger:
    """Messages on a broker's topic become calls of a function (Fission's mqtrigger)."""

    name: str
    function: str
    mqtype: str  # redis (Streams) or nats (JetStream)
    topic: str
    resptopic: str = ""  # where a 2xx answer's body is published ("" = nowhere)
    errortopic: str = ""  # where a message that failed maxretries times goes ("" = dropped, logged)
    maxretries: int = DEFAULT_MQ_MAX_RETRIES
    maxconcurrency: int = DEFAULT_MQ_MAX_CONCURRENCY
    contenttype: str = "application/json"
    connection: str = ""  # broker URL as faasd reaches it
    connection_secret: str = ""  # or: the name of one of the function's secrets that holds the URL
    method: str = "POST"
    created_at: datetime = EPOCH
    updated_at: datetime = EPOCH

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "function": self.function,
            "mqtype": self.mqtype,
            "topic": self.topic,
            "resptopic": self.resptopic,
            "errortopic": self.errortopic,
            "maxretries": self.maxretries,
            "maxconcurrency": self.maxconcurrency,
            "contenttype": self.contenttype,
            "connection": redact_url(self.connection),
            "connection_secret": self.connection_secret,
            "method": self.method,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }
