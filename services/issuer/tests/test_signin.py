"""Contract, Sign-in: codes, limits with Retry-After, 5 wrong tries, tokens, JWKS, SMS gateway."""

import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

import hc_common.otp.senders as otp_senders
import hc_common.otp.service as otp_service
from hc_common.auth.tokens import KeySet
from hc_common.otp import HttpSmsSender
from hc_common.testing import make_phone

from .conftest import Issuer


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # Noon China time: the whole test stays inside one CST calendar day.
    fake = Clock(datetime.now(UTC).replace(hour=4, minute=0, second=0, microsecond=0))
    monkeypatch.setattr(otp_service, "utcnow", fake)
    monkeypatch.setattr(otp_senders, "utcnow", fake)
    return fake


async def latest_code(issuer: Issuer, phone: str) -> str:
    response = await issuer.client.get("/dev/sms-outbox", params={"phone": phone})
    return str(response.json()["messages"][0]["code"])


async def test_otp_is_202_with_a_six_digit_code_living_five_minutes(issuer: Issuer) -> None:
    phone = make_phone()
    response = await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    assert response.status_code == 202
    assert response.json() == {"expires_in": 300}
    code = await latest_code(issuer, phone)
    assert len(code) == 6 and code.isdigit()


@pytest.mark.parametrize(
    "phone", ["12345", "23800138000", "1380013800", "138001380000", "1380013800a"]
)
async def test_a_non_mainland_mobile_number_is_invalid_phone(issuer: Issuer, phone: str) -> None:
    response = await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_phone"


async def test_a_second_code_within_a_minute_is_429_with_retry_after(
    issuer: Issuer, clock: Clock
) -> None:
    phone = make_phone()
    assert (await issuer.client.post("/v1/auth/otp", json={"phone": phone})).status_code == 202
    clock.now += timedelta(seconds=20)
    again = await issuer.client.post(
        "/v1/auth/otp", json={"phone": phone}, headers={"Accept-Language": "en"}
    )
    assert again.status_code == 429
    assert again.json()["code"] == "too_many_requests"
    assert again.json()["title"] == "Too many requests"
    assert again.headers["Retry-After"] == "40"
    clock.now += timedelta(seconds=41)
    assert (await issuer.client.post("/v1/auth/otp", json={"phone": phone})).status_code == 202


async def test_the_eleventh_code_of_a_day_is_429_until_midnight_china_time(
    issuer: Issuer, clock: Clock
) -> None:
    phone = make_phone()
    for _ in range(10):
        assert (await issuer.client.post("/v1/auth/otp", json={"phone": phone})).status_code == 202
        clock.now += timedelta(minutes=2)
    eleventh = await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    assert eleventh.status_code == 429 and eleventh.json()["code"] == "too_many_requests"
    # Noon + 20 minutes China time: the limit lifts at the next CST midnight.
    assert int(eleventh.headers["Retry-After"]) == (12 * 60 - 20) * 60
    other = await issuer.client.post("/v1/auth/otp", json={"phone": make_phone()})
    assert other.status_code == 202


async def test_token_for_the_right_code_and_the_first_sign_in_creates_the_user(
    issuer: Issuer, clock: Clock
) -> None:
    phone = make_phone()
    await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    code = await latest_code(issuer, phone)
    first = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert first.status_code == 200
    body = first.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 7200 and body["user_id"]
    clock.now += timedelta(minutes=2)
    await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    code = await latest_code(issuer, phone)
    second = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert second.json()["user_id"] == body["user_id"]

    # The token verifies against the published key set, by its kid, and lives 2 hours.
    jwks = (await issuer.client.get("/.well-known/jwks.json")).json()
    keyset = KeySet()
    keyset.load(jwks)
    claims = keyset.decode(body["access_token"], "access")
    assert claims["sub"] == body["user_id"] and claims["exp"] - claims["iat"] == 7200
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    assert {"kid": kid, "purpose": "access", "alg": "EdDSA"}.items() <= next(
        k for k in jwks["keys"] if k["kid"] == kid
    ).items()
    assert phone not in json.dumps(claims)


async def test_a_used_code_does_not_sign_in_twice(issuer: Issuer) -> None:
    phone = make_phone()
    await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    code = await latest_code(issuer, phone)
    assert (
        await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    ).status_code == 200
    again = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert again.status_code == 401 and again.json()["code"] == "invalid_code"


async def test_five_wrong_tries_kill_the_code(issuer: Issuer) -> None:
    phone = make_phone()
    await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    code = await latest_code(issuer, phone)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        response = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": wrong})
        assert response.status_code == 401 and response.json()["code"] == "invalid_code"
    dead = await issuer.client.post(
        "/v1/auth/token", json={"phone": phone, "code": code}, headers={"Accept-Language": "en"}
    )
    assert dead.status_code == 401 and dead.json()["code"] == "invalid_code"
    assert dead.json()["title"] == "Wrong or expired code"


async def test_four_wrong_tries_leave_the_code_usable(issuer: Issuer) -> None:
    phone = make_phone()
    await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    code = await latest_code(issuer, phone)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(4):
        await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": wrong})
    ok = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert ok.status_code == 200


async def test_an_expired_code_is_invalid_code(issuer: Issuer, clock: Clock) -> None:
    phone = make_phone()
    await issuer.client.post("/v1/auth/otp", json={"phone": phone})
    code = await latest_code(issuer, phone)
    clock.now += timedelta(minutes=5, seconds=1)
    response = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert response.status_code == 401 and response.json()["code"] == "invalid_code"


async def test_a_number_that_never_asked_is_invalid_code(issuer: Issuer) -> None:
    response = await issuer.client.post(
        "/v1/auth/token", json={"phone": make_phone(), "code": "123456"}
    )
    assert response.status_code == 401 and response.json()["code"] == "invalid_code"


async def test_http_sms_sender_posts_phone_template_and_code_with_the_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sender = HttpSmsSender(client, "https://sms.example/send", "k-123", "HC_SIGNIN")
        await sender.send(None, "13800138000", "654321")  # type: ignore[arg-type]
    assert len(seen) == 1
    assert str(seen[0].url) == "https://sms.example/send"
    assert seen[0].headers["Authorization"] == "Bearer k-123"
    assert json.loads(seen[0].content) == {
        "phone": "13800138000",
        "template": "HC_SIGNIN",
        "params": {"code": "654321"},
    }


async def test_the_sms_gateway_is_used_and_its_failure_is_503_not_a_spent_limit(
    issuer: Issuer,
) -> None:
    state = issuer.app.state
    status = {"code": 500}
    sent: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if status["code"] == 200:
            sent.append(json.loads(request.content))
        return httpx.Response(status["code"])

    dev_sender = state.otp.sender
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        state.otp.sender = HttpSmsSender(client, "https://sms.example/send", "k", "T1")
        try:
            phone = make_phone()
            failed = await issuer.client.post("/v1/auth/otp", json={"phone": phone})
            assert failed.status_code == 503 and failed.json()["code"] == "service_unavailable"
            status["code"] = 200
            ok = await issuer.client.post("/v1/auth/otp", json={"phone": phone})
            assert ok.status_code == 202
        finally:
            state.otp.sender = dev_sender
    assert len(sent) == 1 and sent[0]["phone"] == phone and sent[0]["template"] == "T1"
    code = sent[0]["params"]["code"]  # type: ignore[index]
    token = await issuer.client.post("/v1/auth/token", json={"phone": phone, "code": code})
    assert token.status_code == 200
