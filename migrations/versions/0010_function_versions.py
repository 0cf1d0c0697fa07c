"""A function's versions: the last N snapshots of its code and settings.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Functions that exist already get their version 1 at faasd's next start (faasd/control/versions.py).
    op.create_table(
        "function_versions",
        sa.Column("function", sa.String(63), sa.ForeignKey("functions.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("number", sa.Integer(), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("settings_json", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("function_versions")
