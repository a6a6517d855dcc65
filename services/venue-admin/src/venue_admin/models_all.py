"""Every table of venue-admin, for `Base.metadata` (Alembic's target)."""

from venue_admin.access.models import AccessRecord
from venue_admin.db import Base, OtpCode, OutboxEvent, SigningKey, SmsMessage
from venue_admin.device.models import Device
from venue_admin.venue.models import Member, Venue, VenueRule

__all__ = [
    "AccessRecord",
    "Base",
    "Device",
    "Member",
    "OtpCode",
    "OutboxEvent",
    "SigningKey",
    "SmsMessage",
    "Venue",
    "VenueRule",
]
