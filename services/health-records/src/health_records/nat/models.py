from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from health_records.db import Base


class NatResult(Base):
    """One laboratory report; `report_id` makes a repeated push a no-op."""

    __tablename__ = "nat_results"

    report_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Not indexed: nothing reads these rows by person (migration 7c9d0e1f2a35).
    person_key: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(8))
    sample_time: Mapped[datetime] = mapped_column(UTCDateTime)
    report_time: Mapped[datetime] = mapped_column(UTCDateTime)
    institution: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
