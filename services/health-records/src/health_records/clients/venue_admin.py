"""venue-admin: a case's visits and who was scanned near them (contact tracing)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from hc_common.errors import ServiceUnavailable


class Visit(BaseModel):
    venue_id: str
    venue_name: str | None
    checked_at: datetime


_VISITS = TypeAdapter(list[Visit])


@dataclass(frozen=True, slots=True)
class CoPresence:
    """venue-admin's answer. The contacts, one a subject (their first scan within a window),
    ordered by that scan's time, are columns as venue-admin sends them (a trace may find
    200,000: no object per contact): the i-th contact is `subject_ids[i]`, scanned at
    `venue_ids[i]` at `checked_at[i]` (as the API writes times) showing `masked_names[i]`
    (None: no name shown)."""

    visits: list[Visit]
    subject_ids: list[str]
    venue_ids: list[str]
    checked_at: list[str]
    masked_names: list[str | None]
    records_kept_since: datetime

    @classmethod
    def of(
        cls,
        visits: list[Visit],
        contacts: list[tuple[str, str, str, str | None]],
        records_kept_since: datetime,
    ) -> "CoPresence":
        """From contacts as rows `(subject_id, venue_id, checked_at, masked_name)`."""
        columns = [list(c) for c in zip(*contacts, strict=True)] or [[], [], [], []]
        subject_ids, venue_ids, checked_at, masked_names = columns
        return cls(visits, subject_ids, venue_ids, checked_at, masked_names, records_kept_since)


def _column(found: dict[str, Any], name: str, size: int | None, kinds: set[type]) -> list[Any]:
    column = found[name]
    if not isinstance(column, list) or (size is not None and len(column) != size):
        raise ValueError(f"{name} is not a list of the contacts")
    if not set(map(type, column)) <= kinds:  # one pass in C
        raise ValueError(f"{name} holds a value of another type")
    return column


def parse_co_presence(content: bytes) -> CoPresence:
    """venue-admin's answer, each subject once: venue-admin sends every co-present scan in
    time order (in parts, each columns), so a subject scanned twice near the case's visits
    comes twice, and their first row is their first scan (the one kept). ValueError, KeyError
    or ValidationError when it is not of its shape."""
    found = orjson.loads(content)
    parts = found["contacts"]
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise ValueError("contacts is not a list of parts")
    subject_ids: list[str] = []
    venue_ids: list[str] = []
    checked_at: list[str] = []
    masked_names: list[str | None] = []
    for part in parts:  # in time order: one list of each column
        subjects = _column(part, "subject_ids", None, {str})
        size = len(subjects)
        subject_ids += subjects
        venue_ids += _column(part, "venue_ids", size, {str})
        checked_at += _column(part, "checked_at", size, {str})
        masked_names += _column(part, "masked_names", size, {str, type(None)})
    size = len(subject_ids)
    # A set tells whether any subject repeats (seldom: 20 ms for a city's 200,000); then each
    # subject's first place, from a dict made from the end, which keeps the smallest (in C).
    if len(set(subject_ids)) < size:
        first = dict(zip(reversed(subject_ids), range(size - 1, -1, -1), strict=True))
        kept = sorted(first.values())
        subject_ids = [subject_ids[i] for i in kept]
        venue_ids = [venue_ids[i] for i in kept]
        checked_at = [checked_at[i] for i in kept]
        masked_names = [masked_names[i] for i in kept]
    return CoPresence(
        _VISITS.validate_python(found["visits"]),
        subject_ids,
        venue_ids,
        checked_at,
        masked_names,
        datetime.fromisoformat(found["records_kept_since"]),
    )


class VenueAdminClient:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def co_presence(
        self, subject_id: str, start: datetime, end: datetime, window_minutes: int
    ) -> CoPresence:
        """The scans of `subject_id` from `start` to `end` and the other subjects scanned
        within `window_minutes` of one of them. Pseudonymous ids only; in the body, not the
        URL. 503 `service_unavailable` when venue-admin cannot answer."""
        try:
            response = await self.client.post(
                "/internal/v1/co-presence",
                json={
                    "subject_id": subject_id,
                    "from": start.isoformat(),
                    "to": end.isoformat(),
                    "window_minutes": window_minutes,
                },
            )
            response.raise_for_status()
            return parse_co_presence(response.content)
        except (httpx.HTTPError, ValidationError, ValueError, KeyError, TypeError):
            raise ServiceUnavailable(
                detail="场所服务暂不可用，请稍后再试",
                detail_en="Venue records are unreachable; try again later",
            ) from None
