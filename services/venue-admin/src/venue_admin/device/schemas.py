"""The device API's bodies: registration, the list, device tokens."""

from pydantic import BaseModel, Field

from hc_common.hygiene import EntityId, Text
from hc_common.schemas import Timestamp


class DeviceCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200, examples=["北门1号闸机"])
    manufacturer: Text = Field("", max_length=200)
    model: Text = Field("", max_length=200)


class DeviceCreated(BaseModel):
    device_id: str
    device_secret: str = Field(description="Shown this once; only a keyed hash is kept")


class DeviceOut(BaseModel):
    device_id: str
    name: str
    manufacturer: str
    model: str
    created_at: Timestamp


class DeviceList(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None = None


class DeviceTokenRequest(BaseModel):
    # Not of the system's id format: 422 `invalid_id` (an id of it that names no device: 401).
    device_id: EntityId
    device_secret: Text = Field(min_length=1, max_length=200)


class DeviceToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
