"""The issuer's single-use rules and limits under concurrent requests (issue 10, findings 1-4):
real requests fired at once at two replicas of the issuer on one database (and at two of
venue-admin for its sub-admin codes), on SQLite or PostgreSQL as the stack runs."""

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import date

import httpx
import pytest

from hc_common.devstack import Stack
from hc_common.testing import make_id_number, make_phone
from tests.conftest import Api
from tests.journeys import PHOTO_PNG, apply_for, sign_in
from tests.security.support import two_replicas

pytestmark = pytest.mark.e2e

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


@pytest.fixture(scope="module")
def issuers(stack: Stack) -> Iterator[list[str]]:
    """The stack's issuer and a second replica of it on the same database."""
    with two_replicas(stack, "issuer") as urls:
        yield urls


@pytest.fixture(scope="module")
def venue_admins(stack: Stack) -> Iterator[list[str]]:
    """The stack's venue-admin and a second replica of it on the same database."""
    with two_replicas(stack, "venue-admin") as urls:
        yield urls


async def at_once(urls: list[str], count: int, send: Send) -> list[httpx.Response]:
    """`count` requests in flight together, the i-th sent to replica i mod len(urls); the
    answers in the order of i."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for url in urls]
    try:
        return list(
            await asyncio.gather(*(send(clients[i % len(clients)], i) for i in range(count)))
        )
    finally:
        for client in clients:
            await client.aclose()


def no_5xx(responses: list[httpx.Response]) -> None:
    failed = [(r.status_code, r.text[:200]) for r in responses if r.status_code >= 500]
    assert not failed, failed


def codes(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    """(status, problem code) of each answer; ("", ...) for a success."""
    return Counter(
        (r.status_code, r.json()["code"] if r.status_code >= 400 else "") for r in responses
    )


def outbox(client: httpx.Client, phone: str) -> list[dict[str, str]]:
    response = client.get("/dev/sms-outbox", params={"phone": phone})
    assert response.status_code == 200, response.text
    messages: list[dict[str, str]] = response.json()["messages"]
    return messages


# --- Finding 3: SMS limits -----------------------------------------------------------------


async def test_twenty_code_requests_at_once_for_one_phone_send_exactly_one_code(
    api: Api, issuers: list[str]
) -> None:
    phone = make_phone()

    async def send(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.post("/v1/auth/otp", json={"phone": phone})

    responses = await at_once(issuers, 20, send)
    no_5xx(responses)
    assert codes(responses) == {(202, ""): 1, (429, "too_many_requests"): 19}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in responses if r.status_code == 429)
    assert len(outbox(api.issuer, phone)) == 1


async def test_twenty_sub_admin_code_requests_at_once_send_exactly_one_code(
    api: Api, venue_admins: list[str]
) -> None:
    admin = sign_in(api.issuer, make_phone())
    made = api.venue_admin.post(
        "/v1/venues",
        headers=admin,
        json={
            "name": "南宁东站",
            "category": "train_station",
            "address": "青秀区",
            "region_code": "450103",
        },
    )
    assert made.status_code == 201, made.text
    venue_id = made.json()["venue_id"]
    phone = make_phone()

    async def send(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.post(
            f"/v1/venues/{venue_id}/sub-admins/code", headers=admin, json={"phone": phone}
        )

    responses = await at_once(venue_admins, 20, send)
    no_5xx(responses)
    assert codes(responses) == {(202, ""): 1, (429, "too_many_requests"): 19}
    assert len(outbox(api.venue_admin, phone)) == 1


# --- Finding 1: SMS code brute force by concurrency ----------------------------------------


def requested_code(api: Api) -> tuple[str, str]:
    """A phone that has just been sent a sign-in code, and the code."""
    phone = make_phone()
    assert api.issuer.post("/v1/auth/otp", json={"phone": phone}).status_code == 202
    return phone, outbox(api.issuer, phone)[0]["code"]


def wrong_codes(right: str, count: int) -> list[str]:
    """`count` distinct six-digit codes, none of them `right`."""
    found: set[str] = set()
    while len(found) < count:
        guess = f"{secrets.randbelow(10**6):06d}"
        if guess != right:
            found.add(guess)
    return sorted(found)


async def test_a_hundred_guesses_at_once_with_the_right_code_last_do_not_sign_in(
    api: Api, issuers: list[str]
) -> None:
    """99 wrong guesses in flight, and the right code sent while they still are: at most 5
    guesses are judged, so the right one finds the code dead. (It is sent once five wrong
    answers have come back: each of those was counted, or found the code already dead, so
    the code is dead by then whatever order the database took them in.)"""
    phone, right = requested_code(api)
    guesses = wrong_codes(right, 99)
    answered = 0
    five_answered = asyncio.Event()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for url in issuers]

    async def guess(client: httpx.AsyncClient, code: str) -> httpx.Response:
        nonlocal answered
        response = await client.post("/v1/auth/token", json={"phone": phone, "code": code})
        answered += 1
        if answered >= 5:
            five_answered.set()
        return response

    async def right_last() -> httpx.Response:
        await five_answered.wait()
        return await guess(clients[1], right)

    try:
        responses = await asyncio.gather(
            *(guess(clients[i % 2], code) for i, code in enumerate(guesses)), right_last()
        )
    finally:
        for client in clients:
            await client.aclose()
    no_5xx(responses)
    assert codes(responses) == {(401, "invalid_code"): 100}
    again = api.issuer.post("/v1/auth/token", json={"phone": phone, "code": right})
    assert again.status_code == 401 and again.json()["code"] == "invalid_code"


async def test_a_hundred_wrong_guesses_at_once_kill_the_code(api: Api, issuers: list[str]) -> None:
    phone, right = requested_code(api)
    guesses = wrong_codes(right, 100)

    async def send(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post("/v1/auth/token", json={"phone": phone, "code": guesses[i]})

    responses = await at_once(issuers, len(guesses), send)
    no_5xx(responses)
    assert codes(responses) == {(401, "invalid_code"): 100}
    # Every try was counted, across both replicas: the code is dead.
    dead = api.issuer.post("/v1/auth/token", json={"phone": phone, "code": right})
    assert dead.status_code == 401 and dead.json()["code"] == "invalid_code"


async def test_one_code_sent_ten_times_at_once_signs_in_once(api: Api, issuers: list[str]) -> None:
    phone, right = requested_code(api)

    async def send(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.post("/v1/auth/token", json={"phone": phone, "code": right})

    responses = await at_once(issuers, 10, send)
    no_5xx(responses)
    assert codes(responses) == {(200, ""): 1, (401, "invalid_code"): 9}


# --- Finding 2: parallel reissue, and applications for one person ---------------------------


def active_credentials(api: Api, user: dict[str, str]) -> list[dict[str, object]]:
    listed = api.issuer.get("/v1/family/credentials", headers=user, params={"limit": 500})
    assert listed.status_code == 200, listed.text
    return [c for c in listed.json()["items"] if c["status"] == "active"]


async def test_eight_reissues_at_once_make_exactly_one_new_active_credential(
    api: Api, issuers: list[str]
) -> None:
    family = sign_in(api.issuer, make_phone())
    applied = apply_for(api.issuer, family, make_id_number(date(1950, 3, 8)))
    assert applied.status_code == 201, applied.text
    first = applied.json()["credential_id"]

    async def send(client: httpx.AsyncClient, _: int) -> httpx.Response:
        return await client.post(f"/v1/family/credentials/{first}/reissue", headers=family)

    responses = await at_once(issuers, 8, send)
    no_5xx(responses)
    by_code = codes(responses)
    assert by_code[(201, "")] == 1, by_code
    assert set(by_code) <= {
        (201, ""),
        (409, "credential_not_active"),
        (409, "credential_exists"),
    }, by_code
    (active,) = active_credentials(api, family)
    (won,) = [r.json() for r in responses if r.status_code == 201]
    assert active["credential_id"] == won["credential_id"] and active["version"] == 2
    old = api.issuer.get(f"/v1/family/credentials/{first}", headers=family)
    assert old.json()["status"] == "revoked"


async def test_applications_at_once_for_one_person_make_one_credential(
    api: Api, issuers: list[str]
) -> None:
    """Four family members apply for the same grandmother at once, each with a face check of
    their own: one credential, the others 409 `credential_exists`."""
    id_number, name = make_id_number(date(1948, 6, 1)), "韦秀英"
    families = [sign_in(api.issuer, make_phone()) for _ in range(4)]
    tokens = [
        api.issuer.post("/dev/face-checks", json={"name": name, "id_number": id_number}).json()[
            "face_check_token"
        ]
        for _ in families
    ]

    async def send(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(
            "/v1/family/credentials",
            headers=families[i],
            json={
                "name": name,
                "id_number": id_number,
                "relationship": "grandchild",
                "photo": PHOTO_PNG,
                "face_check_token": tokens[i],
            },
        )

    responses = await at_once(issuers, 4, send)
    no_5xx(responses)
    assert codes(responses) == {(201, ""): 1, (409, "credential_exists"): 3}
    assert sum(len(active_credentials(api, family)) for family in families) == 1


# --- Finding 4: one face-check token spent at once by four users ----------------------------


async def test_one_face_check_token_submitted_by_four_users_at_once_makes_one_credential(
    api: Api, issuers: list[str]
) -> None:
    id_number, name = make_id_number(date(2015, 9, 1)), "陆子涵"
    families = [sign_in(api.issuer, make_phone()) for _ in range(4)]
    token = api.issuer.post("/dev/face-checks", json={"name": name, "id_number": id_number}).json()[
        "face_check_token"
    ]

    async def send(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(
            "/v1/family/credentials",
            headers=families[i],
            json={
                "name": name,
                "id_number": id_number,
                "relationship": "child",
                "photo": PHOTO_PNG,
                "face_check_token": token,
            },
        )

    responses = await at_once(issuers, 4, send)
    no_5xx(responses)
    by_code = codes(responses)
    assert by_code[(201, "")] == 1, by_code
    assert set(by_code) <= {
        (201, ""),
        (403, "face_check_failed"),
        (409, "credential_exists"),
    }, by_code
    assert sum(len(active_credentials(api, family)) for family in families) == 1
