"""A page of a keyset-paginated list: its items and the cursor of the next page."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

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
