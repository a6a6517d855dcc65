"""drop the outbox: access records go through the local journal (access/spool.py)

Revision ID: b7d41c0e9a52
Revises: 798faf05218c
Create Date: 2026-11-27 09:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hc_common.db

revision: str = "b7d41c0e9a52"
down_revision: str | None = "798faf05218c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("outbox")


def downgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", hc_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
