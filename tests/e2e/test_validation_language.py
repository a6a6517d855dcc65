"""Each service, as a process, tells a bad body, a bad query and a bad path in Chinese by
default (the fields in words: 手机号码：...) and in English with `Accept-Language: en`; the
codes and the machine paths (`errors[].field`) are the same in either language."""

import re
from typing import Any

import httpx
import pytest

from hc_common.testing import make_phone
from tests.conftest import Api
from tests.journeys import AUTHORITY, sign_in

pytestmark = pytest.mark.e2e

EN = {"Accept-Language": "en"}
CJK = re.compile(r"[\u4e00-\u9fff]")
SERVICE = {"Authorization": "Bearer dev-service-key"}


def both(send: Any, headers: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The same request in Chinese (no Accept-Language) and in English: the two problems."""
    zh: httpx.Response = send(headers)
    en: httpx.Response = send({**headers, **EN})
    assert zh.status_code == en.status_code, (zh.text, en.text)
    assert zh.headers["content-type"] == "application/problem+json"
    chinese, english = zh.json(), en.json()
    assert chinese["code"] == english["code"]
    assert chinese.get("errors", []) == [
        {**e, "message": z["message"]}
        for e, z in zip(english.get("errors", []), chinese.get("errors", []), strict=True)
    ], "the same fields and codes"
    assert CJK.search(chinese["title"]) and CJK.search(chinese["detail"])
    assert english["title"].isascii() and english["detail"].isascii()
    for error in chinese.get("errors", []):
        assert CJK.search(error["message"]), error
    return chinese, english


@pytest.fixture(scope="module")
def user(api: Api) -> dict[str, str]:
    return sign_in(api.issuer, make_phone())


def test_issuer(api: Api, user: dict[str, str]) -> None:
    zh, en = both(lambda h: api.issuer.post("/v1/auth/otp", headers=h, json={"phone": "12"}), {})
    assert zh["code"] == "invalid_phone" and zh["errors"][0]["field"] == "phone"
    assert zh["detail"] == "手机号码：不是中国大陆手机号码（以 1 开头的 11 位数字）"
    assert en["detail"] == "Phone number: Not a mainland mobile number (11 digits starting with 1)"

    zh, en = both(
        lambda h: api.issuer.get("/v1/family/credentials", headers=h, params={"limit": 0}), user
    )
    assert zh["code"] == "validation_error" and zh["errors"][0]["field"] == "limit"
    assert zh["detail"] == "每页条数：应大于或等于 1"
    assert en["detail"] == "Limit: Input should be greater than or equal to 1"

    zh, en = both(lambda h: api.issuer.get("/v1/family/credentials/0000", headers=h), user)
    assert zh["code"] == "not_found" and (zh["title"], en["title"]) == ("资源不存在", "Not found")


def test_venue_admin(api: Api, user: dict[str, str]) -> None:
    venue = {"name": "", "category": "zoo", "address": "青秀区", "region_code": "990000"}
    zh, en = both(lambda h: api.venue_admin.post("/v1/venues", headers=h, json=venue), user)
    assert zh["code"] == "invalid_region_code"
    assert [e["field"] for e in zh["errors"]] == ["name", "category", "region_code"]
    assert zh["detail"].startswith("名称：至少 1 个字符；类别：应为以下之一：")
    assert "行政区划代码：应为省级行政区的 6 位行政区划代码" in zh["detail"]
    assert en["detail"].startswith("Name: String should have at least 1 character; Category: ")

    zh, en = both(lambda h: api.venue_admin.get("/v1/venues?limit=501", headers=h), user)
    assert zh["detail"] == "每页条数：应小于或等于 500"
    assert en["detail"] == "Limit: Input should be less than or equal to 500"

    zh, en = both(lambda h: api.venue_admin.get("/v1/venues/not-an-id", headers=h), user)
    assert zh["code"] == "not_found" and (zh["title"], en["title"]) == ("资源不存在", "Not found")


def test_health_records(api: Api) -> None:
    body = {"id_number": "110105194912310021", "color": "blue", "reason": "x"}
    zh, en = both(lambda h: api.health_records.post("/v1/codes", headers=h, json=body), AUTHORITY)
    assert zh["code"] == "invalid_id_number"
    assert zh["detail"] == (
        "身份证号码：不是有效的身份证号码：校验码错误；码色：应为以下之一：green、yellow、red"
    )
    assert en["detail"].startswith("ID number: Not a valid identity number: wrong check")

    zh, en = both(
        lambda h: api.health_records.post(
            "/internal/v1/statuses", headers=h, json={"subject_ids": ["x"] * 10001}
        ),
        SERVICE,
    )
    assert zh["errors"][0]["field"] == "subject_ids"
    assert zh["detail"] == "主体编号列表：最多 10000 项"

    zh, en = both(
        lambda h: api.health_records.get("/internal/v1/subjects/0000/status", headers=h), SERVICE
    )
    assert zh["code"] == "not_found" and (zh["title"], en["title"]) == ("资源不存在", "Not found")


def test_verifier(api: Api, user: dict[str, str]) -> None:
    zh, en = both(lambda h: api.verifier.post("/v1/verify", headers=h, json={"qr": 5}), user)
    assert [e["field"] for e in zh["errors"]] == ["qr"]
    assert zh["detail"] == "二维码内容：应为字符串"
    assert en["detail"] == "QR code: Input should be a valid string"

    zh, en = both(lambda h: api.verifier.post("/v1/verify", headers=h, json={}), user)
    assert zh["errors"] == [{"field": "qr", "code": "missing", "message": "必须填写"}]
    assert (zh["detail"], en["detail"]) == ("二维码内容：必须填写", "QR code: Field required")

    zh, en = both(lambda h: api.verifier.post("/v1/verify?x=1", headers=h, content=b"{"), user)
    assert zh["detail"] == "请求体：不是有效的 JSON"
