"""The venue API's bodies: venues, members, permissions and the entry rule."""

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StrictInt, field_validator
from pydantic_core import PydanticCustomError

from hc_common.hygiene import Text
from hc_common.idnumber import is_province_code
from hc_common.phone import Phone
from hc_common.schemas import Timestamp


class Category(StrEnum):
    train_station = "train_station"
    bus_station = "bus_station"
    metro = "metro"
    airport = "airport"
    passenger_terminal = "passenger_terminal"
    cinema = "cinema"
    theatre = "theatre"
    art_gallery = "art_gallery"
    entertainment = "entertainment"
    internet_cafe = "internet_cafe"
    guesthouse = "guesthouse"
    hotel = "hotel"
    supermarket = "supermarket"
    market = "market"
    shopping_mall = "shopping_mall"
    restaurant = "restaurant"
    medical = "medical"
    scenic_area = "scenic_area"
    highway_service_area = "highway_service_area"
    traffic_checkpoint = "traffic_checkpoint"
    residential_community = "residential_community"
    office_building = "office_building"
    other = "other"


def _region_code(value: str) -> str:
    if len(value) != 6 or not value.isascii() or not value.isdigit() or not is_province_code(value):
        raise PydanticCustomError(
            "invalid_region_code", "a 6-digit GB/T 2260 code of a province-level division"
        )
    return value


RegionCode = Annotated[str, AfterValidator(_region_code)]


class Permission(StrEnum):
    reverse_scan = "reverse_scan"


class Color(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class VenueCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    category: Category
    address: Text = Field(min_length=1, max_length=500)
    region_code: RegionCode


class VenueOut(BaseModel):
    venue_id: str
    name: str
    category: Category
    address: str
    region_code: str
    created_at: Timestamp
    role: str | None = Field(None, description="The caller's role at the venue")


class VenueList(BaseModel):
    items: list[VenueOut]
    next_cursor: str | None = None


class SubAdminCodeRequest(BaseModel):
    phone: Phone


class SubAdminCreate(BaseModel):
    phone: Phone
    code: Text = Field(min_length=1, max_length=12)


class MemberOut(BaseModel):
    user_id: str
    masked_phone: str
    role: str
    permissions: list[Permission]
    added_at: Timestamp


class MemberList(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None = None


class PermissionsUpdate(BaseModel):
    permissions: list[Permission]


class RuleIn(BaseModel):
    allowed_colors: list[Color] = Field(min_length=1)
    # Strict: JSON `true` is not 1, nor "48" 48.
    max_nat_age_hours: StrictInt | None = Field(ge=1, le=24 * 365)
    min_vaccine_doses: StrictInt = Field(ge=0, le=10)

    @field_validator("allowed_colors")
    @classmethod
    def _green_allowed(cls, value: list[Color]) -> list[Color]:
        if Color.green not in value:
            raise PydanticCustomError("green_required", "allowed_colors must include green")
        return list(dict.fromkeys(value))


class RuleOut(RuleIn):
    pass
