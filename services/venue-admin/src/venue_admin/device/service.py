"""The rules of gate devices: the main admin registers and deletes them; a device trades its
id and secret for a short-lived EdDSA token; every change is an event for the verifier."""

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.auth.keys import KeyRing
from hc_common.auth.tokens import AUDIENCE, sign
from hc_common.clock import utcnow
from hc_common.crypto import keyed_hash
from hc_common.errors import NotFound, Unauthorized
from hc_common.hygiene import require_id
from hc_common.ids import new_id
from hc_common.pagination import Page, page_of
from venue_admin.device import events
from venue_admin.device.models import Device
from venue_admin.device.repository import DeviceRepository
from venue_admin.device.schemas import DeviceCreate
from venue_admin.venue.service import VenueService, id_cursor

TOKEN_ISSUER = "hc-venue-admin"
PURPOSE = "device"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


@dataclass
class DeviceService:
    session: AsyncSession
    pepper: bytes
    venues: VenueService
    repo: DeviceRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = DeviceRepository(self.session)

    def _hash(self, device_id: str, secret: str) -> str:
        return keyed_hash(self.pepper, f"device\x1f{device_id}\x1f{secret}")

    async def register(self, user_id: str, venue_id: str, body: DeviceCreate) -> tuple[Device, str]:
        """A new device and its secret (main admin only)."""
        await self.venues.require_main_admin(venue_id, user_id)
        device_id = new_id()
        secret = secrets.token_urlsafe(32)
        device = Device(
            id=device_id,
            venue_id=venue_id,
            name=body.name,
            manufacturer=body.manufacturer,
            model=body.model,
            secret_hash=self._hash(device_id, secret),
            active=True,
            version=1,
            created_at=utcnow(),
            deleted_at=None,
        )
        self.repo.add(device)
        events.device_changed(self.session, device)
        await self.session.flush()
        return device, secret

    async def active_of_venue(
        self, user_id: str, venue_id: str, limit: int, cursor: str | None
    ) -> Page[Device]:
        """The venue's devices not deleted, by id (members only)."""
        await self.venues.venue_for_member(venue_id, user_id)
        rows = await self.repo.active_of_venue(venue_id, limit + 1, id_cursor(cursor))
        return page_of(rows, limit, lambda device: device.id)

    async def delete(self, user_id: str, venue_id: str, device_id: str) -> None:
        """Deactivate the device (main admin only): it gets no more tokens, and the verifier
        refuses the ones it holds once the event reaches it. An unknown or already deleted
        device is 404; of deletions at once, one deletes and the others get that 404."""
        await self.venues.require_main_admin(venue_id, user_id)
        require_id(device_id)
        device = await self.repo.deactivate(device_id, venue_id, utcnow())
        if device is None:
            raise NotFound(detail="闸机不存在", detail_en="No such device")
        events.device_changed(self.session, device)

    async def token(self, ring: KeyRing, device_id: str, secret: str, ttl: int) -> str:
        device = await self.repo.get(device_id)
        # Hash even for an unknown id, so the answer takes as long either way.
        expected = device.secret_hash if device is not None else self._hash("", "")
        given = self._hash(device_id, secret)
        if device is None or not device.active or not hmac.compare_digest(expected, given):
            raise InvalidCredentials(
                detail="闸机编号或密钥错误", detail_en="Wrong device id or secret"
            )
        now = utcnow()
        claims = {
            "iss": TOKEN_ISSUER,
            "aud": AUDIENCE,
            "sub": device.id,
            "venue_id": device.venue_id,
            "typ": "device",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        }
        return sign(ring, PURPOSE, claims)
