"""The envelope every event travels in, and the streams and subjects of the system.

Subjects are `<service>.<entity>.<event>.v1`; the envelope's id is sent as `Nats-Msg-Id`,
so JetStream drops a duplicate publish within its window, and consumers are idempotent.
`encode_envelope` is the one writer of the envelope; `Envelope` reads it back.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field, PrivateAttr

from hc_common.clock import utcnow
from hc_common.ids import new_id

# Times as the contract writes them (RFC 3339, UTC with `Z`); orjson also writes the
# datetimes and dates inside `data`, so producers hand over model values as they are.
_JSON_OPTIONS = orjson.OPT_UTC_Z


def encode_data(data: Mapping[str, Any]) -> bytes:
    """An event's `data` alone, written as `encode_envelope` writes it inside an envelope (a
    journal keeps records this way and wraps many in one envelope later)."""
    return orjson.dumps(data, option=_JSON_OPTIONS)


def encode_envelope(
    subject: str,
    data: Mapping[str, Any],
    *,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> tuple[str, datetime, bytes]:
    """The envelope `{id, type, occurred_at, data}` of one event, serialised: returns its id,
    its time and its bytes. Cheap enough for the scan path (one orjson call)."""
    event_id = event_id or new_id()
    occurred_at = occurred_at or utcnow()
    payload = orjson.dumps(
        {"id": event_id, "type": subject, "occurred_at": occurred_at, "data": data},
        option=_JSON_OPTIONS,
    )
    return event_id, occurred_at, payload


class Envelope(BaseModel):
    """An event as received (or made by a test: `to_bytes` writes it with `encode_envelope`).

    `payload_checked`: `data` was validated against its subject's schema when the event was
    decoded (hc_common.events.consumer.decode_event), and is the payload as that schema reads
    it (times as datetimes): a handler need not validate it again."""

    id: str = Field(default_factory=new_id)
    type: str
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any]
    _payload_checked: bool = PrivateAttr(default=False)

    @property
    def payload_checked(self) -> bool:
        return self._payload_checked

    @classmethod
    def checked(cls, id: str, type: str, occurred_at: datetime, data: Any) -> "Envelope":
        """An envelope whose parts were validated already, its payload against its schema."""
        envelope = cls.model_construct(id=id, type=type, occurred_at=occurred_at, data=data)
        envelope._payload_checked = True
        return envelope

    def to_bytes(self) -> bytes:
        return encode_envelope(
            self.type, self.data, event_id=self.id, occurred_at=self.occurred_at
        )[2]

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return cls.model_validate_json(raw)


# Stream name -> the subjects it holds (their limits: hc_common.events.streams; who may
# publish and read what: hc_common.events.accounts).
STREAMS: dict[str, list[str]] = {
    "ISSUER": ["issuer.>"],
    "VENUES": ["venue_admin.>"],
    "HEALTH": ["health_records.>"],
    "ACCESS": ["verifier.access_record.>"],
    "DEAD_LETTERS": ["dead_letter.>"],
}

CREDENTIAL_ISSUED = "issuer.credential.issued.v1"
CREDENTIAL_REVOKED = "issuer.credential.revoked.v1"
MEMBER_CHANGED = "venue_admin.member.changed.v1"
DEVICE_CHANGED = "venue_admin.device.changed.v1"
RULE_CHANGED = "venue_admin.rule.changed.v1"
VENUE_CHANGED = "venue_admin.venue.changed.v1"
STATUS_CHANGED = "health_records.status.changed.v1"
ACCESS_RECORD_CREATED = "verifier.access_record.created.v1"  # one record (earlier verifiers)
ACCESS_RECORD_BATCH = "verifier.access_record.batch.v1"  # up to a few hundred records


def dead_letter_subject(service: str, durable: str) -> str:
    """Where a durable consumer of `service` puts what it gave up on (stream DEAD_LETTERS)."""
    return f"dead_letter.{service.replace('-', '_')}.{durable}"
