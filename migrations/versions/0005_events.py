"""Events: asynchronous calls (invocations), timers and watches.

Adds the invocations, timers and watches tables, functions.retries and
functions.retry_max_age (the retry policy of a function's asynchronous calls)
and http_triggers.is_async (a route whose calls are queued).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server defaults are faasd's defaults (faasd/core/events.py).
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="4"))
        batch.add_column(sa.Column("retry_max_age", sa.Integer(), nullable=False, server_default="21600"))
    with op.batch_alter_table("http_triggers") as batch:
        batch.add_column(sa.Column("is_async", sa.Boolean(), nullable=False, server_default="0"))
    op.create_table(
        "invocations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("function", sa.String(63), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("headers_json", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("trigger_name", sa.String(63), nullable=False, server_default=""),
        sa.Column("callback_url", sa.Text(), nullable=False, server_default=""),
        sa.Column("idempotency_key", sa.String(320), nullable=True, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("next_at", sa.Float(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("max_age", sa.Integer(), nullable=False),
        sa.Column("attempts_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("response_body", sa.LargeBinary(), nullable=False, server_default=""),
        sa.Column("response_truncated", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index("ix_invocations_function", "invocations", ["function"])
    op.create_index("ix_invocations_status_next", "invocations", ["status", "next_at"])
    op.create_table(
        "timers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("function", sa.String(63), sa.ForeignKey("functions.name", ondelete="RESTRICT"), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("subpath", sa.String(1024), nullable=False),
        sa.Column("overlap", sa.String(16), nullable=False),
        sa.Column("catch_up", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_tick", sa.Float(), nullable=True),
    )
    op.create_index("ix_timers_function", "timers", ["function"])
    op.create_table(
        "watches",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("function", sa.String(63), sa.ForeignKey("functions.name", ondelete="RESTRICT"), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("labels_json", sa.Text(), nullable=False),
        sa.Column("events_json", sa.Text(), nullable=False),
        sa.Column("include_faasd", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("snapshot_json", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_watches_function", "watches", ["function"])


def downgrade() -> None:
    op.drop_table("watches")
    op.drop_table("timers")
    op.drop_table("invocations")
    with op.batch_alter_table("http_triggers") as batch:
        batch.drop_column("is_async")
    with op.batch_alter_table("functions") as batch:
        for column in ("retry_max_age", "retries"):
            batch.drop_column(column)
