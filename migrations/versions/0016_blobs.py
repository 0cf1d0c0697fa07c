"""Blobs in the database: code and package archives every faasd node sharing a PostgreSQL reads.

Adds blobs (sha256, data, size, created_at). On PostgreSQL the blobs live
there, the state dir keeping a copy of those a node has read; SQLite keeps
its blobs in the state dir's files as before and leaves this table empty.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blobs")
