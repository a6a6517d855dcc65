from datetime import datetime

from sqlalchemy import BigInteger, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from health_records.db import Base


class Person(Base):
    """One row a person; the status columns are the live status the verifier reads.

    On PostgreSQL the table keeps room on its pages (fillfactor 70, set by a migration): a
    status update then rewrites the row in place of the indexes (a heap-only update)."""

    __tablename__ = "persons"

    # HMAC of the ID number: found by number without keeping it in clear.
    person_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(26), unique=True)
    id_number_enc: Mapped[bytes] = mapped_column(LargeBinary)
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    # HMAC of the normalised name (NFKC, trimmed): a batch's names are compared by it.
    name_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    color: Mapped[str] = mapped_column(String(8), default="green")
    # The colour the authority set; the code shows red over it while the latest NAT is positive.
    authority_color: Mapped[str] = mapped_column(String(8), default="green")
    color_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    nat_result: Mapped[str | None] = mapped_column(String(8), nullable=True)
    nat_sample_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    nat_report_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    vaccine_doses: Mapped[int] = mapped_column(Integer, default=0)
    last_dose_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Grows with every change of the status; the verifier never applies an older one.
    version: Mapped[int] = mapped_column(BigInteger, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CodeChange(Base):
    """History of colours set by the authority."""

    __tablename__ = "code_changes"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    person_key: Mapped[str] = mapped_column(String(64), index=True)
    color: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
