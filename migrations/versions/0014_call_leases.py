"""Call leases: the node that holds an asynchronous call, and until when (several nodes, one registry).

Adds invocations.lease_owner (a node's id, NULL: none) and invocations.lease_until
(Unix seconds, 0: none), indexed for the renewal (by owner) and for the look
for calls nobody holds (by status and lease end). A call left running by an
older faasd has no lease and is taken at the next start, as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invocations") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(63), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.Float(), nullable=False, server_default="0"))
    op.create_index("ix_invocations_lease_owner", "invocations", ["lease_owner"])
    op.create_index("ix_invocations_status_lease", "invocations", ["status", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_invocations_status_lease", table_name="invocations")
    op.drop_index("ix_invocations_lease_owner", table_name="invocations")
    with op.batch_alter_table("invocations") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
