"""Nodes: the faasd nodes sharing the registry, so that each can ask the others (logs of the whole cluster).

Adds nodes (id, url, started_at, last_seen, version): each node upserts its
row at start and every few seconds (faasd/cluster/heartbeat.py).

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(63), primary_key=True),
        sa.Column("url", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("nodes")
