"""What venue-admin consumes: the verifier's access records, in batches
(`verifier.access_record.batch.v1`) or one to an event (`verifier.access_record.created.v1`,
from verifiers of earlier versions), each stored once per record id."""

import logging

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hc_common.events.consumer import InvalidPayload
from hc_common.events.envelope import ACCESS_RECORD_BATCH, ACCESS_RECORD_CREATED, Envelope
from hc_common.events.schemas import AccessRecordBatch, AccessRecordCreated, parse_payload
from venue_admin.access import service

log = logging.getLogger("venue_admin.access")


async def store_access_records(
    sessionmaker: async_sessionmaker[AsyncSession], envelopes: list[Envelope]
) -> int:
    """Store the records of a batch of access-record events; returns how many rows were new.

    A batch event that does not fit its schema raises `InvalidPayload`: the consumer then
    stores the other events and sends that one, whole and unchanged, to the dead letters,
    from where it is replayed once the cause is fixed (dropping it would lose every record
    in it). A one-record event that does not fit is logged and dropped (its consumer
    validates it first and dead-letters it, so only a replay of an unreadable one gets
    here)."""
    records: list[AccessRecordCreated] = []
    for envelope in envelopes:
        if envelope.type == ACCESS_RECORD_BATCH:
            if envelope.payload_checked:  # by the consumer, as it decoded the event
                records.extend(envelope.data["records"])
                continue
            try:
                batch: AccessRecordBatch = parse_payload(ACCESS_RECORD_BATCH, envelope.data)
            except ValidationError:
                raise InvalidPayload(
                    f"payload does not fit the schema of {ACCESS_RECORD_BATCH}",
                    event_id=envelope.id,
                ) from None
            records.extend(batch["records"])
            continue
        if envelope.payload_checked:
            records.append(envelope.data)  # type: ignore[arg-type]  # checked against its schema
            continue
        try:
            records.append(parse_payload(ACCESS_RECORD_CREATED, envelope.data))
        except ValidationError:
            # Only the event id: the payload may hold a masked name.
            log.error("malformed access record dropped", extra={"event_id": envelope.id})
    return await service.store(sessionmaker, records)
