"""The venue rules on their own (no database, no bus): who may change what, the versions the
verifier orders changes by, and the events each change stages."""

from dataclasses import dataclass, field
from typing import Any

import pytest

from hc_common.clock import utcnow
from hc_common.errors import Forbidden, NotFound, Unprocessable
from hc_common.events.envelope import MEMBER_CHANGED, RULE_CHANGED, Envelope
from hc_common.ids import new_id
from hc_common.pagination import page_of
from venue_admin.db import OutboxEvent
from venue_admin.venue.events import member_payload, rule_payload
from venue_admin.venue.models import Member, Venue, VenueRule
from venue_admin.venue.schemas import Color, RuleIn
from venue_admin.venue.service import MAIN_ADMIN, SUB_ADMIN, VenueService

VENUE = new_id()
ADMIN = new_id()
STAFF = new_id()


@dataclass
class FakeSession:
    """What the service and `add_event` do with a session: add rows, flush, mark `info`."""

    added: list[Any] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, row: Any) -> None:
        self.added.append(row)

    async def flush(self) -> None:
        pass

    def staged(self, subject: str) -> list[dict[str, Any]]:
        return [
            Envelope.from_bytes(row.payload).data
            for row in self.added
            if isinstance(row, OutboxEvent) and row.subject == subject
        ]


@dataclass
class FakeVenues:
    """The venue repository, in memory."""

    venues: dict[str, Venue] = field(default_factory=dict)
    members: dict[tuple[str, str], Member] = field(default_factory=dict)
    rules: dict[str, VenueRule] = field(default_factory=dict)

    async def venue(self, venue_id: str) -> Venue | None:
        return self.venues.get(venue_id)

    async def member(self, venue_id: str, user_id: str) -> Member | None:
        return self.members.get((venue_id, user_id))

    async def rule(self, venue_id: str) -> VenueRule | None:
        return self.rules.get(venue_id)

    def add(self, row: Venue | Member) -> None:
        if isinstance(row, Member):
            self.members[(row.venue_id, row.user_id)] = row
        else:
            self.venues[row.id] = row

    # The conditional writes, as the database does them one at a time.
    async def add_member_if_absent(self, row: Member) -> Member | None:
        if (row.venue_id, row.user_id) in self.members:
            return None
        self.add(row)
        return row

    async def set_member_permissions(
        self, venue_id: str, user_id: str, role: str, permissions: list[str], at_least: int
    ) -> Member | None:
        row = self.members.get((venue_id, user_id))
        if row is None or row.role != role:
            return None
        row.permissions = permissions
        row.version = max(row.version + 1, at_least)
        return row

    async def remove_member(self, venue_id: str, user_id: str, role: str) -> int | None:
        row = self.members.get((venue_id, user_id))
        if row is None or row.role != role:
            return None
        del self.members[(venue_id, user_id)]
        return row.version

    async def replace_rule(
        self,
        venue_id: str,
        allowed_colors: list[str],
        max_nat_age_hours: int | None,
        min_vaccine_doses: int,
        updated_at: Any,
    ) -> VenueRule:
        rule = self.rules.setdefault(venue_id, VenueRule(venue_id=venue_id, version=0))
        rule.version += 1
        rule.allowed_colors = allowed_colors
        rule.max_nat_age_hours = max_nat_age_hours
        rule.min_vaccine_doses = min_vaccine_doses
        rule.updated_at = updated_at
        return rule


def member(user_id: str, role: str, version: int = 1) -> Member:
    return Member(
        venue_id=VENUE,
        user_id=user_id,
        masked_phone="138****0000",
        role=role,
        permissions=["reverse_scan"],
        added_at=utcnow(),
        version=version,
    )


@pytest.fixture
def venues() -> FakeVenues:
    repo = FakeVenues()
    repo.add(
        Venue(
            id=VENUE,
            name="南宁东站",
            category="train_station",
            address="青秀区凤岭北路",
            region_code="450103",
            created_by=ADMIN,
            created_at=utcnow(),
        )
    )
    repo.add(member(ADMIN, MAIN_ADMIN))
    repo.add(member(STAFF, SUB_ADMIN, version=1_000))
    return repo


@pytest.fixture
def session() -> FakeSession:
    return FakeSession()


@pytest.fixture
def service(session: FakeSession, venues: FakeVenues) -> VenueService:
    service = VenueService(session, otp=None, issuer=None)
    service.repo = venues
    return service


RULE = RuleIn(allowed_colors=[Color.green, Color.yellow], max_nat_age_hours=48, min_vaccine_doses=2)


async def test_each_rule_change_is_a_new_version_and_an_event(
    service: VenueService, session: FakeSession
) -> None:
    first = await service.set_rule(ADMIN, VENUE, RULE)
    second = await service.set_rule(
        ADMIN,
        VENUE,
        RuleIn(allowed_colors=[Color.green], max_nat_age_hours=None, min_vaccine_doses=0),
    )
    assert (first["version"], second["version"]) == (1, 2)
    assert session.staged(RULE_CHANGED) == [first, second]
    assert second == {
        "venue_id": VENUE,
        "allowed_colors": ["green"],
        "max_nat_age_hours": None,
        "min_vaccine_doses": 0,
        "version": 2,
    }
    assert await service.rule(STAFF, VENUE) == second  # members read it


async def test_only_the_main_admin_changes_anything(
    service: VenueService, session: FakeSession
) -> None:
    with pytest.raises(Forbidden):
        await service.set_rule(STAFF, VENUE, RULE)
    with pytest.raises(Forbidden):
        await service.set_permissions(STAFF, VENUE, STAFF, [])
    with pytest.raises(Forbidden):
        await service.remove_member(STAFF, VENUE, STAFF)
    with pytest.raises(Forbidden):  # not a member at all
        await service.rule(new_id(), VENUE)
    with pytest.raises(NotFound):
        await service.rule(ADMIN, new_id())
    assert session.added == []


async def test_the_main_admin_keeps_every_permission_and_stays(
    service: VenueService, session: FakeSession, venues: FakeVenues
) -> None:
    with pytest.raises(Unprocessable) as changed:
        await service.set_permissions(ADMIN, VENUE, ADMIN, [])
    assert changed.value.code == "cannot_change_main_admin"
    with pytest.raises(Unprocessable) as removed:
        await service.remove_member(ADMIN, VENUE, ADMIN)
    assert removed.value.code == "cannot_remove_main_admin"
    with pytest.raises(NotFound):
        await service.remove_member(ADMIN, VENUE, new_id())
    assert venues.members[(VENUE, ADMIN)].permissions == ["reverse_scan"]
    assert session.added == []


async def test_permission_changes_and_removal_outrank_what_came_before(
    service: VenueService, session: FakeSession, venues: FakeVenues
) -> None:
    changed = await service.set_permissions(ADMIN, VENUE, STAFF, ["reverse_scan", "reverse_scan"])
    assert changed.permissions == ["reverse_scan"]  # each permission once
    await service.remove_member(ADMIN, VENUE, STAFF)
    assert (VENUE, STAFF) not in venues.members
    events = session.staged(MEMBER_CHANGED)
    assert [(e["permissions"], e["removed"]) for e in events] == [
        (["reverse_scan"], False),
        ([], True),  # a removed member holds nothing
    ]
    assert 1_000 < events[0]["version"] < events[1]["version"]


@pytest.mark.parametrize("not_an_id", ["../scan-snapshot", "\x00", "a\tb", VENUE.upper(), ""])
async def test_an_id_not_of_our_format_is_404_before_any_query(
    service: VenueService, not_an_id: str
) -> None:
    class NoQueries:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"{name} queried with {not_an_id!r}")

    service.repo = NoQueries()  # type: ignore[assignment]
    for call in (
        service.rule(ADMIN, not_an_id),
        service.set_rule(ADMIN, not_an_id, RULE),
        service.members(ADMIN, not_an_id, 50, None),
        service.remove_member(ADMIN, not_an_id, STAFF),
    ):
        with pytest.raises(NotFound):
            await call


async def test_a_member_id_not_of_our_format_is_404(service: VenueService) -> None:
    for call in (
        service.remove_member(ADMIN, VENUE, "\x00"),
        service.set_permissions(ADMIN, VENUE, "../" + STAFF, []),
    ):
        with pytest.raises(NotFound):
            await call


def test_a_venue_without_a_rule_has_the_default_one_at_version_0() -> None:
    assert rule_payload(VENUE, None) == {
        "venue_id": VENUE,
        "allowed_colors": ["green"],
        "max_nat_age_hours": None,
        "min_vaccine_doses": 0,
        "version": 0,
    }


def test_a_removed_members_event_holds_no_permission() -> None:
    staff = member(STAFF, SUB_ADMIN, version=7)
    assert member_payload(staff, removed=True) == {
        "venue_id": VENUE,
        "user_id": STAFF,
        "role": SUB_ADMIN,
        "permissions": [],
        "removed": True,
        "version": 7,
    }
    assert member_payload(staff)["permissions"] == ["reverse_scan"]


@pytest.mark.parametrize(
    ("rows", "limit", "expected"),
    [
        ([], 2, ([], None)),
        (["a", "b"], 2, (["a", "b"], None)),  # exactly a page: no next one
        (["a", "b", "c"], 2, (["a", "b"], "b")),  # one more row read: the next starts after b
    ],
)
def test_a_page_has_a_cursor_only_when_more_rows_follow(
    rows: list[str], limit: int, expected: tuple[list[str], str | None]
) -> None:
    page = page_of(rows, limit, lambda row: row)
    assert (page.items, page.next_cursor) == expected
