"""One scan at a venue, as the verifier decided it; the record id is the key."""

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from venue_admin.db import Base


class AccessRecord(Base):
    __tablename__ = "access_records"
    __table_args__ = (
        # The list: one venue, newest first, keyset-paginated on (checked_at, record_id).
        # Contact tracing reads (venue_id, checked_at) ranges for subject_id and masked_name:
        # carried (PostgreSQL's INCLUDE), they are read from the index alone.
        Index(
            "ix_access_records_venue_checked",
            "venue_id",
            "checked_at",
            "record_id",
            postgresql_include=["subject_id", "masked_name"],
        ),
        Index("ix_access_records_checked_at", "checked_at"),  # the retention purge
        # Contact tracing: one subject's scans between two times.
        Index("ix_access_records_subject_checked", "subject_id", "checked_at"),
    )

    record_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    venue_id: Mapped[str] = mapped_column(String(32))
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decision: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    masked_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    color: Mapped[str | None] = mapped_column(String(8), nullable=True)
    credential_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The credential's pseudonymous subject (health-records' subject id); null for a scan whose
    # credential did not check, and for records stored before it was kept.
    subject_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    scanner_kind: Mapped[str] = mapped_column(String(8))
    scanner_id: Mapped[str] = mapped_column(String(32))
