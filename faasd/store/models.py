"""SQLAlchemy tables of the registry; alembic's target metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EnvironmentRow(Base):
    __tablename__ = "environments"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    image: Mapped[str] = mapped_column(String(255))
    poolsize: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    builder: Mapped[str] = mapped_column(String(255), server_default="")


class FunctionRow(Base):
    __tablename__ = "functions"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    environment: Mapped[str] = mapped_column(
        String(63), ForeignKey("environments.name", ondelete="RESTRICT"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    entrypoint: Mapped[str] = mapped_column(String(255))
    timeout: Mapped[int] = mapped_column(Integer)
    code_sha256: Mapped[str] = mapped_column(String(64))
    code_size: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    env_json: Mapped[str] = mapped_column(Text, server_default="{}")
    secrets_json: Mapped[str] = mapped_column(Text, server_default="{}")
    memory_mb: Mapped[int] = mapped_column(Integer, server_default="256")
    concurrency: Mapped[int] = mapped_column(Integer, server_default="50")
    max_instances: Mapped[int] = mapped_column(Integer, server_default="10")
    min_instances: Mapped[int] = mapped_column(Integer, server_default="0")
    idle_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue_timeout: Mapped[int] = mapped_column(Integer, server_default="10")
    cpu_millis: Mapped[int] = mapped_column(Integer, server_default="1000")
    network: Mapped[str] = mapped_column(String(63), server_default="default")
    executor: Mapped[str] = mapped_column(String(16), server_default="poolmgr")
    # The package whose deployment archive the function runs; "" for a single source file.
    package: Mapped[str] = mapped_column(String(63), server_default="")
    # Asynchronous calls: retries after the first attempt, and the age past which a call is a dead letter.
    retries: Mapped[int] = mapped_column(Integer, server_default="4")
    retry_max_age: Mapped[int] = mapped_column(Integer, server_default="21600")


class FunctionVersionRow(Base):
    """One version of a function (faasd/core/versions.py): its code and settings, secrets included."""

    __tablename__ = "function_versions"

    function: Mapped[str] = mapped_column(
        String(63), ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    code_sha256: Mapped[str] = mapped_column(String(64), server_default="")  # also in settings: kept blobs
    settings_json: Mapped[str] = mapped_column(Text)


class HttpTriggerRow(Base):
    __tablename__ = "http_triggers"
    __table_args__ = (UniqueConstraint("method", "url_key", name="uq_http_triggers_method_url"),)

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))
    url: Mapped[str] = mapped_column(String(1024))
    # The URL pattern with parameter names blanked: /users/{id} and
    # /users/{name} are the same route.
    url_key: Mapped[str] = mapped_column(String(1024))
    function: Mapped[str] = mapped_column(String(63), ForeignKey("functions.name", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Calls on this route are queued (202 and a call id) instead of answered.
    is_async: Mapped[bool] = mapped_column(Boolean, server_default="0")
    # A split route: [[function, weight], ...], `function` the heaviest; "[]": `function` alone.
    # The others are not foreign keys: the controller keeps them pointing at functions that exist.
    functions_json: Mapped[str] = mapped_column(Text, server_default="[]")


class PackageRow(Base):
    __tablename__ = "packages"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    environment: Mapped[str] = mapped_column(
        String(63), ForeignKey("environments.name", ondelete="RESTRICT"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    source_sha256: Mapped[str] = mapped_column(String(64), server_default="")
    source_size: Mapped[int] = mapped_column(Integer, server_default="0")
    deploy_sha256: Mapped[str] = mapped_column(String(64), server_default="")
    deploy_size: Mapped[int] = mapped_column(Integer, server_default="0")
    buildcmd: Mapped[str] = mapped_column(Text, server_default="")
    build_log: Mapped[str] = mapped_column(Text, server_default="")
    error: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InvocationRow(Base):
    """An asynchronous call: its request, where it is, its attempts and its answer (times: Unix seconds)."""

    __tablename__ = "invocations"
    __table_args__ = (
        Index("ix_invocations_status_next", "status", "next_at"),
        Index("ix_invocations_status_lease", "status", "lease_until"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    function: Mapped[str] = mapped_column(String(63), index=True)
    method: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    headers_json: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    trigger: Mapped[str] = mapped_column(String(16))
    trigger_name: Mapped[str] = mapped_column(String(63), server_default="")
    callback_url: Mapped[str] = mapped_column(Text, server_default="")
    # Unique while set; cleared when the call's result expires.
    idempotency_key: Mapped[str | None] = mapped_column(String(320), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    next_at: Mapped[float] = mapped_column(Float)
    max_attempts: Mapped[int] = mapped_column(Integer)
    max_age: Mapped[int] = mapped_column(Integer)
    attempts_json: Mapped[str] = mapped_column(Text, server_default="[]")
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers_json: Mapped[str] = mapped_column(Text, server_default="[]")
    response_body: Mapped[bytes] = mapped_column(LargeBinary, server_default="")
    response_truncated: Mapped[bool] = mapped_column(Boolean, server_default="0")
    reason: Mapped[str] = mapped_column(Text, server_default="")
    # The node that holds the call (delivers it, or will) until lease_until (Unix seconds; 0: none).
    # faasd/events/leases.py: a call is delivered only by the node holding it.
    lease_owner: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    lease_until: Mapped[float] = mapped_column(Float, server_default="0")


class TimerRow(Base):
    __tablename__ = "timers"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    function: Mapped[str] = mapped_column(String(63), ForeignKey("functions.name", ondelete="RESTRICT"), index=True)
    cron: Mapped[str] = mapped_column(String(1024))  # faasd/events/cron.py: MAX_EXPRESSION
    timezone: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))
    subpath: Mapped[str] = mapped_column(String(1024))
    overlap: Mapped[str] = mapped_column(String(16))
    catch_up: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_tick: Mapped[float | None] = mapped_column(Float, nullable=True)


class WatchRow(Base):
    __tablename__ = "watches"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    function: Mapped[str] = mapped_column(String(63), ForeignKey("functions.name", ondelete="RESTRICT"), index=True)
    type: Mapped[str] = mapped_column(String(16))
    labels_json: Mapped[str] = mapped_column(Text)
    events_json: Mapped[str] = mapped_column(Text)
    include_faasd: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Before migration 0015: where the engine's event stream was left; now per node in watch_positions.
    cursor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    snapshot_json: Mapped[str] = mapped_column(Text, server_default="{}")


class WatchPositionRow(Base):
    """Where a node's watch is in its own engine's event stream (its timeNano) and the matching objects
    as last seen, so that a restart finds what changed meanwhile. Per node: each node follows its own
    engine (node '': a position from before nodes, taken by the first node that starts)."""

    __tablename__ = "watch_positions"

    watch: Mapped[str] = mapped_column(String(63), ForeignKey("watches.name", ondelete="CASCADE"), primary_key=True)
    node: Mapped[str] = mapped_column(String(63), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger, server_default="0")
    snapshot_json: Mapped[str] = mapped_column(Text, server_default="{}")


class MqTriggerRow(Base):
    __tablename__ = "mq_triggers"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    function: Mapped[str] = mapped_column(String(63), ForeignKey("functions.name", ondelete="RESTRICT"), index=True)
    mqtype: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(255))
    resptopic: Mapped[str] = mapped_column(String(255))
    errortopic: Mapped[str] = mapped_column(String(255))
    maxretries: Mapped[int] = mapped_column(Integer)
    maxconcurrency: Mapped[int] = mapped_column(Integer)
    contenttype: Mapped[str] = mapped_column(Text)
    connection: Mapped[str] = mapped_column(Text)
    connection_secret: Mapped[str] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsageRow(Base):
    """What one function used in one hour (faasd/observe/usage.py adds to it)."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_hour", "hour"),)

    function: Mapped[str] = mapped_column(String(63), primary_key=True)
    hour: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the hour's start, unix seconds (UTC)
    calls: Mapped[int] = mapped_column(BigInteger)
    billed_ms: Mapped[int] = mapped_column(BigInteger)
    gb_seconds: Mapped[float] = mapped_column(Float)
    instance_seconds: Mapped[float] = mapped_column(Float)


class LabelRow(Base):
    """A resource's labels (faasd/store/labels.py); ``kind`` as the API says it: function, route, ..."""

    __tablename__ = "labels"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    labels_json: Mapped[str] = mapped_column(Text)


class CanaryRow(Base):
    """A canary (faasd/core/canary.py): where it is and the steps it took. Not foreign keys: a canary that
    ended may outlive its route; the functions' deletes take their canaries along."""

    __tablename__ = "canaries"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    newfunction: Mapped[str] = mapped_column(String(63), index=True)
    oldfunction: Mapped[str] = mapped_column(String(63), index=True)
    httptrigger: Mapped[str] = mapped_column(String(63))
    increment_step: Mapped[int] = mapped_column(Integer)
    increment_interval: Mapped[int] = mapped_column(Integer)
    failure_threshold: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    weight: Mapped[int] = mapped_column(Integer)
    history_json: Mapped[str] = mapped_column(Text, server_default="[]")
    reason: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ChangeRow(Base):
    """One registry write, for the other faasd nodes that share the database (faasd/cluster/journal.py):
    what changed (``kind``, ``name``), which node wrote it, when (Unix seconds). Ids only grow (SQLite's
    AUTOINCREMENT: an id is never reused after old rows are trimmed)."""

    __tablename__ = "changes"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(160))
    node: Mapped[str] = mapped_column(String(63))
    at: Mapped[float] = mapped_column(Float, index=True)


class BlobRow(Base):
    """A code blob or package archive, by its sha256, on PostgreSQL (faasd/store/blobs.py): every node reads
    it there and keeps a copy in its state dir. Unused on SQLite, whose blobs are the state dir's files."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    # Put or put again: a blob no row names yet is kept a while (the sweep's grace) for the write that will.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NodeRow(Base):
    """A faasd node sharing the registry (faasd/cluster/heartbeat.py): its id (the owner label), the URL its
    admin API is reached at, and when it started and was last seen (Unix seconds, the database's clock on
    PostgreSQL). A node is live while it keeps beating."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    url: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    version: Mapped[str] = mapped_column(String(32))
