"""batch writes: no index on the results' and doses' person keys; outbox payloads in LZ4

Every index is paid for by every row a batch stores. Nothing reads NAT results or
vaccination records by person (a person's live status is kept on `persons`, and a batch finds
its rows by their report or record id), so their person-key indexes go: a third of what the
database spends storing a lab's batch. A query by person that comes later creates its index
with it (CREATE INDEX CONCURRENTLY on PostgreSQL).

A batch's status events travel as a few grouped outbox rows of a few hundred kilobytes each
(hc_common.events.outbox.group_events). PostgreSQL compresses such values; its default
method (pglz) costs a batch tens of milliseconds where LZ4 costs a few. Where the server was
built without LZ4, payloads are kept uncompressed instead (read once, then deleted).

Revision ID: 7c9d0e1f2a35
Revises: 5e2f6b0c8d31
Create Date: 2026-11-29 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7c9d0e1f2a35"
down_revision: str | None = "5e2f6b0c8d31"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_nat_results_person_key", table_name="nat_results")
    op.drop_index("ix_vaccinations_person_key", table_name="vaccinations")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$
            BEGIN
                ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
            EXCEPTION WHEN feature_not_supported THEN
                ALTER TABLE outbox ALTER COLUMN payload SET STORAGE EXTERNAL;
            END
            $$
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION default, "
            "ALTER COLUMN payload SET STORAGE EXTENDED"
        )
    op.create_index("ix_vaccinations_person_key", "vaccinations", ["person_key"])
    op.create_index("ix_nat_results_person_key", "nat_results", ["person_key"])
