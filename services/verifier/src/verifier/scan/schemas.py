"""The scan API's bodies; the answers are built as dicts on the hot path (router.py) and
these models document their shape."""

from typing import Literal

from pydantic import BaseModel, Field

from hc_common.hygiene import ID_PATTERN
from hc_common.schemas import Timestamp

QR_MAX_LENGTH = 2048
ID_MAX_LENGTH = 64


class VerifyRequest(BaseModel):
    qr: str = Field(
        min_length=1, max_length=QR_MAX_LENGTH, description="The scanned text, `GXHC1:...`"
    )
    # The id format is checked by the scan (a venue_id not of it is an unknown venue, 404),
    # not here, so that the answer is the contract's 404 and not a 422; the pattern is stated
    # for clients.
    venue_id: str | None = Field(
        None,
        max_length=ID_MAX_LENGTH,
        description="Required with a user token; with a device token optional, and if given it "
        "must be the device's venue. Not of the system's id format: 404, an unknown venue.",
        json_schema_extra={"pattern": ID_PATTERN},
    )


class GateVerifyRequest(BaseModel):
    qr: str = Field(min_length=1, max_length=QR_MAX_LENGTH)


class HolderOut(BaseModel):
    masked_name: str
    masked_id_number: str
    age: int


class NatOut(BaseModel):
    result: str
    sample_time: Timestamp
    hours_since_sample: int


class VaccinationOut(BaseModel):
    doses: int
    last_dose_at: Timestamp | None


class HealthOut(BaseModel):
    color: str
    nat: NatOut | None
    vaccination: VaccinationOut | None


class CredentialOut(BaseModel):
    credential_id: str
    version: int
    expires_at: Timestamp


Decision = Literal["pass", "deny", "manual_check"]


class VerifyResponse(BaseModel):
    decision: Decision
    reasons: list[str]
    holder: HolderOut | None
    health: HealthOut | None
    credential: CredentialOut | None
    record_id: str
    checked_at: Timestamp
    stale: bool
    lines: list[str] = Field(
        description="What a gate's screen shows for this scan, top to bottom (the same as "
        "`POST /v1/gate/verify`'s `lines`): the masked name first when the credential "
        "checked, the decision in words last when it is not a pass. Chinese by default, "
        "English with `Accept-Language: en`."
    )


class GateResponse(BaseModel):
    open: bool
    decision: Decision
    color: str | None
    lines: list[str]
    record_id: str
