"""What the device package publishes for the verifier: a gate registered or deleted.

`device_payload` is also the shape of a device in the verifier's internal reads."""

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.events import envelope as subjects
from hc_common.events.outbox import add_event
from hc_common.events.schemas import DeviceChanged
from venue_admin.db import OutboxEvent
from venue_admin.device.models import Device


def device_payload(device: Device) -> DeviceChanged:
    return DeviceChanged(
        device_id=device.id,
        venue_id=device.venue_id,
        active=bool(device.active),
        version=device.version,
    )


def device_changed(session: AsyncSession, device: Device) -> None:
    add_event(session, OutboxEvent, subjects.DEVICE_CHANGED, device_payload(device))
