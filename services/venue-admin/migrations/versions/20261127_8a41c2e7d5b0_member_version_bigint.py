"""member versions in 64 bits (microsecond-based, so that a re-added member's event outranks
its removal at the verifier)

Revision ID: 8a41c2e7d5b0
Revises: 3f090cd80053
Create Date: 2026-11-27 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8a41c2e7d5b0"
down_revision: str | None = "3f090cd80053"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.alter_column(
            "version", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.alter_column(
            "version", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
