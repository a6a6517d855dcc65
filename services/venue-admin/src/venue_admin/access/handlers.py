"""What venue-admin consumes: the verifier's access records (`verifier.access_record.created.v1`),
each stored once per record id."""

import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hc_common.events.envelope import ACCESS_RECORD_CREATED, Envelope
from hc_common.events.schemas import AccessRecordCreated, parse_payload
from venue_admin.access import service

log = logging.getLogger("venue_admin.access")


async def store_access_records(
    sessionmaker: async_sessionmaker[AsyncSession], envelopes: list[Envelope]
) -> int:
    """Store a batch of access-record events; a payload that does not fit the schema is
    logged and dropped (it would fail again on every redelivery), the rest are stored.
    Returns how many rows were new."""
    records: list[AccessRecordCreated] = []
    for envelope in envelopes:
        try:
            records.append(parse_payload(ACCESS_RECORD_CREATED, envelope.data))
        except ValidationError:
            # Only the event id: the payload may hold a masked name.
            log.error("malformed access record dropped", extra={"event_id": envelope.id})
    return await service.store(sessionmaker, records)
