"""Contract, Family credentials and QR: apply, every error code, expiry, list, 404s, reissue,
revoke with its event, appeals, key rotation, and the printed card scanning back."""

import base64
import io
import json
import random
from datetime import date, datetime, timedelta

import jwt
import nats
import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

import issuer.facecheck.service as facecheck
from hc_common.auth.keys import create_key
from hc_common.auth.tokens import InvalidToken, KeySet
from hc_common.clock import CST, cst_today, end_of_cst_day, rfc3339
from hc_common.db import Database
from hc_common.events.schemas import CredentialChanged, parse_payload
from hc_common.testing import make_id_number
from issuer import keys
from issuer.credential.service import last_valid_day
from issuer.crypto import key_sealer
from issuer.db import SigningKey

from .conftest import Issuer, issuer_settings, photo_b64, started, years_before

NAME = "李秀华"


def elder() -> str:
    """A fresh person aged over 60 (random birthday and serial, so tests never share one)."""
    return make_id_number(date(1930, 1, 1) + timedelta(days=random.randrange(10_000)))


async def test_apply_answers_the_contract_shape(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = make_id_number(date(1950, 3, 8), serial=random.randrange(100, 1000))
    response = await issuer.apply(user, NAME, id_number)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "active" and body["version"] == 1
    assert body["holder"] == {
        "masked_name": "李*华",
        "masked_id_number": id_number[:6] + "********" + id_number[-4:],
        "age": cst_today().year - 1950 - (cst_today() < date(cst_today().year, 3, 8)),
        "relationship": "grandparent",
    }
    issued = datetime.fromisoformat(body["issued_at"].replace("Z", "+00:00"))
    expected_last = last_valid_day(issued.astimezone(CST).date(), date(1950, 3, 8))
    assert body["expires_at"] == rfc3339(end_of_cst_day(expected_last))
    assert body["expires_at"].endswith("15:59:59Z")  # 23:59:59 China time


async def test_two_character_names_are_masked_with_one_star(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    body = (await issuer.apply(user, "李明", elder())).json()
    assert body["holder"]["masked_name"] == "李*"


async def test_the_qr_is_gxhc1_eddsa_with_kid_and_nothing_personal(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = elder()
    body = (await issuer.apply(user, NAME, id_number)).json()
    qr = body["qr"]
    assert qr.startswith("GXHC1:") and len(qr) <= 300
    token = qr.removeprefix("GXHC1:")
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    jwks = (await issuer.client.get("/.well-known/jwks.json")).json()
    assert any(k["kid"] == header["kid"] and k["purpose"] == "credential" for k in jwks["keys"])
    keyset = KeySet()
    keyset.load(jwks)
    claims = keyset.decode(token, "credential", audience=None)
    assert claims["jti"] == body["credential_id"]
    text = json.dumps(claims, ensure_ascii=False)
    for personal in (id_number, id_number[-4:] + '"', NAME, "李", id_number[6:14], "green"):
        assert personal not in text


@pytest.mark.parametrize(
    ("years", "days", "eligible"),
    [
        (16, 0, True),  # 16 and 364 days: 16 in full years
        (17, 1, False),  # turned 17 today
        (59, 0, False),  # the day before the 60th birthday
        (60, 1, True),  # turned 60 today
    ],
)
async def test_eligibility_by_full_years_on_the_day(
    issuer: Issuer, years: int, days: int, eligible: bool
) -> None:
    # born `years` (+1 if days == 0, minus one day) before today: age boundaries 16/17/59/60.
    today = cst_today()
    birth = (
        years_before(today, years + 1) + timedelta(days=1)
        if days == 0
        else years_before(today, years)
    )
    user = await issuer.sign_in()
    response = await issuer.apply(user, NAME, make_id_number(birth), "child")
    if eligible:
        assert response.status_code == 201, response.text
        assert response.json()["holder"]["age"] == years
    else:
        assert response.status_code == 422
        assert response.json()["code"] == "not_eligible"


async def test_not_eligible_in_english(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    body = {
        "name": NAME,
        "id_number": make_id_number(date(1990, 1, 1)),
        "relationship": "spouse",
        "photo": photo_b64(),
    }
    response = await issuer.client.post(
        "/v1/family/credentials", json=body, headers={**user, "Accept-Language": "en"}
    )
    assert response.json()["title"] == "Not eligible by age"


async def test_a_minor_expires_the_day_before_the_17th_birthday(issuer: Issuer) -> None:
    today = cst_today()
    birth = years_before(today, 17) + timedelta(days=100)  # 16, turns 17 in 100 days
    user = await issuer.sign_in()
    body = (await issuer.apply(user, NAME, make_id_number(birth), "grandchild")).json()
    assert body["expires_at"] == rfc3339(
        end_of_cst_day(years_before(birth, -17) - timedelta(days=1))
    )


def test_expiry_rules_with_29_february() -> None:
    assert last_valid_day(date(2026, 11, 27), date(1950, 1, 1)) == date(2027, 11, 27)
    # Issued on 29 February: the anniversary is 1 March.
    assert last_valid_day(date(2028, 2, 29), date(1950, 1, 1)) == date(2029, 3, 1)
    # Born on 29 February: the 17th birthday in a common year is 1 March, so the last day
    # is 28 February.
    assert last_valid_day(date(2028, 6, 1), date(2012, 2, 29)) == date(2029, 2, 28)
    # ...and in a leap year it is 29 February itself, the last day the 28th.
    assert last_valid_day(date(2027, 5, 1), date(2011, 2, 28)) == date(2028, 2, 27)
    # A young child: one year.
    assert last_valid_day(date(2026, 11, 27), date(2020, 1, 1)) == date(2027, 11, 27)


@pytest.mark.parametrize(
    "id_number",
    [
        "450103195003081235",  # wrong check character
        "990103195003081234",  # no such province
        "45010319500230123X",  # 30 February
        "4501031950030812",  # too short
    ],
)
async def test_invalid_id_number_is_422(issuer: Issuer, id_number: str) -> None:
    user = await issuer.sign_in()
    response = await issuer.client.post(
        "/v1/family/credentials",
        headers=user,
        json={
            "name": NAME,
            "id_number": id_number,
            "relationship": "parent",
            "photo": photo_b64(),
            "face_check_token": "x",
        },
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_id_number"


async def test_a_future_birth_date_is_invalid_id_number(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    future = make_id_number(cst_today() + timedelta(days=2))
    response = await issuer.client.post(
        "/v1/family/credentials",
        headers=user,
        json={"name": NAME, "id_number": future, "relationship": "child", "photo": photo_b64()},
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_id_number"


async def test_a_lower_case_x_is_accepted_and_normalised(issuer: Issuer) -> None:
    for serial in range(100, 999):
        candidate = make_id_number(date(1948, 5, 5), serial=serial)
        if candidate.endswith("X"):
            break
    user = await issuer.sign_in()
    face = await issuer.face_token(NAME, candidate)
    response = await issuer.client.post(
        "/v1/family/credentials",
        headers=user,
        json={
            "name": NAME,
            "id_number": candidate.lower(),
            "relationship": "parent",
            "photo": photo_b64(),
            "face_check_token": face,
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["holder"]["masked_id_number"].endswith("X")


def _gif() -> str:
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    return base64.b64encode(out.getvalue()).decode()


@pytest.mark.parametrize(
    "photo",
    [
        "not base64 at all!",
        base64.b64encode(b"plain text, not an image").decode(),
        base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 50).decode(),  # a PNG header, no image
        "GIF",
        "BIG",
    ],
)
async def test_invalid_photo_is_422(issuer: Issuer, photo: str) -> None:
    if photo == "GIF":
        photo = _gif()
    if photo == "BIG":
        photo = base64.b64encode(b"\xff\xd8\xff" + b"\0" * (2 * 1024 * 1024)).decode()
    user = await issuer.sign_in()
    response = await issuer.apply(user, NAME, elder(), photo=photo)
    assert response.status_code == 422 and response.json()["code"] == "invalid_photo"


async def test_a_png_photo_is_accepted(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    response = await issuer.apply(user, NAME, elder(), photo=photo_b64("PNG"))
    assert response.status_code == 201


async def _face_failed(
    issuer: Issuer, user: dict[str, str], id_number: str, token: str | None, name: str = NAME
) -> None:
    response = await issuer.client.post(
        "/v1/family/credentials",
        headers=user,
        json={
            "name": name,
            "id_number": id_number,
            "relationship": "parent",
            "photo": photo_b64(),
            "face_check_token": token,
        },
    )
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "face_check_failed"


async def test_face_check_missing_forged_other_person_or_name(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = elder()
    await _face_failed(issuer, user, id_number, None)
    good = await issuer.face_token(NAME, id_number)
    forged = jwt.encode(
        jwt.decode(good, options={"verify_signature": False}),
        "not-the-face-check-secret-of-the-issuer",
        algorithm="HS256",
    )
    await _face_failed(issuer, user, id_number, forged)
    await _face_failed(issuer, user, id_number, good[:-4] + "AAAA")
    await _face_failed(issuer, user, id_number, await issuer.face_token(NAME, elder()))
    await _face_failed(issuer, user, id_number, await issuer.face_token("王秀华", id_number))
    # None of that spent the good token.
    response = await issuer.apply(user, NAME, id_number, face_check_token=good)
    assert response.status_code == 201


async def test_an_expired_face_check_fails(issuer: Issuer, monkeypatch: pytest.MonkeyPatch) -> None:
    real = facecheck.utcnow
    monkeypatch.setattr(facecheck, "utcnow", lambda: real() - timedelta(minutes=11))
    id_number = elder()
    stale = await issuer.face_token(NAME, id_number)
    monkeypatch.setattr(facecheck, "utcnow", real)
    await _face_failed(issuer, await issuer.sign_in(), id_number, stale)


async def test_a_face_check_is_good_for_one_application(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = elder()
    token = await issuer.face_token(NAME, id_number)
    first = await issuer.apply(user, NAME, id_number, face_check_token=token)
    assert first.status_code == 201
    deleted = await issuer.client.delete(
        f"/v1/family/credentials/{first.json()['credential_id']}", headers=user
    )
    assert deleted.status_code == 204
    await _face_failed(issuer, user, id_number, token)


async def test_credential_exists_for_the_same_person_even_from_another_user(issuer: Issuer) -> None:
    id_number = elder()
    assert (await issuer.apply(await issuer.sign_in(), NAME, id_number)).status_code == 201
    again = await issuer.apply(await issuer.sign_in(), NAME, id_number)
    assert again.status_code == 409 and again.json()["code"] == "credential_exists"


async def test_list_get_and_another_users_credential_is_404(issuer: Issuer) -> None:
    user, stranger = await issuer.sign_in(), await issuer.sign_in()
    ids = [(await issuer.apply(user, NAME, elder())).json()["credential_id"] for _ in range(2)]
    listed = (await issuer.client.get("/v1/family/credentials", headers=user)).json()
    assert [c["credential_id"] for c in listed["items"]] == ids[::-1]
    assert listed["next_cursor"] is None
    page = (
        await issuer.client.get("/v1/family/credentials", headers=user, params={"limit": 1})
    ).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    got = await issuer.client.get(f"/v1/family/credentials/{ids[0]}", headers=user)
    assert got.status_code == 200 and got.json()["credential_id"] == ids[0]
    assert (await issuer.client.get("/v1/family/credentials", headers=stranger)).json()[
        "items"
    ] == []
    for path in ("", "/qr.png", "/qr.svg", "/card.pdf"):
        response = await issuer.client.get(
            f"/v1/family/credentials/{ids[0]}{path}", headers=stranger
        )
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (
        await issuer.client.post(f"/v1/family/credentials/{ids[0]}/reissue", headers=stranger)
    ).status_code == 404
    assert (
        await issuer.client.delete(f"/v1/family/credentials/{ids[0]}", headers=stranger)
    ).status_code == 404
    assert (await issuer.client.get(f"/v1/family/credentials/{ids[0]}", headers=user)).json()[
        "status"
    ] == "active"
    assert (await issuer.client.get("/v1/family/credentials")).status_code == 401


async def test_reissue_and_revoke_publish_revocations(issuer: Issuer, nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    sub = await nc.subscribe("issuer.credential.revoked.v1")
    try:
        user = await issuer.sign_in()
        old = (await issuer.apply(user, NAME, elder())).json()
        reissued = await issuer.client.post(
            f"/v1/family/credentials/{old['credential_id']}/reissue", headers=user
        )
        assert reissued.status_code == 201
        new = reissued.json()
        assert new["version"] == 2 and new["credential_id"] != old["credential_id"]
        assert new["holder"] == old["holder"] and new["qr"] != old["qr"]
        assert (
            await issuer.client.get(f"/v1/family/credentials/{old['credential_id']}", headers=user)
        ).json()["status"] == "revoked"
        # Only the active credential can be reissued (the contract, issue 10).
        stale = await issuer.client.post(
            f"/v1/family/credentials/{old['credential_id']}/reissue", headers=user
        )
        assert stale.status_code == 409 and stale.json()["code"] == "credential_not_active"
        deleted = await issuer.client.delete(
            f"/v1/family/credentials/{new['credential_id']}", headers=user
        )
        assert deleted.status_code == 204
        seen = set()
        while len(seen) < 2:
            message = await sub.next_msg(timeout=10)
            envelope = json.loads(message.data)
            # What a consumer validates it against: the shared payload type of the subject.
            data: CredentialChanged = parse_payload(envelope["type"], envelope["data"])
            assert envelope["type"] == message.subject == "issuer.credential.revoked.v1"
            assert data["status"] == "revoked" and data["revoked_at"] is not None
            assert data["masked_name"] == "李*华" and "id_number" not in data
            seen.add(data["credential_id"])
        assert seen == {old["credential_id"], new["credential_id"]}
    finally:
        await nc.close()
    revoked = (
        await issuer.client.get("/internal/v1/revocations", headers=issuer.service_key)
    ).json()
    assert {old["credential_id"], new["credential_id"]} <= set(revoked["items"])


def _decode_pdf(pdf: bytes) -> tuple[tuple[float, float], str, str, float]:
    """Page size in mm, the QR text decoded from a 300 dpi rendering, the page text, and the
    QR's width in mm."""
    document = pdfium.PdfDocument(pdf)
    page = document[0]
    width, height = page.get_size()
    image = page.render(scale=300 / 72).to_pil()
    # QR codes only, as a gate reads them: a decoder looking for every format now and then
    # takes a run of the printed text for a one-dimensional barcode.
    found = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(found) == 1, [(f.format, f.text) for f in found]
    pos = found[0].position
    qr_width_mm = (pos.top_right.x - pos.top_left.x) / 300 * 25.4
    text = page.get_textpage().get_text_range()
    return (width * 25.4 / 72, height * 25.4 / 72), found[0].text, text, qr_width_mm


async def test_the_card_pdf_scans_back_in_both_layouts(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = elder()
    body = (await issuer.apply(user, NAME, id_number)).json()
    base = f"/v1/family/credentials/{body['credential_id']}/card.pdf"
    card = await issuer.client.get(base, headers=user)
    assert card.status_code == 200 and card.headers["content-type"] == "application/pdf"
    (w, h), qr, text, card_qr = _decode_pdf(card.content)
    assert round(w, 1) == 85.6 and round(h, 1) == 54.0
    assert qr == body["qr"]
    last_day = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).astimezone(CST)
    for wanted in (
        "广西健康码凭证",
        "李*华",
        body["holder"]["masked_id_number"],
        f"{last_day:%Y-%m-%d}",
    ):
        assert wanted in text
    assert id_number not in text and NAME not in text

    a4 = await issuer.client.get(base, headers=user, params={"layout": "a4"})
    assert a4.status_code == 200
    (w, h), qr, text, a4_qr = _decode_pdf(a4.content)
    assert round(w) == 210 and round(h) == 297
    assert qr == body["qr"] and "广西健康码凭证" in text
    # The card is printed at true size: its QR is as wide as on the ID-1 page.
    assert abs(a4_qr - card_qr) < 0.5

    bad = await issuer.client.get(base, headers=user, params={"layout": "a5"})
    assert bad.status_code == 422


async def test_qr_png_and_svg(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    body = (await issuer.apply(user, NAME, elder())).json()
    base = f"/v1/family/credentials/{body['credential_id']}"
    png = await issuer.client.get(base + "/qr.png", headers=user)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    found = zxingcpp.read_barcodes(
        Image.open(io.BytesIO(png.content)), formats=zxingcpp.BarcodeFormat.QRCode
    )
    assert [f.text for f in found] == [body["qr"]]
    # Level M, version 13 or less: the contract's promise, read off the image.
    assert found[0].ec_level == "M" and int(found[0].extra["Version"]) <= 13
    svg = await issuer.client.get(base + "/qr.svg", headers=user)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content


async def test_appeals_are_filed_and_listed_with_status(issuer: Issuer) -> None:
    user, stranger = await issuer.sign_in(), await issuer.sign_in()
    credential = (await issuer.apply(user, NAME, elder())).json()["credential_id"]
    first = await issuer.client.post(
        "/v1/appeals",
        headers=user,
        json={"category": "lost_card", "description": "卡丢了", "credential_id": credential},
    )
    assert first.status_code == 201
    assert first.json()["status"] == "open" and first.json()["appeal_id"]
    assert first.json()["created_at"].endswith("Z")
    second = await issuer.client.post(
        "/v1/appeals", headers=user, json={"category": "other", "description": "其他问题"}
    )
    assert second.status_code == 201
    listed = (await issuer.client.get("/v1/appeals", headers=user)).json()
    assert [a["appeal_id"] for a in listed["items"]] == [
        second.json()["appeal_id"],
        first.json()["appeal_id"],
    ]
    assert all(a["status"] == "open" for a in listed["items"])
    assert (await issuer.client.get("/v1/appeals", headers=stranger)).json()["items"] == []
    foreign = await issuer.client.post(
        "/v1/appeals",
        headers=stranger,
        json={"category": "wrong_status", "description": "x", "credential_id": credential},
    )
    assert foreign.status_code == 404
    bad = await issuer.client.post(
        "/v1/appeals", headers=user, json={"category": "angry", "description": "x"}
    )
    assert bad.status_code == 422
    assert (
        await issuer.client.post("/v1/appeals", json={"category": "other", "description": "x"})
    ).status_code == 401


async def test_key_rotation_keeps_old_credentials_until_retired(
    issuer_db: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = issuer_settings(issuer_db, nats_url)
    async for running in started(settings):
        user = await running.sign_in()
        old = (await running.apply(user, NAME, elder())).json()["qr"].removeprefix("GXHC1:")
    old_kid = jwt.get_unverified_header(old)["kid"]
    db = Database(settings.effective_database_url)
    async with db.sessionmaker() as session:
        new_kid = await create_key(session, SigningKey, key_sealer(settings), "credential")
        await session.commit()
    await db.dispose()
    async for running in started(settings):
        jwks = (await running.client.get("/.well-known/jwks.json")).json()
        assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
        user = await running.sign_in()
        new = (await running.apply(user, NAME, elder())).json()["qr"].removeprefix("GXHC1:")
        assert jwt.get_unverified_header(new)["kid"] == new_kid
        keyset = KeySet()
        keyset.load(jwks)
        keyset.decode(old, "credential", audience=None)
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert await keys._main(["retire", old_kid]) == 0
    async for running in started(settings):
        jwks = (await running.client.get("/.well-known/jwks.json")).json()
        assert old_kid not in {k["kid"] for k in jwks["keys"]}
        keyset = KeySet()
        keyset.load(jwks)
        with pytest.raises(InvalidToken):
            keyset.decode(old, "credential", audience=None)
        keyset.decode(new, "credential", audience=None)


async def test_dev_endpoints_are_404_outside_dev(issuer_db: str, nats_url: str) -> None:
    settings = issuer_settings(issuer_db, nats_url)
    settings = settings.model_copy(update={"app_env": "test"})
    async for running in started(settings):
        face = await running.client.post(
            "/dev/face-checks", json={"name": NAME, "id_number": elder()}
        )
        assert face.status_code == 404
        assert (await running.client.get("/dev/sms-outbox")).status_code == 404
