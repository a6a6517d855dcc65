"""The internal endpoints (service key): a credential as the verifier keeps it, the revocations
of its cold start, and the user of a phone number."""

import random
from datetime import date, timedelta

import jwt

from hc_common.events.schemas import CredentialChanged, parse_payload
from hc_common.testing import make_id_number, make_phone

from .conftest import Issuer

NAME = "李秀华"


def elder() -> str:
    return make_id_number(date(1930, 1, 1) + timedelta(days=random.randrange(10_000)))


async def test_a_credential_as_the_verifier_keeps_it(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    id_number = elder()
    applied = (await issuer.apply(user, NAME, id_number)).json()
    response = await issuer.client.get(
        f"/internal/v1/credentials/{applied['credential_id']}", headers=issuer.service_key
    )
    assert response.status_code == 200
    data: CredentialChanged = parse_payload("issuer.credential.issued.v1", response.json())
    assert data["credential_id"] == applied["credential_id"] and data["version"] == 1
    assert data["status"] == "active" and data["revoked_at"] is None
    assert data["masked_name"] == "李*华"
    assert data["masked_id_number"] == applied["holder"]["masked_id_number"]
    assert data["birth_date"] == date(
        int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14])
    )
    assert id_number not in response.text and NAME not in response.text

    missing = await issuer.client.get(
        "/internal/v1/credentials/01jz0000000000000000000000", headers=issuer.service_key
    )
    assert missing.status_code == 404
    no_key = await issuer.client.get(f"/internal/v1/credentials/{applied['credential_id']}")
    assert no_key.status_code == 401


async def test_revocations_page_through_every_revoked_credential(issuer: Issuer) -> None:
    user = await issuer.sign_in()
    ids = [(await issuer.apply(user, NAME, elder())).json()["credential_id"] for _ in range(4)]
    for credential_id in ids[:3]:
        deleted = await issuer.client.delete(
            f"/v1/family/credentials/{credential_id}", headers=user
        )
        assert deleted.status_code == 204
    pages, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 1}
        if cursor:
            params["after"] = cursor
        page = (
            await issuer.client.get(
                "/internal/v1/revocations", params=params, headers=issuer.service_key
            )
        ).json()
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert all(len(items) == 1 for items in pages)  # no empty page at the end
    revoked = [credential_id for items in pages for credential_id in items]
    assert revoked == sorted(revoked) and len(set(revoked)) == len(revoked)
    assert set(ids[:3]) <= set(revoked) and ids[3] not in revoked


async def test_resolve_user_is_the_user_who_signs_in_with_that_number(issuer: Issuer) -> None:
    phone = make_phone()
    first = await issuer.client.post(
        "/internal/v1/users/resolve", json={"phone": phone}, headers=issuer.service_key
    )
    assert first.status_code == 200
    assert first.json()["masked_phone"] == phone[:3] + "****" + phone[-4:]
    again = await issuer.client.post(
        "/internal/v1/users/resolve", json={"phone": phone}, headers=issuer.service_key
    )
    assert again.json() == first.json()
    token = (await issuer.sign_in(phone))["Authorization"].removeprefix("Bearer ")
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == first.json()["user_id"]
