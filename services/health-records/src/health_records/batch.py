"""Batch ingest plumbing shared by NAT results and vaccinations: the raw body read as a list of
rows, each row validated alone, and the answer `{accepted, duplicates, rejected}`."""

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from hc_common.errors import Unprocessable

MAX_ROWS = 10_000
T = TypeVar("T")

# Pydantic error types that keep their own name as the row's code; all others are invalid_value.
_ROW_CODES = {"missing": "missing", "invalid_id_number": "invalid_id_number"}


class RejectedRow(BaseModel):
    index: int
    code: str
    detail: str


class BatchResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[RejectedRow]


def _body_error(field: str, code: str, message: str, message_en: str) -> Unprocessable:
    return Unprocessable(
        detail=message, detail_en=message_en,
        extra={"errors": [{"field": field, "code": code, "message": message_en}]})


async def read_rows(request: Request, key: str) -> list[Any]:
    """The raw rows under `key` of the JSON body; 422 when the body is not that shape or holds
    more than MAX_ROWS rows (the whole batch is refused then, nothing is stored)."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _body_error("body", "invalid_json", "请求体不是有效的 JSON",
                          "The request body is not valid JSON") from None
    if not isinstance(body, dict) or key not in body:
        raise _body_error(key, "missing", f"缺少 {key} 数组", f"`{key}` (an array) is required")
    rows = body[key]
    if not isinstance(rows, list):
        raise _body_error(key, "invalid_value", f"{key} 必须是数组", f"`{key}` must be an array")
    if len(rows) > MAX_ROWS:
        raise _body_error(key, "too_many_rows", f"每批最多 {MAX_ROWS} 行",
                          f"At most {MAX_ROWS} rows a batch, got {len(rows)}")
    return rows


def validate_rows(rows: list[Any], adapter: TypeAdapter[T]) -> tuple[list[tuple[int, T]],
                                                                     list[RejectedRow]]:
    """Each row alone: the good ones with their index, and a RejectedRow per bad one. The
    detail names the field and the rule, never the value (it may be an ID number)."""
    good: list[tuple[int, T]] = []
    rejected: list[RejectedRow] = []
    for index, row in enumerate(rows):
        try:
            good.append((index, adapter.validate_python(row)))
        except ValidationError as exc:
            errors = exc.errors(include_input=False, include_url=False)
            codes = [_ROW_CODES.get(str(e["type"]), "invalid_value") for e in errors]
            # The most specific code first: a wrong ID number over a generic bad value.
            code = next((c for c in codes if c == "invalid_id_number"), codes[0])
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in errors)
            rejected.append(RejectedRow(index=index, code=code, detail=detail[:300]))
    return good, rejected
