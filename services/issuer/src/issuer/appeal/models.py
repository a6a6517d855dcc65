from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from issuer.db import Base


class Appeal(Base):
    __tablename__ = "appeals"
    __table_args__ = (
        Index("ix_appeals_user_id_id", "user_id", "id"),
        # The review queue: a status filter read in id (filing) order.
        Index("ix_appeals_status_id", "status", "id"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(26))
    category: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    credential_id: Mapped[str | None] = mapped_column(String(26), nullable=True)
    # open | in_review | resolved | rejected; changed only by one conditional UPDATE
    # (`AppealRepository.move`), so that a closed appeal stays closed under any race.
    status: Mapped[str] = mapped_column(String(16))
    # The staff's answer, which the applicant reads; required to close.
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
