"""A verifier restarted knows every venue of a venue-admin holding many pages of them.

venue-admin holds more than 500 venues, read by the verifier 7 a page
(`VERIFIER_SNAPSHOT_PAGE_SIZE`). Three venues are opened through the API, each with a staff
member added as a sub-admin (who holds `reverse_scan`): before, between and after two blocks
of venues inserted straight into venue-admin's database (with its models, one transaction a
block: opening 500 venues through the API takes a sign-in each). Ids follow creation time, so
the three fall on the first, a middle and the last page. After a restart of the verifier,
with venue-admin stopped, each staff member scans at their venue and a non-member may not.
"""

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from hc_common.clock import utcnow
from hc_common.devstack import Stack
from hc_common.ids import new_id
from hc_common.testing import make_phone
from tests.conftest import Api, own_stack
from tests.e2e.test_verifier_scan import apply, venue, verify
from tests.journeys import sign_in
from venue_admin.venue.models import Member, Venue

pytestmark = pytest.mark.e2e

PAGE_SIZE = 7
BLOCK = 260  # venues inserted at once, twice: 523 venues in all, 75 pages


@pytest.fixture(scope="module")
def own() -> Iterator[tuple[Stack, Api]]:
    with own_stack("verifier-snapshot", VERIFIER_SNAPSHOT_PAGE_SIZE=str(PAGE_SIZE)) as running:
        yield running


def staffed_venue(api: Api) -> tuple[str, dict[str, str], str]:
    """A venue opened through the API with a sub-admin: its id, the sub-admin's bearer header
    and user id."""
    venue_id, admin = venue(api)
    phone = make_phone()
    sent = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins/code", headers=admin, json={"phone": phone}
    )
    assert sent.status_code == 202, sent.text
    code = api.venue_admin.get("/dev/sms-outbox", params={"phone": phone}).json()["messages"][0][
        "code"
    ]
    added = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins", headers=admin, json={"phone": phone, "code": code}
    )
    assert added.status_code == 201, added.text
    assert "reverse_scan" in added.json()["permissions"]
    return venue_id, sign_in(api.issuer, phone), added.json()["user_id"]


def insert_venues(stack: Stack, count: int, member_id: str | None = None) -> list[str]:
    """`count` venues written into venue-admin's database in one transaction (no events: only
    its snapshot tells the verifier). With `member_id`, that user is a sub-admin holding
    `reverse_scan` at the middle one."""
    url = stack.service_env("venue-admin")["DATABASE_URL"]
    ids = [new_id() for _ in range(count)]

    async def insert() -> None:
        engine = create_async_engine(url)
        try:
            async with AsyncSession(engine) as session, session.begin():
                now = utcnow()
                session.add_all(
                    Venue(
                        id=venue_id,
                        name=f"批量场所{i}",
                        category="train_station",
                        address="青秀区",
                        region_code="450103",
                        created_by=new_id(),
                        created_at=now,
                    )
                    for i, venue_id in enumerate(ids)
                )
                await session.flush()  # the venues before the member that refers to one
                if member_id is not None:
                    session.add(
                        Member(
                            venue_id=ids[count // 2],
                            user_id=member_id,
                            masked_phone="138****0000",
                            role="sub_admin",
                            permissions=["reverse_scan"],
                            added_at=now,
                            version=1,
                        )
                    )
        finally:
            await engine.dispose()

    asyncio.run(insert())
    return ids


def test_a_restarted_verifier_knows_every_page_of_venues(own: tuple[Stack, Api]) -> None:
    stack, api = own
    first, first_staff, _ = staffed_venue(api)
    block = insert_venues(stack, BLOCK)
    middle, middle_staff, middle_id = staffed_venue(api)
    more = insert_venues(stack, BLOCK, member_id=middle_id)
    last, last_staff, _ = staffed_venue(api)

    # Where each falls in venue-admin's snapshot (pages of venues by id).
    ordered = sorted([first, middle, last, *block, *more])
    pages = -(-len(ordered) // PAGE_SIZE)
    assert len(ordered) > 500 and pages > 70
    page_of = {v: ordered.index(v) // PAGE_SIZE for v in (first, middle, last, more[BLOCK // 2])}
    assert page_of[first] == 0 and page_of[last] == pages - 1
    assert 0 < page_of[middle] < pages - 1 and 0 < page_of[more[BLOCK // 2]] < pages - 1

    credential, _ = apply(api)
    stack.stop_process("verifier")
    stack.start_service("verifier")
    stack.wait_ready(60, ["verifier"])
    # Ready means loaded: venue-admin can go away and every page's venues are known.
    stack.stop_process("venue-admin")
    try:
        for venue_id, staff in (
            (first, first_staff),
            (middle, middle_staff),
            (last, last_staff),
            (more[BLOCK // 2], middle_staff),  # a member only the database holds
        ):
            answer = verify(api, staff, credential["qr"], venue_id)
            assert answer.status_code == 200, (venue_id, answer.text)
            assert answer.json()["decision"] == "pass"
        # A signed-in user who is a member of none of them.
        for venue_id in (first, middle, last):
            stranger = verify(api, credential["_family"], credential["qr"], venue_id)
            assert stranger.status_code == 403, stranger.text
        # A member of one venue is not a member of the next one.
        assert verify(api, last_staff, credential["qr"], first).status_code == 403
        assert verify(api, middle_staff, credential["qr"], block[0]).status_code == 403
    finally:
        stack.start_service("venue-admin")
        stack.wait_ready(60, ["venue-admin"])
