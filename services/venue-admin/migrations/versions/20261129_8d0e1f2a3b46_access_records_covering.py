"""access records: the venue/time index carries subject_id and masked_name (covering)

Contact tracing reads, for each venue a case visited, every scan within a window: a range of
(venue_id, checked_at) of which it needs subject_id and masked_name. Carried in the index
(INCLUDE, not key columns: same ordering, so the access-record list and CSV export keep their
keyset range scans on it), PostgreSQL answers with an index-only scan instead of one heap page
a row. One index, not a second: it replaces ix_access_records_venue_checked under its name.

Revision ID: 8d0e1f2a3b46
Revises: 6a3b7c1d9e42
Create Date: 2026-11-29 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "8d0e1f2a3b46"
down_revision: str | None = "6a3b7c1d9e42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_access_records_venue_checked"
BUILDING = "ix_access_records_venue_checked_new"
KEY = ["venue_id", "checked_at", "record_id"]


def _rebuild(include: list[str]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A province's table holds tens of millions of rows: the new index is built
        # CONCURRENTLY (outside the migration's transaction: records keep arriving), under a
        # new name, then takes the old one's place. A build interrupted earlier leaves an
        # invalid index of the new name: dropped first.
        with op.get_context().autocommit_block():
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {BUILDING}")
            op.execute("SET maintenance_work_mem = '512MB'")
            op.create_index(
                BUILDING,
                "access_records",
                KEY,
                postgresql_include=include,
                postgresql_concurrently=True,
            )
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
            op.execute(f"ALTER INDEX {BUILDING} RENAME TO {INDEX}")
            op.execute("RESET maintenance_work_mem")
    else:
        # SQLite has no INCLUDE, and its tables are a town's: the index is left as it is.
        pass


def upgrade() -> None:
    _rebuild(["subject_id", "masked_name"])


def downgrade() -> None:
    _rebuild([])
