from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field

from hc_common.hygiene import Text
from hc_common.idnumber import IdNumberField
from hc_common.schemas import Timestamp

# A person's name as written on their ID card: one line, no control characters.
Name = Annotated[Text, Field(min_length=1, max_length=50)]


class Relationship(StrEnum):
    parent = "parent"
    grandparent = "grandparent"
    child = "child"
    grandchild = "grandchild"
    spouse = "spouse"
    sibling = "sibling"
    other = "other"


class CredentialCreate(BaseModel):
    name: Name
    id_number: IdNumberField
    relationship: Relationship
    photo: str = Field(
        description="Base64 JPEG or PNG (a `data:` URL too), at most 2 MiB decoded and 4,096 "
        "pixels on either side"
    )
    face_check_token: Text | None = Field(
        None,
        max_length=4096,
        description="From the face-verification provider; missing -> 403 face_check_failed",
    )


class Holder(BaseModel):
    masked_name: str
    masked_id_number: str
    age: int
    relationship: Relationship


class CredentialOut(BaseModel):
    credential_id: str
    status: str = Field(description="active | revoked | expired")
    holder: Holder
    issued_at: Timestamp
    expires_at: Timestamp
    qr: str
    version: int


class CredentialList(BaseModel):
    items: list[CredentialOut]
    next_cursor: str | None = None


class FaceCheckRequest(BaseModel):
    name: Name
    id_number: IdNumberField


class FaceCheckToken(BaseModel):
    face_check_token: str
