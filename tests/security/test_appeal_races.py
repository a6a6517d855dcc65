"""Appeal review under concurrent requests: reviewers closing the same appeal at once, at two
replicas of the issuer on one database (SQLite or PostgreSQL as the stack runs), close it once
and text the applicant once."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hc_common.devstack import Stack
from hc_common.testing import make_phone
from tests.conftest import Api
from tests.journeys import AUTHORITY, sign_in
from tests.security.support import two_replicas

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def issuers(stack: Stack) -> Iterator[list[str]]:
    """The stack's issuer and a second replica of it on the same database."""
    with two_replicas(stack, "issuer") as urls:
        yield urls


async def decide_at_once(
    urls: list[str], appeal_id: str, decisions: list[dict[str, str]]
) -> list[httpx.Response]:
    """Each decision sent by a reviewer of its own, all in flight together, the i-th to
    replica i mod len(urls)."""
    count = len(decisions)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    clients = [httpx.AsyncClient(base_url=url, timeout=120, limits=limits) for url in urls]
    try:
        return list(
            await asyncio.gather(
                *(
                    clients[i % len(clients)].post(
                        f"/v1/review/appeals/{appeal_id}", headers=AUTHORITY, json=decision
                    )
                    for i, decision in enumerate(decisions)
                )
            )
        )
    finally:
        for client in clients:
            await client.aclose()


def filed_appeal(api: Api) -> tuple[str, dict[str, str], str]:
    """A fresh applicant's phone, their sign-in header and the id of their open appeal."""
    phone = make_phone()
    user = sign_in(api.issuer, phone)
    filed = api.issuer.post(
        "/v1/appeals", headers=user, json={"category": "wrong_status", "description": "码色不对"}
    )
    assert filed.status_code == 201, filed.text
    return phone, user, filed.json()["appeal_id"]


def notices(api: Api, phone: str) -> list[dict[str, Any]]:
    response = api.issuer.get("/dev/sms-outbox", params={"phone": phone})
    assert response.status_code == 200, response.text
    return [m for m in response.json()["messages"] if m["code"] is None]


def outcome(responses: list[httpx.Response]) -> Counter[tuple[int, str]]:
    return Counter(
        (r.status_code, r.json()["code"] if r.status_code >= 400 else "") for r in responses
    )


@pytest.mark.parametrize("reviewers", [2, 12])
async def test_reviewers_closing_one_appeal_at_once_close_it_once(
    api: Api, issuers: list[str], reviewers: int
) -> None:
    for _round in range(3):
        phone, user, appeal_id = filed_appeal(api)
        decisions = [
            {"status": ("resolved", "rejected")[i % 2], "reply": f"审核员{i}的答复"}
            for i in range(reviewers)
        ]
        responses = await decide_at_once(issuers, appeal_id, decisions)
        assert outcome(responses) == {(200, ""): 1, (409, "appeal_closed"): reviewers - 1}
        [winner] = [r.json() for r in responses if r.status_code == 200]
        mine = api.issuer.get("/v1/appeals", headers=user).json()["items"]
        assert [(a["status"], a["reply"]) for a in mine] == [(winner["status"], winner["reply"])]
        [notice] = notices(api, phone)
        assert ("已解决" if winner["status"] == "resolved" else "未予支持") in notice["text"]


async def test_taking_up_and_closing_at_once_leave_it_closed(api: Api, issuers: list[str]) -> None:
    """`in_review` racing closes: a take-up that lands first is 200 and the appeal is then
    closed by one of the closers; one that lands after the close is 409. Either way the
    appeal ends closed with the winner's reply, and is texted once."""
    phone, user, appeal_id = filed_appeal(api)
    decisions = [
        {"status": "in_review", "reply": "处理中"},
        {"status": "resolved", "reply": "已更正"},
        {"status": "in_review"},
        {"status": "rejected", "reply": "不予支持"},
        {"status": "in_review", "reply": "还在核实"},
        {"status": "resolved", "reply": "已更正2"},
    ]
    responses = await decide_at_once(issuers, appeal_id, decisions)
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    closes = [r for d, r in zip(decisions, responses, strict=True) if d["status"] != "in_review"]
    assert outcome(closes) == {(200, ""): 1, (409, "appeal_closed"): 2}
    [closer] = [r.json() for r in closes if r.status_code == 200]
    [mine] = api.issuer.get("/v1/appeals", headers=user).json()["items"]
    assert (mine["status"], mine["reply"]) == (closer["status"], closer["reply"])
    assert len(notices(api, phone)) == 1
