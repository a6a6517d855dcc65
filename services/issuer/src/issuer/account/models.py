from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from issuer.db import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    # HMAC of the phone number: found by number, never stored in clear.
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True)
    masked_phone: Mapped[str] = mapped_column(String(16))
    # The number sealed (AES-GCM, `issuer.crypto.phone_sealer`), to text the user an appeal's
    # outcome; written at sign-in, so null for a user not signed in since it was added.
    phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
