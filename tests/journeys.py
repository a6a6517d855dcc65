"""What a user does over HTTP, step by step, for the end-to-end tests and the benchmarks."""

import httpx

from hc_common.testing import PHOTO_PNG

AUTHORITY = {"Authorization": "Bearer dev-authority-key"}


def sign_in(client: httpx.Client, phone: str) -> dict[str, str]:
    """Sign in at the issuer with the code from its dev SMS outbox; the bearer header."""
    assert client.post("/v1/auth/otp", json={"phone": phone}).status_code == 202
    messages = client.get("/dev/sms-outbox", params={"phone": phone}).json()["messages"]
    code = messages[0]["code"]
    response = client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def apply_for(
    issuer: httpx.Client,
    family: dict[str, str],
    id_number: str,
    name: str = "李秀华",
    relationship: str = "grandparent",
) -> httpx.Response:
    """The dev face check, then the application with its token: the issuer's answer."""
    face = issuer.post("/dev/face-checks", json={"name": name, "id_number": id_number})
    assert face.status_code == 200, face.text
    return issuer.post(
        "/v1/family/credentials",
        headers=family,
        json={
            "name": name,
            "id_number": id_number,
            "relationship": relationship,
            "photo": PHOTO_PNG,
            "face_check_token": face.json()["face_check_token"],
        },
    )


def open_venue(venue_admin: httpx.Client, admin: dict[str, str], name: str = "南宁东站") -> str:
    """A venue of the signed-in `admin` (its main admin): the venue's id."""
    made = venue_admin.post(
        "/v1/venues",
        headers=admin,
        json={
            "name": name,
            "category": "train_station",
            "address": "青秀区",
            "region_code": "450103",
        },
    )
    assert made.status_code == 201, made.text
    return str(made.json()["venue_id"])


def access_record_ids(venue_admin: httpx.Client, venue_id: str, admin: dict[str, str]) -> list[str]:
    """Every access record id venue-admin holds for the venue, page by page (repeats kept)."""
    records: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = venue_admin.get(
            f"/v1/venues/{venue_id}/access-records", headers=admin, params=params
        ).json()
        records += [item["record_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            return records
