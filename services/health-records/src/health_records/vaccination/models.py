from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from health_records.db import Base


class VaccinationRecord(Base):
    """One dose given; `record_id` makes a repeated push a no-op."""

    __tablename__ = "vaccinations"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Not indexed: nothing reads these rows by person (migration 7c9d0e1f2a35).
    person_key: Mapped[str] = mapped_column(String(64))
    vaccine: Mapped[str] = mapped_column(String(100))
    manufacturer: Mapped[str] = mapped_column(String(100))
    dose_number: Mapped[int] = mapped_column(Integer)
    administered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    site: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
