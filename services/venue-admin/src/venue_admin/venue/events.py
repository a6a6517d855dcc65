"""What the venue package publishes for the verifier: venue, member and rule changes.

The payload builders also give the shape of the verifier's internal reads (scan context,
snapshot), so that what it reads and what it hears are the same."""

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.events import envelope as subjects
from hc_common.events.outbox import add_event
from hc_common.events.schemas import Color, MemberChanged, RuleChanged, VenueChanged
from venue_admin.db import OutboxEvent
from venue_admin.venue.models import Member, Venue, VenueRule


def member_payload(
    member: Member, *, removed: bool = False, version: int | None = None
) -> MemberChanged:
    """The member's event; a removal carries the `version` given (the row is gone)."""
    return MemberChanged(
        venue_id=member.venue_id,
        user_id=member.user_id,
        role=member.role,
        permissions=[] if removed else list(member.permissions),
        removed=removed,
        version=member.version if version is None else version,
    )


def rule_payload(venue_id: str, rule: VenueRule | None) -> RuleChanged:
    """The venue's rule; where its main admin has set none, the default one (green only, no
    NAT or vaccine requirement) with version 0, which any rule set later outranks."""
    if rule is None:
        return RuleChanged(
            venue_id=venue_id,
            allowed_colors=["green"],
            max_nat_age_hours=None,
            min_vaccine_doses=0,
            version=0,
        )
    return RuleChanged(
        venue_id=venue_id,
        # The column holds only the contract's colours: RuleIn admits no other.
        allowed_colors=cast(list[Color], list(rule.allowed_colors)),
        max_nat_age_hours=rule.max_nat_age_hours,
        min_vaccine_doses=rule.min_vaccine_doses,
        version=rule.version,
    )


def venue_created(session: AsyncSession, venue: Venue) -> None:
    add_event(
        session,
        OutboxEvent,
        subjects.VENUE_CHANGED,
        VenueChanged(venue_id=venue.id, deleted=False),
    )


def member_changed(
    session: AsyncSession, member: Member, *, removed: bool = False, version: int | None = None
) -> None:
    add_event(
        session,
        OutboxEvent,
        subjects.MEMBER_CHANGED,
        member_payload(member, removed=removed, version=version),
    )


def rule_changed(session: AsyncSession, rule: VenueRule) -> RuleChanged:
    payload = rule_payload(rule.venue_id, rule)
    add_event(session, OutboxEvent, subjects.RULE_CHANGED, payload)
    return payload
