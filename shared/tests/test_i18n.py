"""The translation table: every validation error a service can answer with reads in Chinese by
default (its values filled in, the field in words) and in English on request; never
Pydantic's English unless asked for."""

import re
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from pydantic_core import core_schema

from hc_common.app import create_service_app
from hc_common.errors import MESSAGES, register_messages, title_for
from hc_common.hygiene import EntityId, FreeText, Text
from hc_common.i18n import (
    FIELDS,
    GENERIC_INVALID,
    ID_NUMBER_REASONS,
    VALIDATION,
    field_label,
    validation_message,
)
from hc_common.idnumber import IdNumberField, InvalidIdNumber, parse_id_number
from hc_common.phone import Phone

ROOT = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")
# What Pydantic says in English, which a Chinese answer must never hold.
PYDANTIC_ENGLISH = ("Input should", "String should", "Field required", "Value error", "valid")


def test_every_pydantic_error_type_has_words_in_both_languages() -> None:
    types = set(typing.get_args(core_schema.ErrorType))
    assert types - VALIDATION.keys() == set()
    for kind, (zh, en) in VALIDATION.items():
        assert CJK.search(zh), kind
        assert en.isascii() and en, kind


def test_every_code_of_our_own_validators_has_words() -> None:
    """The codes raised with PydanticCustomError anywhere in the services and shared have a
    message in the table (or, at least, a title a service registers with register_messages,
    which a field error then reads as)."""
    sources = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("shared/src/**/*.py")]
    found, registered = set(), set()
    for path in sources:
        text = path.read_text()
        found |= set(re.findall(r'PydanticCustomError\(\s*"(\w+)"', text))
        for call in re.findall(r"register_messages\(\s*\{(.*?)\n\s*\}\s*\)", text, re.S):
            registered |= set(re.findall(r'"(\w+)":\s*\(', call))
    assert {"invalid_text", "invalid_id_number", "invalid_phone", "invalid_time"} <= found
    assert "invalid_region_code" in registered
    assert found - VALIDATION.keys() - registered == set()


@pytest.mark.parametrize(
    "number",
    [
        "12345",  # shape
        "990101199001011237",  # province
        "110101199002301234",  # birth date
        "110101290001011234",  # in the future
        "110105194912310021",  # check character
    ],
)
def test_every_reason_an_id_number_is_refused_has_words(number: str) -> None:
    with pytest.raises(InvalidIdNumber) as refused:
        parse_id_number(number)
    why = str(refused.value)
    assert why in ID_NUMBER_REASONS
    message = validation_message("invalid_id_number", {"why": why}, english=False)
    assert CJK.search(message) and why not in message


class Relationship(StrEnum):
    parent = "parent"
    child = "child"


class Everything(BaseModel):
    """A request model with the kinds of fields the services have."""

    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=5)
    description: FreeText = Field("", max_length=10)
    phone: Phone
    id_number: IdNumberField
    relationship: Relationship
    layout: Literal["card", "a4"] = "card"
    allowed_colors: list[Literal["green", "yellow", "red"]] = Field(["green"], min_length=1)
    dose_number: StrictInt = Field(1, ge=1, le=10)
    sample_time: datetime = datetime(2026, 1, 1)
    venue_id: EntityId | None = None


BAD = {
    "name": "",
    "description": "x\x00",
    "phone": "23800138000",
    "id_number": "110105194912310021",
    "relationship": "friend",
    "layout": "poster",
    "allowed_colors": ["green", "blue"],
    "dose_number": 11,
    "sample_time": "yesterday",
    "venue_id": "v1",
    "surprise": 1,
}


def test_each_error_reads_in_chinese_with_its_values_and_in_english() -> None:
    with pytest.raises(ValidationError) as refused:
        Everything.model_validate(BAD)
    errors = refused.value.errors()
    assert {e["type"] for e in errors} >= {
        "string_too_short",
        "invalid_text",
        "invalid_phone",
        "invalid_id_number",
        "enum",
        "literal_error",
        "less_than_equal",
        "datetime_from_date_parsing",
        "invalid_id",
        "extra_forbidden",
    }
    chinese = {
        ".".join(map(str, e["loc"])): validation_message(e["type"], e.get("ctx"), False)
        for e in errors
    }
    assert chinese["name"] == "至少 1 个字符"
    assert chinese["relationship"] == "应为以下之一：parent、child"
    assert chinese["layout"] == "应为以下之一：card、a4"
    assert chinese["allowed_colors.1"] == "应为以下之一：green、yellow、red"
    assert chinese["dose_number"] == "应小于或等于 10"
    assert chinese["id_number"] == "不是有效的身份证号码：校验码错误"
    for message in chinese.values():
        assert CJK.search(message) and "{" not in message
        assert not any(english in message for english in PYDANTIC_ENGLISH), message
    english = {
        ".".join(map(str, e["loc"])): validation_message(e["type"], e.get("ctx"), True)
        for e in errors
    }
    assert english["name"] == "String should have at least 1 character"
    assert english["dose_number"] == "Input should be less than or equal to 10"
    assert english["layout"] == "Input should be 'card' or 'a4'"
    assert all(m.isascii() and "{" not in m for m in english.values())


def test_a_type_the_table_lacks_is_generic_chinese_never_pydantics_english() -> None:
    said = "Some new Pydantic message"
    assert validation_message("brand_new_type", {}, False, fallback=said) == GENERIC_INVALID[0]
    assert validation_message("brand_new_type", {}, True, fallback=said) == said
    assert validation_message("value_error", {"error": "who knows"}, False) == "取值无效"


def test_fields_in_words() -> None:
    assert field_label(("body", "results", 3, "id_number"), False) == "身份证号码"
    assert field_label(("body", "allowed_colors", 1), False) == "允许的码色（第 2 项）"
    assert field_label(("body", "allowed_colors", 1), True) == "Allowed colours (item 2)"
    assert field_label(("query", "limit"), False) == "每页条数"
    assert field_label(("body",), False) == "请求体"
    assert field_label((), False, whole="row") == "该行"
    # A union member's tag after the field, an extra key we do not know.
    assert field_label(("body", "name", "str"), False) == "姓名"
    assert field_label(("body", "surprise"), False) == "surprise"
    # A venue's or a gate's name is not a person's.
    assert field_label(("body", "name"), False, "/v1/venues/abc/devices") == "名称"
    assert FIELDS["id_number"] == ("身份证号码", "ID number")


router = APIRouter()


@router.post("/things/{thing_id}")
async def make(
    thing_id: int, body: Everything, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> None:
    return None


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield


def _client() -> httpx.AsyncClient:
    app = create_service_app(title="t", description="t", lifespan=_lifespan, routers=[router])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_a_422_is_chinese_by_default_and_english_on_request() -> None:
    async with _client() as client:
        zh = await client.post("/things/x?limit=0", json=BAD)
        en = await client.post("/things/x?limit=0", json=BAD, headers={"Accept-Language": "en"})
    assert zh.status_code == en.status_code == 422
    chinese, english = zh.json(), en.json()
    # The codes clients switch on are the same in either language, as they were.
    assert chinese["code"] == english["code"] == "invalid_text"
    codes = {e["field"]: e["code"] for e in chinese["errors"]}
    assert codes == {e["field"]: e["code"] for e in english["errors"]}
    assert codes["thing_id"] == codes["limit"] == codes["name"] == "invalid_value"
    assert codes["phone"] == "invalid_phone" and codes["id_number"] == "invalid_id_number"
    assert codes["allowed_colors.1"] == "invalid_value"
    detail = chinese["detail"]
    for said in (
        "thing_id：应为整数",
        "每页条数：应大于或等于 1",
        "姓名：至少 1 个字符",
        "手机号码：不是中国大陆手机号码",
        "身份证号码：不是有效的身份证号码：校验码错误",
        "与本人关系：应为以下之一：parent、child",
        "允许的码色（第 2 项）：应为以下之一：green、yellow、red",
        "surprise：不允许此字段",
    ):
        assert said in detail, said
    assert not any(e in detail for e in PYDANTIC_ENGLISH), detail
    for error in chinese["errors"]:
        assert CJK.search(error["message"]), error
    assert "Name: String should have at least 1 character" in english["detail"]
    assert "ID number: Not a valid identity number: wrong check character" in english["detail"]
    assert english["title"].isascii() and english["detail"].isascii()


async def test_a_missing_body_and_a_missing_field() -> None:
    async with _client() as client:
        nothing = await client.post("/things/1")
        partial = await client.post("/things/1", json={"phone": "13800138000"})
    assert nothing.json()["errors"] == [{"field": "body", "code": "missing", "message": "必须填写"}]
    assert nothing.json()["detail"] == "请求体：必须填写"
    assert "身份证号码：必须填写" in partial.json()["detail"]


def test_registered_titles_still_work() -> None:
    register_messages({"test_only_code": ("测试", "Test")})
    assert MESSAGES["test_only_code"] == ("测试", "Test")
    assert title_for("test_only_code", False) == "测试"
    assert title_for("test_only_code", True) == "Test"
    del MESSAGES["test_only_code"]
