"""Columns as wide as what the API takes: a timer's cron expression (up to 1024 characters,
faasd/events/cron.py) and a message-queue trigger's content type (its pattern has no bound).

SQLite never held a VARCHAR to its length; PostgreSQL does, and answered a long
(valid) cron expression with an error.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timers") as batch:
        batch.alter_column("cron", type_=sa.String(1024), existing_type=sa.String(255), existing_nullable=False)
    with op.batch_alter_table("mq_triggers") as batch:
        batch.alter_column("contenttype", type_=sa.Text(), existing_type=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("mq_triggers") as batch:
        batch.alter_column("contenttype", type_=sa.String(255), existing_type=sa.Text(), existing_nullable=False)
    with op.batch_alter_table("timers") as batch:
        batch.alter_column("cron", type_=sa.String(255), existing_type=sa.String(1024), existing_nullable=False)
