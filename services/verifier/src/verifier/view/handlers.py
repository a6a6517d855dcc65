"""What the view makes of the events it follows, and of the owners' internal reads, which
have the same shapes (hc_common.events.schemas): each payload validated, then applied by
version. Not the scan path: a scan only reads the view (a miss validates one answer)."""

from collections.abc import Callable
from typing import Any

from hc_common.clock import to_utc
from hc_common.events import envelope as subjects
from hc_common.events.envelope import Envelope
from hc_common.events.schemas import (
    CredentialChanged,
    DeviceChanged,
    MemberChanged,
    RuleChanged,
    StatusChanged,
    VenueChanged,
    parse_payload,
)
from verifier.scan.decision import HealthStatus, Rule
from verifier.view.state import CredentialInfo, Device, Member, ScanView


# --- payload -> what the view holds ------------------------------------------------------
def credential_info(payload: CredentialChanged) -> CredentialInfo:
    return CredentialInfo(
        credential_id=payload["credential_id"],
        subject_id=payload["subject_id"],
        version=payload["version"],
        status=payload["status"],
        masked_name=payload["masked_name"],
        masked_id_number=payload["masked_id_number"],
        birth_date=payload["birth_date"],
        expires_at=to_utc(payload["expires_at"]),
    )


def health_status(payload: StatusChanged) -> HealthStatus:
    nat, vaccination = payload["nat"], payload["vaccination"]
    last_dose_at = vaccination["last_dose_at"] if vaccination else None
    return HealthStatus(
        subject_id=payload["subject_id"],
        color=payload["color"],
        nat_result=nat["result"] if nat else None,
        nat_sample_time=to_utc(nat["sample_time"]) if nat else None,
        vaccine_doses=vaccination["doses"] if vaccination else 0,
        last_dose_at=to_utc(last_dose_at) if last_dose_at else None,
        version=payload["version"],
    )


def member(payload: MemberChanged) -> Member:
    return Member(
        venue_id=payload["venue_id"],
        user_id=payload["user_id"],
        permissions=frozenset(payload["permissions"]),
        removed=payload["removed"],
        version=payload["version"],
    )


def device(payload: DeviceChanged) -> Device:
    return Device(
        device_id=payload["device_id"],
        venue_id=payload["venue_id"],
        active=payload["active"],
        version=payload["version"],
    )


def rule(payload: RuleChanged) -> Rule:
    return Rule(
        allowed_colors=frozenset(payload["allowed_colors"] or ["green"]),
        max_nat_age_hours=payload["max_nat_age_hours"],
        min_vaccine_doses=payload["min_vaccine_doses"],
        version=payload["version"],
    )


# --- validated reads (raise pydantic.ValidationError) -----------------------------------------
def parse_credential(data: Any) -> CredentialInfo:
    """The issuer's `/internal/v1/credentials/{id}` answer or credential event data."""
    payload: CredentialChanged = parse_payload(subjects.CREDENTIAL_ISSUED, data)
    return credential_info(payload)


def parse_status(data: Any) -> HealthStatus:
    """health-records' status (an internal answer or status event data)."""
    payload: StatusChanged = parse_payload(subjects.STATUS_CHANGED, data)
    return health_status(payload)


def apply_member(view: ScanView, data: Any) -> None:
    view.apply_member(member(parse_payload(subjects.MEMBER_CHANGED, data)))


def apply_device(view: ScanView, data: Any) -> None:
    view.apply_device(device(parse_payload(subjects.DEVICE_CHANGED, data)))


def apply_rule(view: ScanView, data: Any) -> None:
    payload: RuleChanged = parse_payload(subjects.RULE_CHANGED, data)
    view.apply_rule(payload["venue_id"], rule(payload))


def apply_venue(view: ScanView, data: Any) -> None:
    payload: VenueChanged = parse_payload(subjects.VENUE_CHANGED, data)
    view.apply_venue(payload["venue_id"], deleted=payload["deleted"])


def apply_credential(view: ScanView, data: Any) -> None:
    view.apply_credential(parse_credential(data))


def update_status(view: ScanView, data: Any) -> None:
    """A status event updates a status the view holds; it inserts none (ScanView.update_status:
    the cache holds the people being scanned, not everyone tested)."""
    view.update_status(parse_status(data))


# --- events --------------------------------------------------------------------------------
HANDLERS: dict[str, Callable[[ScanView, Any], None]] = {
    subjects.CREDENTIAL_ISSUED: apply_credential,
    subjects.CREDENTIAL_REVOKED: apply_credential,
    subjects.MEMBER_CHANGED: apply_member,
    subjects.DEVICE_CHANGED: apply_device,
    subjects.RULE_CHANGED: apply_rule,
    subjects.VENUE_CHANGED: apply_venue,
    subjects.STATUS_CHANGED: update_status,
}


def apply_event(view: ScanView, envelope: Envelope) -> None:
    """Apply one followed event; a subject the view does not keep is ignored."""
    handler = HANDLERS.get(envelope.type)
    if handler is not None:
        handler(view, envelope.data)
