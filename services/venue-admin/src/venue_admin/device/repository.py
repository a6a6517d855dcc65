"""Every query on gate devices; never commits."""

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from venue_admin.device.models import Device


class DeviceRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, device_id: str) -> Device | None:
        return await self.session.get(Device, device_id)

    async def active_of_venue(self, venue_id: str, limit: int, after: str | None) -> list[Device]:
        query = select(Device).where(Device.venue_id == venue_id, Device.active.is_(True))
        if after:
            query = query.where(Device.id > after)
        return list((await self.session.scalars(query.order_by(Device.id).limit(limit))).all())

    async def of_venues(self, venue_ids: list[str]) -> list[Device]:
        if not venue_ids:
            return []
        query = select(Device).where(Device.venue_id.in_(venue_ids)).order_by(Device.id)
        return list((await self.session.scalars(query)).all())

    def add(self, device: Device) -> None:
        self.session.add(device)

    async def deactivate(self, device_id: str, venue_id: str, at: datetime) -> Device | None:
        """Deactivate the venue's device if it is still active, in one conditional statement:
        of two deletions at once one gets the row, the other None."""
        statement = (
            update(Device)
            .where(Device.id == device_id, Device.venue_id == venue_id, Device.active.is_(True))
            .values(active=False, version=Device.version + 1, deleted_at=at)
            .returning(Device)
        )
        return (
            await self.session.scalars(statement, execution_options={"populate_existing": True})
        ).one_or_none()

    async def names_of_venue(self, venue_id: str, device_ids: list[str]) -> dict[str, str]:
        """The names of those of the venue's devices, removed ones included (the row stays)."""
        if not device_ids:
            return {}
        query = select(Device.id, Device.name).where(
            Device.venue_id == venue_id, Device.id.in_(device_ids)
        )
        return {device_id: name for device_id, name in (await self.session.execute(query)).all()}
