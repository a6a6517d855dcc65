"""Every table of venue-admin, for `Base.metadata` (Alembic's target)."""

from venue_admin.db import Base, OtpCode, OutboxEvent, SigningKey, SmsMessage
from venue_admin.venue.models import Member, Venue, VenueRule

__all__ = ["Base", "Member", "OtpCode", "OutboxEvent", "SigningKey", "SmsMessage", "Venue",
           "VenueRule"]
