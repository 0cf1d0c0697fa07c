"""The registry: environments, functions, HTTP triggers.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("image", sa.String(255), nullable=False),
        sa.Column("poolsize", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "functions",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column(
            "environment",
            sa.String(63),
            sa.ForeignKey("environments.name", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("entrypoint", sa.String(255), nullable=False),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("code_size", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_functions_environment", "functions", ["environment"])
    op.create_table(
        "http_triggers",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("url_key", sa.String(1024), nullable=False),
        sa.Column(
            "function",
            sa.String(63),
            sa.ForeignKey("functions.name", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("method", "url_key", name="uq_http_triggers_method_url"),
    )
    op.create_index("ix_http_triggers_function", "http_triggers", ["function"])


def downgrade() -> None:
    op.drop_table("http_triggers")
    op.drop_table("functions")
    op.drop_table("environments")
