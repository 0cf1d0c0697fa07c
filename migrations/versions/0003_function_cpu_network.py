"""Per-function CPU limit and network.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The server defaults are faasd's defaults (faasd/core/entities.py), so the
    # functions that exist already get one core and the default network.
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("cpu_millis", sa.Integer(), nullable=False, server_default="1000"))
        batch.add_column(sa.Column("network", sa.String(16), nullable=False, server_default="default"))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        for column in ("network", "cpu_millis"):
            batch.drop_column(column)
