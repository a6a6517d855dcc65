"""What the verifier needs to check scanners: one venue's scan context, or every venue's
members, devices and rules page by page for a verifier starting cold."""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.errors import NotFound
from hc_common.hygiene import is_id, require_id
from venue_admin.device.events import device_payload
from venue_admin.device.repository import DeviceRepository
from venue_admin.internal.schemas import ScanContext, ScanSnapshot
from venue_admin.venue.events import member_payload, rule_payload
from venue_admin.venue.repository import VenueRepository
from venue_admin.venue.service import id_cursor


@dataclass
class ScanSetupService:
    session: AsyncSession
    venues: VenueRepository = field(init=False)
    devices: DeviceRepository = field(init=False)

    def __post_init__(self) -> None:
        self.venues = VenueRepository(self.session)
        self.devices = DeviceRepository(self.session)

    async def scan_context(
        self, venue_id: str, user_id: str | None, device_id: str | None
    ) -> ScanContext:
        """The venue's rule, and the member (`user_id`) or the device (`device_id`, deleted
        ones included) if it is one of this venue's; 404 for an unknown venue. A user or
        device id not of our format names no one (null)."""
        require_id(venue_id)
        if await self.venues.venue(venue_id) is None:
            raise NotFound()
        member = await self.venues.member(venue_id, user_id) if user_id and is_id(user_id) else None
        device = await self.devices.get(device_id) if device_id and is_id(device_id) else None
        if device is not None and device.venue_id != venue_id:
            device = None
        return ScanContext(
            venue_id=venue_id,
            member=member_payload(member) if member else None,
            device=device_payload(device) if device else None,
            rule=rule_payload(venue_id, await self.venues.rule(venue_id)),
        )

    async def snapshot(self, limit: int, cursor: str | None) -> ScanSnapshot:
        """Up to `limit` venues after `cursor` (by id), with all their members, devices and
        rules (the default rule where none was set)."""
        venue_ids = await self.venues.venue_ids(limit + 1, id_cursor(cursor))
        next_cursor = venue_ids[limit - 1] if len(venue_ids) > limit else None
        venue_ids = venue_ids[:limit]
        members = await self.venues.members_of_venues(venue_ids)
        rules = await self.venues.rules_of_venues(venue_ids)
        devices = await self.devices.of_venues(venue_ids)
        return ScanSnapshot(
            members=[member_payload(m) for m in members],
            devices=[device_payload(d) for d in devices],
            rules=[rule_payload(v, rules.get(v)) for v in venue_ids],
            next_cursor=next_cursor,
        )
