"""tracing requests: every contact-tracing request and its answer (masked), for the audit

Revision ID: 5e2f6b0c8d31
Revises: 4d1e5a9b7c20
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import hc_common.db

revision: str = "5e2f6b0c8d31"
down_revision: str | None = "4d1e5a9b7c20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tracing_requests",
        sa.Column("trace_id", sa.String(length=26), nullable=False),
        sa.Column("created_at", hc_common.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("case_masked_name", sa.String(length=64), nullable=True),
        sa.Column("case_masked_id_number", sa.String(length=18), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Boolean(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("answer", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("trace_id"),
    )
    op.create_index("ix_tracing_requests_created", "tracing_requests", ["created_at", "trace_id"])


def downgrade() -> None:
    op.drop_index("ix_tracing_requests_created", table_name="tracing_requests")
    op.drop_table("tracing_requests")
