"""Message-queue triggers: a broker's topic whose messages call a function; longer network names.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mq_triggers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("function", sa.String(63), sa.ForeignKey("functions.name", ondelete="RESTRICT"), nullable=False),
        sa.Column("mqtype", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("resptopic", sa.String(255), nullable=False),
        sa.Column("errortopic", sa.String(255), nullable=False),
        sa.Column("maxretries", sa.Integer(), nullable=False),
        sa.Column("maxconcurrency", sa.Integer(), nullable=False),
        sa.Column("contenttype", sa.String(255), nullable=False),
        sa.Column("connection", sa.Text(), nullable=False),
        sa.Column("connection_secret", sa.String(128), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_mq_triggers_function", "mq_triggers", ["function"])
    # A function's network may now be a user network's name (up to 63 characters, as Docker's).
    with op.batch_alter_table("functions") as batch:
        batch.alter_column("network", type_=sa.String(63), existing_type=sa.String(16), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.alter_column("network", type_=sa.String(16), existing_type=sa.String(63), existing_nullable=False)
    op.drop_table("mq_triggers")
