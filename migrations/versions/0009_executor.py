"""A function's executor: instances from the environment's pool (poolmgr) or started for it (newdeploy).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("executor", sa.String(16), nullable=False, server_default="poolmgr"))


def downgrade() -> None:
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("executor")
