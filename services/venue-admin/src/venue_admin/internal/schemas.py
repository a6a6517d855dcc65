"""What the verifier reads over HTTP: its entries are the event payloads it also hears."""

from typing_extensions import TypedDict  # the one Pydantic validates on Python 3.11

from hc_common.events.schemas import DeviceChanged, MemberChanged, RuleChanged


class ScanContext(TypedDict):
    venue_id: str
    member: MemberChanged | None
    device: DeviceChanged | None
    rule: RuleChanged


class ScanSnapshot(TypedDict):
    members: list[MemberChanged]
    devices: list[DeviceChanged]
    rules: list[RuleChanged]
    next_cursor: str | None
