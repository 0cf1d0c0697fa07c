"""Watch positions per node: each faasd node follows its own engine's event stream.

Adds watch_positions (watch, node, cursor, snapshot): where a node's watch is in
its engine's events and the objects it last saw. The position each watch had
is kept under node '' and taken by the first node that starts, so a single
faasd goes on from where it was.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "watch_positions",
        sa.Column("watch", sa.String(63), sa.ForeignKey("watches.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("node", sa.String(63), primary_key=True),
        sa.Column("cursor", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("snapshot_json", sa.Text(), nullable=False, server_default="{}"),
    )
    op.execute(
        "INSERT INTO watch_positions (watch, node, cursor, snapshot_json) "
        "SELECT name, '', cursor, snapshot_json FROM watches WHERE cursor <> 0"
    )


def downgrade() -> None:
    op.drop_table("watch_positions")
