"""Input hygiene every service applies before it uses a value: text without control
characters, ASCII digits where the contract says digits, ids of the system's own format.

Use the types in request schemas (`Text` for names, addresses and the like, `FreeText` for
descriptions where a tab or a line break is at home, `EntityId` for an id in a body), and
`require_id` for an id taken from a path, which answers 404 for anything that is not an id
of ours, before it can reach a query or another service's URL.
"""

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from hc_common.errors import NotFound, register_messages

register_messages(
    {
        "invalid_text": ("含有不允许的控制字符", "Contains characters that are not allowed"),
        "invalid_id": ("编号格式无效", "Not an id of this system"),
    }
)

# ULIDs as `hc_common.ids.new_id` writes them: 26 characters of lower-case Crockford base32.
ID_PATTERN = r"^[0-9abcdefghjkmnpqrstvwxyz]{26}$"
_ID = re.compile(ID_PATTERN)
_FREE_TEXT_ALLOWED = frozenset("\t\n\r")


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def require_id(value: str) -> str:
    """An id from a path: the value if it is of our format, else 404 (never a 5xx, never a
    request to another service)."""
    if not is_id(value):
        raise NotFound(detail="资源不存在", detail_en="Not found")
    return value


def _has_control(value: str, allowed: frozenset[str] = frozenset()) -> bool:
    if value.isprintable():  # the common case, at C speed
        return False
    # Cc: C0 and C1 controls, NUL and DEL included; Cs: lone surrogates (no valid UTF-8).
    return any(
        unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed
        for ch in value
        if not ch.isprintable()
    )


def _text(value: str) -> str:
    if _has_control(value):
        raise PydanticCustomError("invalid_text", "must not contain control characters")
    return value


def _free_text(value: str) -> str:
    if _has_control(value, _FREE_TEXT_ALLOWED):
        raise PydanticCustomError(
            "invalid_text", "must not contain control characters other than tab and line breaks"
        )
    return value


def _entity_id(value: str) -> str:
    if not is_id(value):
        raise PydanticCustomError("invalid_id", "not an id of this system")
    return value


# One line of text (a name, an address, a device's model): no control characters at all.
Text = Annotated[str, AfterValidator(_text)]
# A description: tab, line feed and carriage return allowed, no other control character.
FreeText = Annotated[str, AfterValidator(_free_text)]
# An id in a body: 422 `invalid_id` if it is not of the system's format.
# (The pattern is stated in the schema for clients; the check is ours, for one stable code.)
EntityId = Annotated[
    str, AfterValidator(_entity_id), Field(json_schema_extra={"pattern": ID_PATTERN})
]
# Digits as the contract means them: ASCII only (`\d` would take any script's digits).
ASCII_DIGITS = re.compile(r"[0-9]+")
