from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from issuer.db import Base


class FaceCheckUse(Base):
    """Face check tokens already spent (single use)."""

    __tablename__ = "face_check_uses"

    token_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
