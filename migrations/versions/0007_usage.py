"""Usage metering: calls, billed milliseconds, GB-seconds and instance-seconds per function and hour.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No foreign key to functions: usage outlives a deleted function (it was used, and billed).
    op.create_table(
        "usage",
        sa.Column("function", sa.String(63), primary_key=True),
        sa.Column("hour", sa.BigInteger(), primary_key=True),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("billed_ms", sa.BigInteger(), nullable=False),
        sa.Column("gb_seconds", sa.Float(), nullable=False),
        sa.Column("instance_seconds", sa.Float(), nullable=False),
    )
    op.create_index("ix_usage_hour", "usage", ["hour"])


def downgrade() -> None:
    op.drop_index("ix_usage_hour", "usage")
    op.drop_table("usage")
