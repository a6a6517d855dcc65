"""persons: a keyed hash of the normalised name, to compare a batch's names without decrypting

A lab row whose name differs from the name on file for that ID number is rejected
(`name_mismatch`). Comparing HMACs of the normalised names (NFKC, trimmed) costs a batch no
decryption. Rows written before this revision have no key; they get it when next named.

Revision ID: 4d1e5a9b7c20
Revises: 3b7e91c2d4a8
Create Date: 2026-11-29 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4d1e5a9b7c20"
down_revision: str | None = "3b7e91c2d4a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("persons", sa.Column("name_key", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("persons", "name_key")
