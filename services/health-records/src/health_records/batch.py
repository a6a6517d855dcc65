"""Batch ingest plumbing shared by NAT results and vaccinations: the raw body read as a list of
rows, each row validated alone by cheap hand checks (the same rules and codes as the row's
pydantic model, without building a model a row), and the answer `{accepted, duplicates,
rejected}`."""

import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from operator import mul
from typing import Any

import orjson
from fastapi import Request
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError

from hc_common.errors import Unprocessable
from hc_common.idnumber import InvalidIdNumber, parse_id_number

MAX_ROWS = 10_000


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
        detail=message,
        detail_en=message_en,
        extra={"errors": [{"field": field, "code": code, "message": message_en}]},
    )


async def read_rows(request: Request, key: str) -> list[Any]:
    """The raw rows under `key` of the JSON body; 422 when the body is not that shape or holds
    more than MAX_ROWS rows (the whole batch is refused then, nothing is stored)."""
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _body_error(
            "body", "invalid_json", "请求体不是有效的 JSON", "The request body is not valid JSON"
        ) from None
    if not isinstance(body, dict) or key not in body:
        raise _body_error(key, "missing", f"缺少 {key} 数组", f"`{key}` (an array) is required")
    rows = body[key]
    if not isinstance(rows, list):
        raise _body_error(key, "invalid_value", f"{key} 必须是数组", f"`{key}` must be an array")
    if len(rows) > MAX_ROWS:
        raise _body_error(
            key,
            "too_many_rows",
            f"每批最多 {MAX_ROWS} 行",
            f"At most {MAX_ROWS} rows a batch, got {len(rows)}",
        )
    return rows


# --- Row checks -------------------------------------------------------------------------------
# A check takes the raw value of one field and returns it clean, or raises FieldError with the
# row's code and pydantic's wording of the rule (never the value: it may be an ID number).


class FieldError(Exception):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message


Check = Callable[[Any], Any]
# A row-level rule over the clean values (in field order): the message when broken, else None.
RowRule = Callable[[list[Any]], str | None]


NUL_MESSAGE = "String should not contain the character U+0000"


def text(max_length: int) -> Check:
    """A string, whitespace stripped, 1 to `max_length` characters, without U+0000."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("invalid_value", "Input should be a valid string")
        value = value.strip()
        if not value:
            raise FieldError("invalid_value", "String should have at least 1 character")
        if len(value) > max_length:
            raise FieldError("invalid_value", f"String should have at most {max_length} characters")
        if "\x00" in value:  # PostgreSQL cannot store it
            raise FieldError("invalid_value", NUL_MESSAGE)
        return value

    return check


_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_PROVINCES = frozenset(f"{p:02d}" for p in (*range(11, 66), 71, 81, 82))
_ZERO = 48 * sum(_WEIGHTS)  # the weighted sum of 17 ASCII "0"s, taken off the byte sum


def id_number(today: date) -> Check:
    """A resident identity number (GB 11643-1999), normalised (upper-case X).

    A fast path accepts what parse_id_number accepts (the check character from the bytes, a
    birth date read once per distinct date); anything it does not accept goes to
    parse_id_number itself, which gives the verdict and the reason."""
    births: dict[str, bool] = {}

    def birth_ok(text: str) -> bool:
        try:
            born = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return False
        return born.year >= 1900 and born <= today

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("invalid_value", "Input should be a valid string")
        number = value.strip().upper()
        if (
            len(number) == 18
            and number[:17].isascii()
            and number[:17].isdigit()
            and number[:2] in _PROVINCES
        ):
            birth = number[6:14]
            ok = births.get(birth)
            if ok is None:
                ok = births[birth] = birth_ok(birth)
            if (
                ok
                and number[17]
                == _CHECK[(sum(map(mul, number[:17].encode(), _WEIGHTS)) - _ZERO) % 11]
            ):
                return number
        try:
            return parse_id_number(value, today).value
        except InvalidIdNumber as exc:
            raise FieldError("invalid_id_number", f"invalid identity number: {exc}") from None

    return check


def one_of(*choices: str) -> Check:
    message = "Input should be " + " or ".join(f"'{c}'" for c in choices)

    def check(value: Any) -> str:
        if isinstance(value, str) and value in choices:
            return value
        raise FieldError("invalid_value", message)

    return check


def strict_int(low: int, high: int) -> Check:
    def check(value: Any) -> int:
        if type(value) is not int:
            raise FieldError("invalid_value", "Input should be a valid integer")
        if value < low:
            raise FieldError("invalid_value", f"Input should be greater than or equal to {low}")
        if value > high:
            raise FieldError("invalid_value", f"Input should be less than or equal to {high}")
        return value

    return check


# The common spelling (`2026-11-27T08:00:00Z`, `+08:00`) takes the fast path; anything else is
# judged by pydantic itself, so the accepted forms and the messages stay pydantic's.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\Z")
_AWARE = TypeAdapter(AwareDatetime)


def aware_datetime(value: Any) -> datetime:
    """A time with an offset, as an aware datetime in UTC."""
    if isinstance(value, str) and _RFC3339.match(value):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass
    try:
        return _AWARE.validate_python(value).astimezone(UTC)
    except ValidationError as exc:
        raise FieldError("invalid_value", exc.errors()[0]["msg"]) from None


def validate_rows(
    rows: list[Any], fields: Sequence[tuple[str, Check]], rule: RowRule | None = None
) -> tuple[list[list[Any]], list[RejectedRow]]:
    """Each row alone: the clean values (in the order of `fields`) of the good ones, and a
    RejectedRow per bad one (its code: `missing`, `invalid_id_number` before any other, else
    `invalid_value`). The detail names the field and the rule, never the value."""
    good: list[list[Any]] = []
    rejected: list[RejectedRow] = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            rejected.append(
                RejectedRow(
                    index=index,
                    code="invalid_value",
                    detail="row: Input should be a valid dictionary",
                )
            )
            continue
        values: list[Any] = []
        errors: list[tuple[str, str, str]] | None = None
        for name, check in fields:
            try:
                values.append(check(row[name]))
            except KeyError:
                errors = errors or []
                errors.append((name, "missing", "Field required"))
            except FieldError as exc:
                errors = errors or []
                errors.append((name, exc.code, exc.message))
        if errors is None and rule is not None:
            broken = rule(values)
            if broken is not None:
                errors = [("row", "invalid_value", "Value error, " + broken)]
        if errors is None:
            good.append(values)
            continue
        codes = [code for _, code, _ in errors]
        code = "invalid_id_number" if "invalid_id_number" in codes else codes[0]
        detail = "; ".join(f"{name}: {message}" for name, _, message in errors)
        rejected.append(RejectedRow(index=index, code=code, detail=detail[:300]))
    return good, rejected


# --- Identifiers in bulk ----------------------------------------------------------------------

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
# A random byte -> one character of 5 random bits (256 is a multiple of 32: uniform).
_CHARACTER_OF_BYTE = bytes(ord(_ALPHABET[b & 31]) for b in range(256))


def new_ids(count: int) -> list[str]:
    """`count` identifiers of hc_common.ids.new_id's layout (26 characters: the millisecond in
    the first 10, 80 random bits in the last 16), made in one go for a batch."""
    stamp = int(time.time() * 1000) << 80
    head = "".join(_ALPHABET[(stamp >> (5 * i)) & 31] for i in range(25, 15, -1))
    tail = os.urandom(16 * count).translate(_CHARACTER_OF_BYTE).decode()
    return [head + tail[i : i + 16] for i in range(0, 16 * count, 16)]
