"""access records: the credential's pseudonymous subject, indexed for contact tracing

Revision ID: 6a3b7c1d9e42
Revises: f563e5af1ca8
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a3b7c1d9e42"
down_revision: str | None = "f563e5af1ca8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_access_records_subject_checked"


def upgrade() -> None:
    # A nullable column without a default: PostgreSQL adds it without rewriting the table.
    op.add_column("access_records", sa.Column("subject_id", sa.String(length=32), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        # A province's table holds tens of millions of rows: built CONCURRENTLY (outside the
        # migration's transaction), the index does not hold up the records arriving meanwhile.
        with op.get_context().autocommit_block():
            op.create_index(
                INDEX,
                "access_records",
                ["subject_id", "checked_at"],
                postgresql_concurrently=True,
            )
    else:
        op.create_index(INDEX, "access_records", ["subject_id", "checked_at"])


def downgrade() -> None:
    op.drop_index(INDEX, table_name="access_records")
    with op.batch_alter_table("access_records") as batch_op:
        batch_op.drop_column("subject_id")
