"""Every contact-tracing request, kept for the audit trail with its answer (masked data only)."""

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from health_records.db import Base


class TracingRequest(Base):
    __tablename__ = "tracing_requests"
    __table_args__ = (
        # The audit list: newest first, keyset-paginated on (created_at, trace_id).
        Index("ix_tracing_requests_created", "created_at", "trace_id"),
    )

    trace_id: Mapped[str] = mapped_column(String(26), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The role whose key asked (the authority).
    role: Mapped[str] = mapped_column(String(32))
    case_masked_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    case_masked_id_number: Mapped[str] = mapped_column(String(18))
    visits: Mapped[int] = mapped_column(Integer)
    contacts: Mapped[int] = mapped_column(Integer)
    # Whether the request asked for colours to be applied (not only a preview).
    applied: Mapped[bool] = mapped_column(Boolean)
    # How many codes it changed.
    changed: Mapped[int] = mapped_column(Integer)
    # The answer as it was given (masked names and ID numbers, venues, times, colours): its
    # JSON bytes compressed with zlib (a city's trace answers tens of megabytes). Read only by
    # GET /v1/tracing/{trace_id}, not with the audit list.
    answer: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
