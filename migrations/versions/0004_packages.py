"""Packages: a function's source archive and its deployment archive.

Adds the packages table, functions.package (the package a function runs,
"" for a single-file function) and environments.builder (the image that
builds an environment's packages, "" for none).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The builders of the stock environments (faasd/control/controller.py,
# STOCK_BUILDERS) as they were named when this revision was written: an
# existing install gets them here, once, as a new one does at its first start.
STOCK_BUILDERS = {"nodejs": "faasd/builder-nodejs:latest", "python": "faasd/builder-python:latest"}


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column(
            "environment",
            sa.String(63),
            sa.ForeignKey("environments.name", ondelete="RESTRICT"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source_sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("source_size", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("deploy_sha256", sa.String(64), nullable=False, server_default=""),
        sa.Column("deploy_size", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("buildcmd", sa.Text(), nullable=False, server_default=""),
        sa.Column("build_log", sa.Text(), nullable=False, server_default=""),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_packages_environment", "packages", ["environment"])
    with op.batch_alter_table("functions") as batch:
        batch.add_column(sa.Column("package", sa.String(63), nullable=False, server_default=""))
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("builder", sa.String(255), nullable=False, server_default=""))
    environments = sa.table("environments", sa.column("name", sa.String), sa.column("builder", sa.String))
    for name, builder in STOCK_BUILDERS.items():
        op.execute(environments.update().where(environments.c.name == name).values(builder=builder))


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("builder")
    with op.batch_alter_table("functions") as batch:
        batch.drop_column("package")
    op.drop_index("ix_packages_environment", "packages")
    op.drop_table("packages")
