"""SQLAlchemy tables of the registry; alembic's target metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
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
    network: Mapped[str] = mapped_column(String(16), server_default="default")
    # The package whose deployment archive the function runs; "" for a single source file.
    package: Mapped[str] = mapped_column(String(63), server_default="")


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
