"""A page of a keyset-paginated list: its items and the cursor of the next page."""

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from hc_common.clock import to_utc
from hc_common.errors import Unprocessable
from hc_common.hygiene import is_id

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def page_of(rows: Sequence[T], limit: int, cursor_of: Callable[[T], str]) -> Page[T]:
    """The page of `rows`, read with `limit + 1`: the extra row, if any, says there is a next
    page, which starts after the last row shown."""
    items = list(rows[:limit])
    return Page(items, cursor_of(items[-1]) if len(rows) > limit else None)


def encode_time_cursor(at: datetime, key: str) -> str:
    """The opaque cursor of a list ordered by (time, id): after the row of `at` and `key`."""
    raw = f"{to_utc(at).isoformat()}|{key}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_time_cursor(cursor: str) -> tuple[datetime, str]:
    """The (time, id) of encode_time_cursor; 422 `invalid_cursor` for anything that is not a
    cursor this system wrote (the id must be of the system's id format)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = raw.split("|", 1)
        if not is_id(key):
            raise ValueError("not an id")
        return to_utc(datetime.fromisoformat(at)), key
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable("invalid_cursor") from None
