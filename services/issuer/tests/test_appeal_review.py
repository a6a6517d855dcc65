"""Appeal review by the health authority's staff: the key, the state machine (each allowed and
refused move), the reply, the outcome texted to the applicant, the queue's filters, order and
pages, and the migration of `in_progress` to `in_review`."""

import asyncio
import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from hc_common.db import Database
from hc_common.ids import new_id
from hc_common.masking import mask_phone
from hc_common.migrations import alembic_config
from hc_common.otp import HttpSmsSender
from hc_common.testing import make_id_number, make_phone, test_database_url

from .conftest import SERVICE_ROOT, Issuer

STAFF = {"Authorization": "Bearer dev-authority-key"}
NAME = "黄秀珍"


def elder() -> str:
    return make_id_number(date(1930, 1, 1) + timedelta(days=random.randrange(10_000)))


async def applicant(issuer: Issuer) -> tuple[str, dict[str, str]]:
    phone = make_phone()
    return phone, await issuer.sign_in(phone)


async def file(issuer: Issuer, user: dict[str, str], **body: Any) -> str:
    body = {"category": "wrong_status", "description": "码的颜色不对", **body}
    response = await issuer.client.post("/v1/appeals", headers=user, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["appeal_id"])


async def review(
    issuer: Issuer, appeal_id: str, status: str, reply: str | None = None, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {"status": status}
    if reply is not None:
        body["reply"] = reply
    return await issuer.client.post(
        f"/v1/review/appeals/{appeal_id}", headers={**STAFF, **headers}, json=body
    )


async def outbox(issuer: Issuer, phone: str) -> list[dict[str, Any]]:
    response = await issuer.client.get("/dev/sms-outbox", params={"phone": phone})
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def notices(issuer: Issuer, phone: str) -> list[dict[str, Any]]:
    return [m for m in await outbox(issuer, phone) if m["code"] is None]


async def own_appeal(issuer: Issuer, user: dict[str, str], appeal_id: str) -> dict[str, Any]:
    listed = (await issuer.client.get("/v1/appeals", headers=user)).json()["items"]
    found: dict[str, Any] = next(a for a in listed if a["appeal_id"] == appeal_id)
    return found


# --- The key ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Bearer dev-authority-key-", "Basic dev-authority-key", "Bearer "],
)
async def test_review_without_the_authority_key_is_401(
    issuer: Issuer, authorization: str | None
) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    headers = {} if authorization is None else {"Authorization": authorization}
    listed = await issuer.client.get("/v1/review/appeals", headers=headers)
    moved = await issuer.client.post(
        f"/v1/review/appeals/{appeal_id}",
        headers=headers,
        json={"status": "rejected", "reply": "x"},
    )
    for response in (listed, moved):
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "unauthorized"
        assert response.headers["content-type"].startswith("application/problem+json")
    assert (await own_appeal(issuer, user, appeal_id))["status"] == "open"


async def test_a_user_token_is_not_the_authority_key(issuer: Issuer) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    listed = await issuer.client.get("/v1/review/appeals", headers=user)
    moved = await issuer.client.post(
        f"/v1/review/appeals/{appeal_id}", headers=user, json={"status": "resolved", "reply": "x"}
    )
    assert (listed.status_code, moved.status_code) == (401, 401)
    assert (await own_appeal(issuer, user, appeal_id))["status"] == "open"


async def test_the_openapi_document_declares_the_authority_key(issuer: Issuer) -> None:
    document = (await issuer.client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["AuthorityKey"]["scheme"] == "bearer"
    for method, path in (("get", "/v1/review/appeals"), ("post", "/v1/review/appeals/{appeal_id}")):
        assert document["paths"][path][method]["security"] == [{"AuthorityKey": []}]


# --- The state machine ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "moves",
    [
        ["in_review"],
        ["resolved"],
        ["rejected"],
        ["in_review", "resolved"],
        ["in_review", "rejected"],
        ["in_review", "in_review"],
        ["in_review", "in_review", "resolved"],
    ],
)
async def test_allowed_moves(issuer: Issuer, moves: list[str]) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    for step, status in enumerate(moves):
        response = await review(issuer, appeal_id, status, f"答复 {step}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["appeal_id"], body["status"], body["reply"]) == (
            appeal_id,
            status,
            f"答复 {step}",
        )
    mine = await own_appeal(issuer, user, appeal_id)
    assert (mine["status"], mine["reply"]) == (moves[-1], f"答复 {len(moves) - 1}")


@pytest.mark.parametrize("closed", ["resolved", "rejected"])
@pytest.mark.parametrize("then", ["in_review", "resolved", "rejected"])
async def test_a_closed_appeal_cannot_change(issuer: Issuer, closed: str, then: str) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    assert (await review(issuer, appeal_id, closed, "已核实")).status_code == 200
    again = await review(issuer, appeal_id, then, "改主意了")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "appeal_closed"
    mine = await own_appeal(issuer, user, appeal_id)
    assert (mine["status"], mine["reply"]) == (closed, "已核实")


@pytest.mark.parametrize("status", ["open", "closed", "in_progress", "", None, 1])
async def test_a_status_a_reviewer_cannot_set_is_422(issuer: Issuer, status: object) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    await review(issuer, appeal_id, "in_review")
    response = await issuer.client.post(
        f"/v1/review/appeals/{appeal_id}", headers=STAFF, json={"status": status, "reply": "x"}
    )
    assert response.status_code == 422, response.text
    assert (await own_appeal(issuer, user, appeal_id))["status"] == "in_review"


@pytest.mark.parametrize("status", ["resolved", "rejected"])
@pytest.mark.parametrize("reply", [None, "", "  \n\t "])
async def test_closing_without_a_reply_is_422_reply_required(
    issuer: Issuer, status: str, reply: str | None
) -> None:
    phone, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    response = await review(issuer, appeal_id, status, reply)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "reply_required"
    assert response.json()["errors"][0]["field"] == "reply"
    english = await issuer.client.post(
        f"/v1/review/appeals/{appeal_id}",
        headers={**STAFF, "Accept-Language": "en"},
        json={"status": status},
    )
    assert "reply" in english.json()["detail"].lower()
    assert (await own_appeal(issuer, user, appeal_id))["status"] == "open"
    assert await notices(issuer, phone) == []


async def test_in_review_keeps_or_replaces_the_reply(issuer: Issuer) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    taken = await review(issuer, appeal_id, "in_review")
    assert taken.status_code == 200 and taken.json()["reply"] is None
    noted = await review(issuer, appeal_id, "in_review", "正在与检测机构核实")
    assert noted.json()["reply"] == "正在与检测机构核实"
    kept = await review(issuer, appeal_id, "in_review")
    assert kept.status_code == 200 and kept.json()["reply"] == "正在与检测机构核实"
    assert kept.json()["updated_at"] >= noted.json()["updated_at"]
    mine = await own_appeal(issuer, user, appeal_id)
    assert (mine["status"], mine["reply"]) == ("in_review", "正在与检测机构核实")


async def test_a_reply_with_control_characters_or_too_long_is_422(issuer: Issuer) -> None:
    _, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    for reply in ("坏\x00字", "x" * 2001):
        assert (await review(issuer, appeal_id, "resolved", reply)).status_code == 422
    assert (await review(issuer, appeal_id, "resolved", "第一行\n\t第二行")).status_code == 200


@pytest.mark.parametrize(
    "appeal_id",
    [
        new_id(),
        "x",
        "0" * 27,
        new_id().upper(),
        "%20",
        "..%2F..%2Fv1%2Fappeals",
        "1' OR '1'='1",
    ],
)
async def test_an_unknown_or_malformed_appeal_is_404(issuer: Issuer, appeal_id: str) -> None:
    response = await review(issuer, appeal_id, "resolved", "x")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


# --- The applicant is texted the outcome ---------------------------------------------------


@pytest.mark.parametrize(("status", "words"), [("resolved", "已解决"), ("rejected", "未予支持")])
async def test_closing_texts_the_applicant_once(issuer: Issuer, status: str, words: str) -> None:
    phone, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    assert (await review(issuer, appeal_id, "in_review", "处理中")).status_code == 200
    assert await notices(issuer, phone) == []  # taking it up is not an outcome
    closed = await review(issuer, appeal_id, status, "已为您更正健康码状态")
    assert closed.status_code == 200
    [notice] = await notices(issuer, phone)
    assert notice["phone"] == phone and notice["code"] is None
    assert words in notice["text"] and "申诉" in notice["text"]
    assert notice["sent_at"].endswith("Z")
    assert (await review(issuer, appeal_id, status, "再说一次")).status_code == 409
    assert len(await notices(issuer, phone)) == 1
    # The sign-in code is still a code message, with no text.
    codes = [m for m in await outbox(issuer, phone) if m["code"] is not None]
    assert codes and all(m["text"] is None for m in codes)
    mine = await own_appeal(issuer, user, appeal_id)
    assert (mine["status"], mine["reply"]) == (status, "已为您更正健康码状态")


async def test_the_number_is_kept_sealed_and_a_user_without_one_is_not_texted(
    issuer: Issuer,
) -> None:
    phone, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    db = Database(issuer.database_url)
    try:
        async with db.engine.begin() as conn:
            sealed = (
                (
                    await conn.execute(
                        text("SELECT phone_sealed FROM users WHERE masked_phone = :m"),
                        {"m": mask_phone(phone)},
                    )
                )
                .scalars()
                .all()
            )
            assert sealed and all(s is not None and phone.encode() not in s for s in sealed)
            # A user who signed in before numbers were kept.
            await conn.execute(
                text("UPDATE users SET phone_sealed = NULL WHERE masked_phone = :m"),
                {"m": mask_phone(phone)},
            )
    finally:
        await db.dispose()
    closed = await review(issuer, appeal_id, "resolved", "已处理")
    assert closed.status_code == 200
    assert await notices(issuer, phone) == []
    assert (await own_appeal(issuer, user, appeal_id))["reply"] == "已处理"


async def test_the_gateway_texts_the_outcome_and_its_failure_leaves_the_appeal_open(
    issuer: Issuer,
) -> None:
    """Production: the SMS gateway gets the notice's template and params; when it fails, the
    close is rolled back (503) and can be tried again."""
    phone, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    gateway = {"status": 502}
    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if gateway["status"] == 200:
            sent.append(json.loads(request.content))
        return httpx.Response(gateway["status"])

    state = issuer.app.state
    dev_sender = state.sms_sender  # the sender appeals text with (also the sign-in codes')
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        state.sms_sender = HttpSmsSender(client, "https://sms.example/send", "k", "HC_SIGNIN")
        try:
            failed = await review(issuer, appeal_id, "resolved", "已更正")
            assert failed.status_code == 503, failed.text
            assert failed.json()["code"] == "service_unavailable"
            assert (await own_appeal(issuer, user, appeal_id))["status"] == "open"
            gateway["status"] = 200
            closed = await review(issuer, appeal_id, "resolved", "已更正")
            assert closed.status_code == 200, closed.text
        finally:
            state.sms_sender = dev_sender
    assert len(sent) == 1
    assert sent[0]["phone"] == phone and sent[0]["template"] == "HC_APPEAL_CLOSED"
    assert sent[0]["params"]["outcome"] == "已解决" and "月" in sent[0]["params"]["filed_on"]
    assert await notices(issuer, phone) == []  # the gateway, not the dev outbox
    assert (await own_appeal(issuer, user, appeal_id))["status"] == "resolved"


async def test_reviewers_closing_at_once_close_it_once(issuer: Issuer) -> None:
    phone, user = await applicant(issuer)
    appeal_id = await file(issuer, user)
    decisions = ["resolved", "rejected"] * 5
    responses = await asyncio.gather(
        *(review(issuer, appeal_id, status, f"答复 {i}") for i, status in enumerate(decisions))
    )
    assert Counter(r.status_code for r in responses) == {200: 1, 409: 9}
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"appeal_closed"}
    [winner] = [r.json() for r in responses if r.status_code == 200]
    mine = await own_appeal(issuer, user, appeal_id)
    assert (mine["status"], mine["reply"]) == (winner["status"], winner["reply"])
    assert len(await notices(issuer, phone)) == 1


# --- The queue -------------------------------------------------------------------------------


async def queue(issuer: Issuer, limit: int = 500, **params: str) -> list[dict[str, Any]]:
    """Every page of the queue, walked with `limit`."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor:
            query["cursor"] = cursor
        response = await issuer.client.get("/v1/review/appeals", headers=STAFF, params=query)
        assert response.status_code == 200, response.text
        items += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return items


async def test_a_queue_item_shows_the_applicant_masked_and_the_credential(issuer: Issuer) -> None:
    phone, user = await applicant(issuer)
    id_number = elder()
    credential = (await issuer.apply(user, NAME, id_number)).json()
    about = await file(
        issuer,
        user,
        category="lost_card",
        description="卡丢了",
        credential_id=credential["credential_id"],
    )
    bare = await file(issuer, user, category="other", description="其他")
    items = {item["appeal_id"]: item for item in await queue(issuer, status="open")}
    item = items[about]
    assert set(item) == {
        "appeal_id",
        "status",
        "category",
        "description",
        "created_at",
        "updated_at",
        "masked_phone",
        "credential",
        "reply",
    }
    assert item["masked_phone"] == mask_phone(phone) and phone not in str(item)
    assert item["credential"] == {
        "credential_id": credential["credential_id"],
        "masked_name": "黄*珍",
        "masked_id_number": id_number[:6] + "********" + id_number[-4:],
        "status": "active",
    }
    assert (item["status"], item["category"], item["description"], item["reply"]) == (
        "open",
        "lost_card",
        "卡丢了",
        None,
    )
    assert item["created_at"].endswith("Z") and item["updated_at"].endswith("Z")
    assert items[bare]["credential"] is None
    # The credential's status is its status now.
    revoked = await issuer.client.delete(
        f"/v1/family/credentials/{credential['credential_id']}", headers=user
    )
    assert revoked.status_code == 204
    moved = await review(issuer, about, "in_review")
    assert moved.json()["credential"]["status"] == "revoked"
    assert moved.json()["masked_phone"] == mask_phone(phone)


async def test_the_queue_is_oldest_open_first_then_in_review_then_closed(issuer: Issuer) -> None:
    _, user = await applicant(issuer)
    filed = [await file(issuer, user, description=f"第{i}件") for i in range(6)]
    # filed[0] closed, filed[1] and filed[4] in review, the rest open.
    await review(issuer, filed[0], "rejected", "不予支持")
    await review(issuer, filed[4], "in_review")
    await review(issuer, filed[1], "in_review")
    mine = set(filed)
    whole = await queue(issuer)
    order = [item["appeal_id"] for item in whole if item["appeal_id"] in mine]
    assert order == [filed[2], filed[3], filed[5], filed[1], filed[4], filed[0]]
    rank = {"open": 0, "in_review": 1, "resolved": 2, "rejected": 2}
    keys = [(rank[item["status"]], item["appeal_id"]) for item in whole]
    assert keys == sorted(keys)
    opened = [item for item in whole if item["status"] == "open"]
    assert [i["created_at"] for i in opened] == sorted(i["created_at"] for i in opened)


@pytest.mark.parametrize("limit", [1, 2, 3])
async def test_pages_walk_the_queue_once_in_order(issuer: Issuer, limit: int) -> None:
    _, user = await applicant(issuer)
    for i in range(4):
        appeal_id = await file(issuer, user, description=f"分页{i}")
        if i % 2:
            await review(issuer, appeal_id, "in_review")
    whole = [item["appeal_id"] for item in await queue(issuer)]
    paged = [item["appeal_id"] for item in await queue(issuer, limit=limit)]
    assert paged == whole and len(set(paged)) == len(paged)
    first = await issuer.client.get("/v1/review/appeals", headers=STAFF, params={"limit": limit})
    assert len(first.json()["items"]) == limit and first.json()["next_cursor"]


async def test_the_queue_filters_by_status_and_category(issuer: Issuer) -> None:
    _, user = await applicant(issuer)
    lost = await file(issuer, user, category="lost_card", description="丢卡")
    wrong = await file(issuer, user, category="wrong_status", description="状态错")
    other = await file(issuer, user, category="other", description="其他")
    await review(issuer, wrong, "in_review")
    await review(issuer, other, "resolved", "已解决")
    for status, expected in (("open", lost), ("in_review", wrong), ("resolved", other)):
        items = await queue(issuer, limit=2, status=status)
        assert {item["status"] for item in items} == {status}
        assert expected in {item["appeal_id"] for item in items}
        ids = [item["appeal_id"] for item in items]
        assert ids == sorted(ids)
    lost_cards = await queue(issuer, category="lost_card")
    assert {item["category"] for item in lost_cards} == {"lost_card"}
    assert lost in {item["appeal_id"] for item in lost_cards}
    both = await queue(issuer, status="open", category="lost_card")
    assert lost in {i["appeal_id"] for i in both}
    assert {(i["status"], i["category"]) for i in both} == {("open", "lost_card")}
    assert await queue(issuer, status="rejected", category="cannot_apply") == [
        i for i in await queue(issuer, status="rejected") if i["category"] == "cannot_apply"
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "in_progress"},
        {"status": "closed"},
        {"category": "angry"},
        {"limit": "0"},
        {"limit": "501"},
        {"limit": "x"},
        {"cursor": "not-a-cursor"},
        {"cursor": "MzoweHg"},
        {"cursor": "%00"},
        {"cursor": "x" * 5000},
    ],
)
async def test_bad_queue_parameters_are_422(issuer: Issuer, params: dict[str, str]) -> None:
    response = await issuer.client.get("/v1/review/appeals", headers=STAFF, params=params)
    assert response.status_code == 422, response.text
    if "cursor" in params:
        assert response.json()["code"] == "invalid_cursor"


# --- The migration ---------------------------------------------------------------------------


def test_the_migration_renames_in_progress_to_in_review(tmp_path: Path) -> None:
    from alembic import command

    url = test_database_url("iss_appeal_migration", tmp_path)
    config = alembic_config(SERVICE_ROOT, url)
    command.upgrade(config, "c9f54d416b39")
    now = datetime(2026, 11, 28, tzinfo=UTC)

    async def run(sql: str, params: dict[str, object] | None = None) -> list[tuple[object, ...]]:
        db = Database(url)
        try:
            async with db.engine.begin() as conn:
                result = await conn.execute(text(sql), params or {})
                return [tuple(r) for r in result.all()] if result.returns_rows else []
        finally:
            await db.dispose()

    insert = (
        "INSERT INTO appeals (id, user_id, category, description, credential_id, status, "
        "created_at, updated_at) VALUES (:id, :u, 'other', 'x', NULL, :status, :now, :now)"
    )
    for appeal_id, status in (("a1", "open"), ("a2", "in_progress"), ("a3", "resolved")):
        asyncio.run(run(insert, {"id": appeal_id, "u": "u" * 26, "status": status, "now": now}))
    command.upgrade(config, "head")
    assert asyncio.run(run("SELECT id, status, reply FROM appeals ORDER BY id")) == [
        ("a1", "open", None),
        ("a2", "in_review", None),
        ("a3", "resolved", None),
    ]
    command.downgrade(config, "c9f54d416b39")
    assert asyncio.run(run("SELECT status FROM appeals ORDER BY id")) == [
        ("open",),
        ("in_progress",),
        ("resolved",),
    ]
    command.upgrade(config, "head")
