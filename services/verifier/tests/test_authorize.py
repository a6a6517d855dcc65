"""Who may scan where (`ScanService.scanner` and `authorize`): a member holding reverse_scan
at the venue, or a gate device of the venue; everyone else is refused with the contract's
status. Once venue-admin's snapshot is loaded the view answers alone."""

from collections.abc import Callable

import pytest

from hc_common.errors import DomainError
from verifier.scan.decision import Rule
from verifier.view.state import Device

from .conftest import Upstreams, Verifier, an_id, device, member, rule

VENUE, OTHER = an_id("venue-1"), an_id("venue-2")
STAFF, STRANGER = an_id("user-staff"), an_id("user-stranger")
GATE = an_id("device-gate")


@pytest.fixture
def with_snapshot(upstreams: Upstreams) -> Upstreams:
    """venue-admin holding VENUE (a staff member with reverse_scan, a cashier without, a
    removed member, a gate, a rule) and OTHER."""
    upstreams.snapshot_pages = [
        {
            "members": [
                member(VENUE, STAFF, ["reverse_scan"]),
                member(VENUE, an_id("user-cashier"), ["view_records"]),
                member(VENUE, an_id("user-gone"), [], removed=True, version=2),
                member(OTHER, an_id("user-other-staff"), ["reverse_scan"]),
            ],
            "devices": [device(VENUE, GATE)],
            "rules": [rule(VENUE, ["green", "yellow"], version=3), rule(OTHER)],
        }
    ]
    for venue_id in (VENUE, OTHER):
        upstreams.add_venue(venue_id)
    return upstreams


@pytest.fixture
async def loaded(
    with_snapshot: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> Verifier:
    """A verifier whose view holds that snapshot (no question asked since)."""
    verifier = make_verifier(with_snapshot)
    await verifier.sync.load_snapshots()
    with_snapshot.requests.clear()
    return verifier


async def refused(verifier: Verifier, token: str, venue_id: str | None) -> int:
    service = verifier.service
    with pytest.raises(DomainError) as caught:
        await service.authorize(await service.scanner(token), venue_id)
    return caught.value.status


async def test_a_member_with_reverse_scan_scans_at_the_venue_under_its_rule(
    loaded: Verifier,
) -> None:
    verifier = loaded
    service = verifier.service
    scanner = await service.scanner(verifier.upstreams.user_token(STAFF))
    venue_id, venue_rule = await service.authorize(scanner, VENUE)
    assert venue_id == VENUE
    assert venue_rule.allowed_colors == {"green", "yellow"}
    assert verifier.upstreams.requests == []  # answered from the view


async def test_members_without_reverse_scan_removed_ones_and_strangers_are_403(
    loaded: Verifier,
) -> None:
    verifier = loaded
    for user in (an_id("user-cashier"), an_id("user-gone"), STRANGER, an_id("user-other-staff")):
        assert await refused(verifier, verifier.upstreams.user_token(user), VENUE) == 403, user
    # A loaded snapshot is the whole truth: a stranger costs no question to venue-admin.
    assert verifier.upstreams.requests == []


async def test_a_user_must_name_the_venue(loaded: Verifier) -> None:
    verifier = loaded
    assert await refused(verifier, verifier.upstreams.user_token(STAFF), None) == 422


async def test_a_gate_scans_at_its_own_venue_whether_or_not_it_names_it(
    loaded: Verifier,
) -> None:
    verifier = loaded
    service = verifier.service
    scanner = await service.scanner(verifier.upstreams.device_token(GATE, VENUE))
    assert (await service.authorize(scanner, None))[0] == VENUE
    assert (await service.authorize(scanner, VENUE))[0] == VENUE
    assert verifier.upstreams.requests == []


async def test_a_gate_naming_another_venue_is_403(loaded: Verifier) -> None:
    verifier = loaded
    assert await refused(verifier, verifier.upstreams.device_token(GATE, VENUE), OTHER) == 403


async def test_a_deleted_gate_or_one_moved_to_another_venue_is_401(loaded: Verifier) -> None:
    verifier = loaded
    token = verifier.upstreams.device_token(GATE, VENUE)
    assert (await verifier.service.scanner(token)).id == GATE
    verifier.view.apply_device(Device(GATE, VENUE, active=False, version=2))
    assert await refused(verifier, token, None) == 401
    # A token of a gate the view holds at another venue than the token says.
    moved = verifier.upstreams.device_token(an_id("device-moved"), OTHER)
    verifier.view.apply_device(Device(an_id("device-moved"), VENUE, active=True, version=1))
    assert await refused(verifier, moved, None) == 401


async def test_unknown_and_deleted_venues_are_404(loaded: Verifier) -> None:
    verifier = loaded
    token = verifier.upstreams.user_token(STAFF)
    assert await refused(verifier, token, an_id("venue-unknown")) == 404
    verifier.view.apply_venue(VENUE, deleted=True)
    assert await refused(verifier, token, VENUE) == 404


async def test_before_the_snapshot_a_miss_asks_venue_admin_once(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    upstreams.add_venue(VENUE, members=[member(VENUE, STAFF, ["reverse_scan"])])
    verifier = make_verifier(upstreams)
    service = verifier.service
    scanner = await service.scanner(upstreams.user_token(STAFF))
    venue_id, venue_rule = await service.authorize(scanner, VENUE)
    assert (venue_id, venue_rule) == (VENUE, Rule())  # the default rule: green only
    asked = [r for r in upstreams.requests if r.endswith("/scan-context")]
    assert asked == [f"venue-admin /internal/v1/venues/{VENUE}/scan-context"]
    await service.authorize(scanner, VENUE)
    assert len([r for r in upstreams.requests if r.endswith("/scan-context")]) == 1
    stranger = await service.scanner(upstreams.user_token(STRANGER))
    with pytest.raises(DomainError) as caught:
        await service.authorize(stranger, VENUE)
    assert caught.value.status == 403


async def test_a_gate_not_in_the_view_is_checked_with_venue_admin(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    upstreams.add_venue(VENUE, devices=[device(VENUE, GATE)])
    upstreams.add_venue(OTHER)
    verifier = make_verifier(upstreams)
    assert (await verifier.service.scanner(upstreams.device_token(GATE, VENUE))).id == GATE
    # Signed by venue-admin but not a device of the venue it claims: 401.
    assert await refused(verifier, upstreams.device_token(GATE, OTHER), None) == 401


async def test_venue_admin_down_is_503_before_the_snapshot_and_404_after(
    with_snapshot: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    verifier = make_verifier(with_snapshot)
    with_snapshot.down.add("venue-admin")
    token = with_snapshot.user_token(STAFF)
    assert await refused(verifier, token, VENUE) == 503
    with_snapshot.down.clear()
    await verifier.sync.load_snapshots()
    with_snapshot.down.add("venue-admin")
    assert await refused(verifier, token, an_id("venue-unknown")) == 404
    scanner = await verifier.service.scanner(token)
    assert (await verifier.service.authorize(scanner, VENUE))[0] == VENUE


@pytest.mark.parametrize(
    "venue_id", ["../scan-snapshot?limit=5000&x=", "a\tb", "\x7f", "venue-1", an_id("v").upper()]
)
async def test_a_venue_id_not_of_our_format_is_404_and_reaches_no_service(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier], venue_id: str
) -> None:
    upstreams.add_venue(VENUE, devices=[device(VENUE, GATE)])
    verifier = make_verifier(upstreams)  # no snapshot: every unknown venue would be asked for
    for token in (upstreams.user_token(STRANGER), upstreams.device_token(GATE, VENUE)):
        await verifier.service.scanner(token)
        upstreams.requests.clear()
        assert await refused(verifier, token, venue_id) == 404
        assert upstreams.requests == []


async def test_a_token_naming_something_that_is_not_an_id_is_401(
    upstreams: Upstreams, make_verifier: Callable[[Upstreams], Verifier]
) -> None:
    upstreams.add_venue(VENUE, devices=[device(VENUE, GATE)])
    verifier = make_verifier(upstreams)
    for token in (
        upstreams.user_token("../../scan-snapshot"),
        upstreams.device_token("gate\t1", VENUE),
        upstreams.device_token(GATE, "../scan-snapshot?x="),
    ):
        with pytest.raises(DomainError) as caught:
            await verifier.service.scanner(token)
        assert caught.value.status == 401
    assert [r for r in upstreams.requests if "/internal/" in r] == []
