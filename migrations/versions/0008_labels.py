"""Labels on every resource (what `faas spec apply` marks its objects with).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("labels_json", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("labels")
