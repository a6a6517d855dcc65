"""The contract's scan section, end to end over HTTP against the four real processes."""

import base64
from datetime import UTC, date, datetime, timedelta

import pytest

from hc_common.testing import make_id_number, make_phone, poll
from tests.conftest import Api, own_stack
from tests.journeys import AUTHORITY, apply_for, open_venue, sign_in

pytestmark = pytest.mark.e2e
LAB = {"Authorization": "Bearer dev-lab-key"}
# How long a test waits for a change to reach the verifier (the contract's 2 s, with room).
EVENTS = 5.0


def apply(api: Api, birth: date = date(1950, 3, 8)) -> tuple[dict, str]:
    family = sign_in(api.issuer, make_phone())
    id_number = make_id_number(birth)
    applied = apply_for(api.issuer, family, id_number)
    assert applied.status_code == 201, applied.text
    return {**applied.json(), "_family": family}, id_number


def venue(api: Api) -> tuple[str, dict[str, str]]:
    admin = sign_in(api.issuer, make_phone())
    return open_venue(api.venue_admin, admin), admin


@pytest.fixture(scope="module")
def place(api: Api) -> tuple[str, dict[str, str]]:
    return venue(api)


def verify(api: Api, headers: dict[str, str], qr: str, venue_id: str | None, **extra: str):
    body = {"qr": qr, "venue_id": venue_id} if venue_id else {"qr": qr}
    return api.verifier.post("/v1/verify", headers={**headers, **extra}, json=body)


def test_pass_has_the_contract_shape(api: Api, place) -> None:
    venue_id, admin = place
    credential, id_number = apply(api)
    answer = verify(api, admin, credential["qr"], venue_id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] == "pass" and body["reasons"] == [] and body["stale"] is False
    assert body["holder"] == {
        "masked_name": "李*华",
        "masked_id_number": id_number[:6] + "********" + id_number[-4:],
        "age": credential["holder"]["age"],
    }
    assert body["health"] == {"color": "green", "nat": None, "vaccination": None}
    assert body["credential"] == {
        "credential_id": credential["credential_id"],
        "version": 1,
        "expires_at": credential["expires_at"],
    }
    assert body["record_id"] and body["checked_at"].endswith("Z")
    assert body["lines"] == ["李*华", "绿码", "无核酸记录", "通行"]


def test_colours_nat_and_vaccination_against_the_rule(api: Api) -> None:
    venue_id, admin = venue(api)
    credential, id_number = apply(api)
    scan = lambda: verify(api, admin, credential["qr"], venue_id).json()  # noqa: E731

    def rule(**body: object) -> None:
        full = {"allowed_colors": ["green"], "max_nat_age_hours": None, "min_vaccine_doses": 0}
        put = api.venue_admin.put(
            f"/v1/venues/{venue_id}/rule", headers=admin, json={**full, **body}
        )
        assert put.status_code == 200, put.text

    assert scan()["decision"] == "pass"
    rule(max_nat_age_hours=48, min_vaccine_doses=2)
    assert poll(lambda: scan()["reasons"] == ["nat_missing", "vaccination_insufficient"], EVENTS)

    sampled = datetime.now(UTC) - timedelta(hours=50, minutes=30)
    lab = api.health_records.post(
        "/v1/nat-results/batch",
        headers=LAB,
        json={
            "results": [
                {
                    "report_id": make_phone(),
                    "id_number": id_number,
                    "name": "李秀华",
                    "sample_time": sampled.isoformat().replace("+00:00", "Z"),
                    "report_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "result": "negative",
                    "institution": "lab",
                }
            ]
        },
    )
    assert lab.status_code == 200 and lab.json()["accepted"] == 1, lab.text
    body = poll(lambda: (b := scan())["health"]["nat"] and b, EVENTS)
    assert body["reasons"] == ["nat_too_old", "vaccination_insufficient"]
    assert body["health"]["nat"]["hours_since_sample"] == 50  # 50.5 h rounds down

    assert (
        api.health_records.post(
            "/v1/codes",
            headers=AUTHORITY,
            json={"id_number": id_number, "color": "yellow", "reason": "x"},
        ).status_code
        == 200
    )
    assert poll(
        lambda: scan()["reasons"] == ["color_yellow", "nat_too_old", "vaccination_insufficient"],
        EVENTS,
    )
    rule(allowed_colors=["green", "yellow"])
    assert poll(lambda: scan()["decision"] == "pass", EVENTS)
    assert (
        api.health_records.post(
            "/v1/codes",
            headers=AUTHORITY,
            json={"id_number": id_number, "color": "red", "reason": "x"},
        ).status_code
        == 200
    )
    assert poll(lambda: scan()["reasons"] == ["color_red"], EVENTS)
    rule(allowed_colors=["green", "yellow", "red"])
    assert poll(lambda: scan()["decision"] == "pass", EVENTS)

    positive = api.health_records.post(
        "/v1/nat-results/batch",
        headers=LAB,
        json={
            "results": [
                {
                    "report_id": make_phone(),
                    "id_number": id_number,
                    "name": "李秀华",
                    "sample_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "report_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "result": "positive",
                    "institution": "lab",
                }
            ]
        },
    )
    assert positive.status_code == 200
    # Positive whatever the rule (red allowed here): nat_positive alone.
    body = poll(lambda: (b := scan())["reasons"] == ["nat_positive"] and b, EVENTS)
    assert body and body["decision"] == "deny" and body["health"]["color"] == "red"


def test_revoked_credential_is_denied_without_holder(api: Api, place) -> None:
    venue_id, admin = place
    credential, _ = apply(api)
    deleted = api.issuer.delete(
        f"/v1/family/credentials/{credential['credential_id']}", headers=credential["_family"]
    )
    assert deleted.status_code == 204
    body = poll(
        lambda: (
            (b := verify(api, admin, credential["qr"], venue_id).json())["reasons"]
            == ["credential_revoked"]
            and b
        ),
        EVENTS,
    )
    assert body["decision"] == "deny" and body["holder"] is None and body["health"] is None


def _tamper(qr: str) -> str:
    header, payload, signature = qr[len("GXHC1:") :].split(".")
    claims = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    forged = base64.urlsafe_b64encode(claims.replace(b'"ver":1', b'"ver":2')).rstrip(b"=")
    return "GXHC1:" + ".".join([header, forged.decode(), signature])


def test_invalid_credentials(api: Api, place) -> None:
    venue_id, admin = place
    credential, _ = apply(api)
    qr = credential["qr"]
    header, payload, signature = qr[len("GXHC1:") :].split(".")
    bad_signature = signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")
    unknown_kid = base64.urlsafe_b64encode(b'{"alg":"EdDSA","kid":"cNOSUCHKEY"}').rstrip(b"=")
    for text in (
        qr.replace("GXHC1:", "GXHC2:"),
        "hello",
        _tamper(qr),
        f"GXHC1:{header}.{payload}.{bad_signature}",
        f"GXHC1:{unknown_kid.decode()}.{payload}.{signature}",
    ):
        body = verify(api, admin, text, venue_id).json()
        assert body["decision"] == "deny" and body["reasons"] == ["credential_invalid"], text
        assert body["holder"] is None and body["health"] is None


def test_request_faults(api: Api, place) -> None:
    venue_id, admin = place
    credential, _ = apply(api)
    qr = credential["qr"]
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        credential["_family"]
        | {"Authorization": credential["_family"]["Authorization"][:-3] + "xyz"},
    ):
        answer = verify(api, headers, qr, venue_id)
        assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"
        assert answer.headers["content-type"] == "application/problem+json"
    # A signed-in user who is not a member of the venue.
    stranger = verify(api, credential["_family"], qr, venue_id)
    assert stranger.status_code == 403 and stranger.json()["code"] == "forbidden"
    unknown = verify(api, admin, qr, "01nosuchvenue000000000000")
    assert unknown.status_code == 404
    for body in ({"venue_id": venue_id}, {"qr": 5, "venue_id": venue_id}, [], {"qr": ""}):
        bad = api.verifier.post("/v1/verify", headers=admin, json=body)
        assert bad.status_code == 422 and bad.json()["errors"], body
    no_venue = api.verifier.post("/v1/verify", headers=admin, json={"qr": qr})
    assert no_venue.status_code == 422 and no_venue.json()["errors"][0]["field"] == "venue_id"


def test_reverse_scan_permission_taken_away(api: Api) -> None:
    venue_id, admin = venue(api)
    credential, _ = apply(api)
    phone = make_phone()
    api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins/code", headers=admin, json={"phone": phone}
    )
    code = api.venue_admin.get("/dev/sms-outbox", params={"phone": phone}).json()["messages"][0][
        "code"
    ]
    member = api.venue_admin.post(
        f"/v1/venues/{venue_id}/sub-admins", headers=admin, json={"phone": phone, "code": code}
    ).json()
    staff = sign_in(api.issuer, phone)
    assert poll(lambda: verify(api, staff, credential["qr"], venue_id).status_code == 200, EVENTS)
    put = api.venue_admin.put(
        f"/v1/venues/{venue_id}/members/{member['user_id']}/permissions",
        headers=admin,
        json={"permissions": []},
    )
    assert put.status_code == 200
    assert poll(
        lambda: verify(api, staff, credential["qr"], venue_id).status_code == 403, timeout=2.5
    )


def device(api: Api, venue_id: str, admin: dict[str, str]) -> dict[str, str]:
    made = api.venue_admin.post(
        f"/v1/venues/{venue_id}/devices",
        headers=admin,
        json={"name": "北门1号闸机", "manufacturer": "m", "model": "g1"},
    )
    assert made.status_code == 201, made.text
    token = api.venue_admin.post("/v1/devices/token", json=made.json())
    assert token.status_code == 200, token.text
    return {"Authorization": "Bearer " + token.json()["access_token"]}


def test_gate_verify_and_devices(api: Api) -> None:
    venue_id, admin = venue(api)
    other_venue, _ = venue(api)
    gate = device(api, venue_id, admin)
    credential, _ = apply(api)
    answer = poll(
        lambda: (
            (
                r := api.verifier.post(
                    "/v1/gate/verify", headers=gate, json={"qr": credential["qr"]}
                )
            ).status_code
            == 200
            and r
        ),
        EVENTS,
    )
    assert answer, "gate scan"
    assert answer.json()["open"] is True and answer.json()["decision"] == "pass"
    assert answer.json()["lines"] == ["李*华", "绿码", "无核酸记录", "通行"]
    assert answer.json()["color"] == "green" and answer.json()["record_id"]
    english = api.verifier.post(
        "/v1/gate/verify", json={"qr": "nope"}, headers={**gate, "Accept-Language": "en"}
    ).json()
    assert english["open"] is False and english["lines"] == ["Invalid credential", "No entry"]
    # /v1/verify with a device token: venue_id optional; another venue's id is 403.
    assert verify(api, gate, credential["qr"], None).json()["decision"] == "pass"
    assert verify(api, gate, credential["qr"], other_venue).status_code == 403
    # A user token on the gate endpoint: a valid token that is not a device's (403).
    as_user = api.verifier.post(
        "/v1/gate/verify", headers=credential["_family"], json={"qr": credential["qr"]}
    )
    assert as_user.status_code == 403 and as_user.json()["code"] == "forbidden"


def test_lines_are_the_gates_in_either_language(api: Api) -> None:
    """`/v1/verify`'s `lines` are what a gate's screen shows for the same card (the staff
    page shows them): a pass, a denial with its reason's words, English on asking."""
    venue_id, admin = venue(api)
    gate = device(api, venue_id, admin)
    credential, id_number = apply(api)

    def both(**headers: str) -> tuple[list[str], list[str]]:
        staff = verify(api, admin, credential["qr"], venue_id, **headers)
        at_gate = api.verifier.post(
            "/v1/gate/verify", headers={**gate, **headers}, json={"qr": credential["qr"]}
        )
        assert staff.status_code == 200 and at_gate.status_code == 200, at_gate.text
        return staff.json()["lines"], at_gate.json()["lines"]

    # A new gate's token is accepted once the verifier has heard of the device.
    assert poll(
        lambda: (
            api.verifier.post(
                "/v1/gate/verify", headers=gate, json={"qr": credential["qr"]}
            ).status_code
            == 200
        ),
        EVENTS,
    )
    passed = both()
    assert passed[0] == passed[1] == ["李*华", "绿码", "无核酸记录", "通行"]
    assert (
        both(**{"Accept-Language": "en-GB,en;q=0.9"})
        == (["李*华", "Green code", "No NAT result", "Pass"],) * 2
    )
    red = api.health_records.post(
        "/v1/codes", headers=AUTHORITY, json={"id_number": id_number, "color": "red", "reason": "x"}
    )
    assert red.status_code == 200, red.text
    denied = poll(lambda: (b := both())[0][-1] == "禁止通行" and b, EVENTS)
    assert denied and denied[0] == denied[1] == ["李*华", "红码", "无核酸记录", "禁止通行"]
    english = both(**{"Accept-Language": "en"})
    assert english[0] == english[1] == ["李*华", "Red code", "No NAT result", "No entry"]
    invalid = verify(api, admin, "GXHC1:not.a.credential", venue_id, **{"Accept-Language": "en"})
    assert invalid.json()["lines"] == ["Invalid credential", "No entry"]


def test_manual_check_lines_with_health_records_down() -> None:
    """A status the verifier never had, with health-records down: `manual_check`, said in
    words, once and last (a stack of its own: a process is stopped)."""
    with own_stack("verifier-scan-lines") as (stack, api):
        venue_id, admin = venue(api)
        credential, _ = apply(api)  # issued, its status never asked for
        stack.stop_process("health-records")
        body = verify(api, admin, credential["qr"], venue_id).json()
        assert body["decision"] == "manual_check" and body["reasons"] == ["status_unavailable"]
        assert body["lines"] == ["李*华", "健康状态暂不可查", "人工核验"]
        english = verify(api, admin, credential["qr"], venue_id, **{"Accept-Language": "en"})
        assert english.json()["lines"] == ["李*华", "Health status unavailable", "Manual check"]


def test_scan_routes_keep_the_documented_surface(api: Api, place) -> None:
    """The scan endpoints answer from direct routes ahead of the middleware stack
    (`hc_common.app.ServiceApp`): they are still described, counted by route in the metrics,
    and refuse other methods as before."""
    venue_id, admin = place
    credential, _ = apply(api)
    assert verify(api, admin, credential["qr"], venue_id).status_code == 200
    document = api.verifier.get("/openapi.json").json()
    assert {"post"} == set(document["paths"]["/v1/verify"])
    assert {"post"} == set(document["paths"]["/v1/gate/verify"])
    wrong = api.verifier.get("/v1/verify")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"].startswith("application/problem+json")
    metrics = api.verifier.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/v1/verify",status="200"}' in metrics
