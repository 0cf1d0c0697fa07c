"""Routes that split their calls between functions by weight (faas route create --function a --weight 90 ...).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # [[function, weight], ...]; "[]": the route names `function` alone (every route before this one).
    with op.batch_alter_table("http_triggers") as batch:
        batch.add_column(sa.Column("functions_json", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("http_triggers") as batch:
        batch.drop_column("functions_json")
