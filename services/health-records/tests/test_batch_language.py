"""A batch's rejected rows and a request's validation problems are told in Chinese by default
(fields in words: 身份证号码：...) and in English with `Accept-Language: en`; the codes are the
same in either language."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from health_records.testing import AUTHORITY, LAB, SERVICE, SITE, nat_row, vaccination_row
from health_records.testing import new_id_number as id_number

EN = {"Accept-Language": "en"}


def wrong_check_character() -> str:
    good = id_number()
    return good[:17] + ("0" if good[17] != "0" else "1")


def bad_nat_rows() -> list[Any]:
    missing_name = nat_row(id_number())
    del missing_name["name"]
    late = nat_row(id_number())
    late["report_time"] = "2000-01-01T00:00:00Z"
    return [
        nat_row(wrong_check_character()),
        missing_name,
        nat_row(id_number(), result="maybe"),
        late,
        "not an object",
    ]


async def rejected(hr: httpx.AsyncClient, rows: list[Any], **headers: str) -> list[dict]:
    response = await hr.post(
        "/v1/nat-results/batch", headers={**LAB, **headers}, json={"results": rows}
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 0
    return list(response.json()["rejected"])


async def test_rejected_nat_rows_are_told_in_chinese_by_default(hr: httpx.AsyncClient) -> None:
    rows = bad_nat_rows()
    chinese = await rejected(hr, rows)
    assert [(r["index"], r["code"], r["detail"]) for r in chinese] == [
        (0, "invalid_id_number", "身份证号码：不是有效的身份证号码：校验码错误"),
        (1, "missing", "姓名：必须填写"),
        (2, "invalid_value", "检测结果：应为以下之一：negative、positive"),
        (3, "invalid_value", "该行：报告时间早于采样时间"),
        (4, "invalid_value", "该行：应为 JSON 对象"),
    ]
    assert rows[0]["id_number"] not in str(chinese)


async def test_rejected_nat_rows_in_english_on_request(hr: httpx.AsyncClient) -> None:
    english = await rejected(hr, bad_nat_rows(), **{"Accept-Language": "en-GB,en;q=0.8"})
    assert [(r["index"], r["code"], r["detail"]) for r in english] == [
        (0, "invalid_id_number", "ID number: Not a valid identity number: wrong check character"),
        (1, "missing", "Name: Field required"),
        (2, "invalid_value", "Result: Input should be 'negative' or 'positive'"),
        (3, "invalid_value", "Row: The report time is before the sample time"),
        (4, "invalid_value", "Row: Input should be an object"),
    ]
    # The next request without the header is Chinese again.
    assert (await rejected(hr, bad_nat_rows()[1:2]))[0]["detail"] == "姓名：必须填写"


async def test_rejected_vaccination_rows_in_either_language(hr: httpx.AsyncClient) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    rows = [
        vaccination_row(id_number(), dose=0),
        vaccination_row(id_number(), administered_at=future),
        vaccination_row(id_number(), site="青秀区\t接种点"),
    ]
    answers = []
    for headers in ({}, EN):
        response = await hr.post(
            "/v1/vaccinations/batch", headers={**SITE, **headers}, json={"records": rows}
        )
        assert response.status_code == 200, response.text
        answers.append([r["detail"] for r in response.json()["rejected"]])
    assert answers == [
        ["接种剂次：应大于或等于 1", "该行：接种时间晚于当前时间", "接种点：含有不允许的控制字符"],
        [
            "Dose number: Input should be greater than or equal to 1",
            "Row: The administration time is in the future",
            "Site: Contains control characters that are not allowed",
        ],
    ]


async def test_a_batch_body_of_the_wrong_shape_in_either_language(hr: httpx.AsyncClient) -> None:
    for body, code in (({"rows": []}, "missing"), ({"results": {}}, "invalid_value")):
        zh = await hr.post("/v1/nat-results/batch", headers=LAB, json=body)
        en = await hr.post("/v1/nat-results/batch", headers={**LAB, **EN}, json=body)
        assert zh.status_code == en.status_code == 422
        assert zh.json()["errors"][0]["code"] == en.json()["errors"][0]["code"] == code
        assert zh.json()["detail"].startswith("核酸检测结果：")
        assert zh.json()["errors"][0]["message"] in zh.json()["detail"]
        assert en.json()["detail"].startswith("Results: ")
        assert en.json()["detail"].isascii() and en.json()["errors"][0]["message"].isascii()
    junk = await hr.post(
        "/v1/nat-results/batch",
        headers={**LAB, "content-type": "application/json"},
        content=b"{not json",
    )
    assert junk.status_code == 422 and junk.json()["detail"] == "请求体：不是有效的 JSON"


async def test_a_code_set_with_bad_fields_names_them_in_words(hr: httpx.AsyncClient) -> None:
    body = {"id_number": wrong_check_character(), "color": "blue", "reason": ""}
    zh = await hr.post("/v1/codes", headers=AUTHORITY, json=body)
    en = await hr.post("/v1/codes", headers={**AUTHORITY, **EN}, json=body)
    assert zh.status_code == en.status_code == 422
    assert zh.json()["code"] == en.json()["code"] == "invalid_id_number"
    assert zh.json()["detail"] == (
        "身份证号码：不是有效的身份证号码：校验码错误；"
        "码色：应为以下之一：green、yellow、red；原因：至少 1 个字符"
    )
    assert en.json()["detail"] == (
        "ID number: Not a valid identity number: wrong check character; "
        "Colour: Input should be 'green', 'yellow' or 'red'; "
        "Reason: String should have at least 1 character"
    )
    assert [e["field"] for e in zh.json()["errors"]] == ["id_number", "color", "reason"]


async def test_a_path_that_is_not_an_id_is_a_404_in_either_language(
    hr: httpx.AsyncClient,
) -> None:
    zh = await hr.get("/internal/v1/subjects/not-an-id/status", headers=SERVICE)
    en = await hr.get("/internal/v1/subjects/not-an-id/status", headers={**SERVICE, **EN})
    assert zh.status_code == en.status_code == 404
    assert (zh.json()["title"], en.json()["title"]) == ("资源不存在", "Not found")
