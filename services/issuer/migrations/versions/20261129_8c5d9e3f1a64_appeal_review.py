"""appeal review: `in_review` (was `in_progress`), the reply, the review queue's index, the
user's sealed phone (the outcome is texted), and notices in the dev SMS outbox

Revision ID: 8c5d9e3f1a64
Revises: c9f54d416b39
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c5d9e3f1a64"
down_revision: str | None = "c9f54d416b39"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The contract's word for an appeal under review.
    op.execute("UPDATE appeals SET status = 'in_review' WHERE status = 'in_progress'")
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reply", sa.Text(), nullable=True))
        # The review queue: a status filter read in id (filing) order.
        batch_op.create_index("ix_appeals_status_id", ["status", "id"], unique=False)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_sealed", sa.LargeBinary(), nullable=True))

    # A notice has words and no code.
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch_op.alter_column("code", existing_type=sa.String(length=8), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM sms_outbox WHERE code IS NULL")
    with op.batch_alter_table("sms_outbox", schema=None) as batch_op:
        batch_op.alter_column("code", existing_type=sa.String(length=8), nullable=False)
        batch_op.drop_column("text")

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("phone_sealed")

    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.drop_index("ix_appeals_status_id")
        batch_op.drop_column("reply")
    op.execute("UPDATE appeals SET status = 'in_progress' WHERE status = 'in_review'")
