"""Changes: every registry write leaves a row, so that the other faasd nodes sharing the database follow it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "changes",
        # AUTOINCREMENT on SQLite: an id is never used twice, even once the newest rows were trimmed.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(160), nullable=False),
        sa.Column("node", sa.String(63), nullable=False),
        sa.Column("at", sa.Float(), nullable=False, index=True),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("changes")
