"""The envelope every event travels in, and the streams and subjects of the system.

Subjects are `<service>.<entity>.<event>.v1`; the envelope's id is sent as `Nats-Msg-Id`,
so JetStream drops a duplicate publish within its window, and consumers are idempotent.
"""

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, Field

from hc_common.clock import utcnow
from hc_common.ids import new_id


class Envelope(BaseModel):
    id: str = Field(default_factory=new_id)
    type: str
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Envelope":
        return cls.model_validate_json(raw)


# Stream name -> the subjects it holds. Each owning service creates its own stream at start.
STREAMS: dict[str, list[str]] = {
    "ISSUER": ["issuer.>"],
    "VENUES": ["venue_admin.>"],
    "HEALTH": ["health_records.>"],
    "ACCESS": ["verifier.access_record.>"],
}

CREDENTIAL_ISSUED = "issuer.credential.issued.v1"
CREDENTIAL_REVOKED = "issuer.credential.revoked.v1"
MEMBER_CHANGED = "venue_admin.member.changed.v1"
DEVICE_CHANGED = "venue_admin.device.changed.v1"
RULE_CHANGED = "venue_admin.rule.changed.v1"
VENUE_CHANGED = "venue_admin.venue.changed.v1"
STATUS_CHANGED = "health_records.status.changed.v1"
ACCESS_RECORD_CREATED = "verifier.access_record.created.v1"
