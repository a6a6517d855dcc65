"""Venues, their members (main admin, sub-admins) and their entry rule, as tables."""

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.db import UTCDateTime
from venue_admin.db import Base


class Venue(Base):
    __tablename__ = "venues"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(Text)
    region_code: Mapped[str] = mapped_column(String(6))
    created_by: Mapped[str] = mapped_column(String(26))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Member(Base):
    __tablename__ = "members"

    venue_id: Mapped[str] = mapped_column(ForeignKey("venues.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(26), primary_key=True, index=True)
    masked_phone: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))  # main_admin | sub_admin
    permissions: Mapped[list[str]] = mapped_column(JSON)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Microseconds-based (see venue.service.next_member_version): 64 bits.
    version: Mapped[int] = mapped_column(BigInteger, default=1)


class VenueRule(Base):
    __tablename__ = "venue_rules"

    venue_id: Mapped[str] = mapped_column(ForeignKey("venues.id"), primary_key=True)
    allowed_colors: Mapped[list[str]] = mapped_column(JSON)
    max_nat_age_hours: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_vaccine_doses: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
