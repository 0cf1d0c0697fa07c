"""Per-function scaling, limits, environment variables and secrets.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("env_json", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("secrets_json", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("memory_mb", sa.Integer(), nullable=False, server_default="256"))
        batch.add_column(sa.Column("concurrency", sa.Integer(), nullable=False, server_default="50"))
        batch.add_column(sa.Column("max_instances", sa.Integer(), nullable=False, server_default="10"))
        batch.add_column(sa.Column("min_instances", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("idle_timeout", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("queue_timeout", sa.Integer(), nullable=False, server_default="10"))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        for column in (
            "queue_timeout",
            "idle_timeout",
            "min_instances",
            "max_instances",
            "concurrency",
            "memory_mb",
            "secrets_json",
            "env_json",
        ):
            batch.drop_column(column)
