"""Canaries: a new function takes a route's calls from an old one step by step, or is rolled back.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "canaries",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("newfunction", sa.String(63), nullable=False, index=True),
        sa.Column("oldfunction", sa.String(63), nullable=False, index=True),
        sa.Column("httptrigger", sa.String(63), nullable=False),
        sa.Column("increment_step", sa.Integer(), nullable=False),
        sa.Column("increment_interval", sa.Integer(), nullable=False),
        sa.Column("failure_threshold", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("history_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("canaries")
