from datetime import date, datetime
from typing import Literal

from sqlalchemy import Date, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from issuer.db import Base

# What is stored; `expired` is derived from `expires_at` when a credential is shown.
StoredStatus = Literal["active", "revoked"]


class Credential(Base):
    __tablename__ = "credentials"
    __table_args__ = (
        Index("ix_credentials_person_status", "person_key", "status"),
        # One active credential per person, however applications and reissues race: the
        # database refuses the second (the loser answers 409, never 500).
        Index(
            "uq_credentials_one_active_per_person",
            "person_key",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(26), index=True)
    # HMAC of the holder's ID number: one active credential per person.
    person_key: Mapped[str] = mapped_column(String(64))
    # The pseudonymous subject health-records knows the holder by.
    subject_id: Mapped[str] = mapped_column(String(26))
    masked_name: Mapped[str] = mapped_column(String(64))
    masked_id_number: Mapped[str] = mapped_column(String(18))
    birth_date: Mapped[date] = mapped_column(Date)
    relationship: Mapped[str] = mapped_column(String(16))
    photo: Mapped[bytes] = mapped_column(LargeBinary)
    photo_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[StoredStatus] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    qr: Mapped[str] = mapped_column(Text)
