"""The rules of contact tracing (时空伴随): the case's visits and contacts from venue-admin's
access records, the contacts named (masked) from the persons kept here, their codes turned in
one batch through the normal status path when asked, and every request kept for the audit."""

import asyncio
import logging
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import rfc3339, utcnow
from hc_common.errors import NotFound
from hc_common.hygiene import require_id
from hc_common.ids import new_id, new_ids
from hc_common.masking import mask_id_number, mask_name
from hc_common.pagination import Page, decode_time_cursor, encode_time_cursor, page_of
from health_records.clients.venue_admin import CoPresence, VenueAdminClient
from health_records.person.models import CodeChange, Person
from health_records.person.repository import append_rows
from health_records.person.service import PersonService, PersonState
from health_records.tracing.masking import IdNumberMasker
from health_records.tracing.models import TracingRequest
from health_records.tracing.repository import TracingRepository
from health_records.tracing.schemas import MaskedPerson, TraceSummary, TracingCreate

log = logging.getLogger("health_records.tracing")

_CODE_CHANGE_COLUMNS = ("id", "person_key", "color", "reason", "changed_at")


# Contacts written to JSON at a time while the ones before are compressed.
_CHUNK = 20_000


async def _written_and_kept(
    head: dict[str, Any], contacts: Iterable[dict[str, Any]], tail: dict[str, Any]
) -> tuple[bytes, bytes]:
    """The answer's JSON, `head`'s members, then `contacts`, then `tail`'s, and the same
    compressed with zlib (the audit's copy). The contacts are written a chunk at a time, and
    each chunk is compressed in a thread (zlib lets go of the GIL) while the next is written:
    a city's 40 MB answer cost 0.1 s more when compressed after it was written. The event
    loop serves other requests meanwhile."""
    loop = asyncio.get_running_loop()
    compressor = zlib.compressobj(1)
    written: list[bytes] = []
    kept: list[bytes] = []
    compressing: asyncio.Future[bytes] | None = None

    async def add(piece: bytes) -> None:
        nonlocal compressing
        written.append(piece)
        if compressing is not None:
            kept.append(await compressing)
        compressing = loop.run_in_executor(None, compressor.compress, piece)

    await add(orjson.dumps(head)[:-1] + b',"contacts":[')
    rows, between = iter(contacts), b""
    while chunk := list(islice(rows, _CHUNK)):
        await add(between + orjson.dumps(chunk)[1:-1])  # the array's items, no brackets
        between = b","
    await add(b"]," + orjson.dumps(tail)[1:])
    assert compressing is not None
    kept.append(await compressing)
    kept.append(compressor.flush())
    return b"".join(written), b"".join(kept)


def default_reason(trace_id: str) -> str:
    return f"时空伴随 {trace_id}"


def encode_cursor(request: TracingRequest) -> str:
    return encode_time_cursor(request.created_at, request.trace_id)


@dataclass
class TracingService:
    session: AsyncSession
    persons: PersonService
    venues: VenueAdminClient
    masker: IdNumberMasker
    repo: TracingRepository = field(init=False)

    def __post_init__(self) -> None:
        self.repo = TracingRepository(self.session)

    def _masked_case(self, case: Person) -> dict[str, str | None]:
        open_ = self.persons.sealer.open
        name = open_(case.name_enc).decode() if case.name_enc is not None else None
        return {
            "masked_name": mask_name(name) if name else None,
            "masked_id_number": mask_id_number(open_(case.id_number_enc).decode()),
        }

    async def trace(self, request: TracingCreate, role: str) -> bytes:
        """Trace the case of `request.id_number` (404 when no one holds it): their visits,
        the contacts, and with `apply_color` each green contact turned that colour. Kept for
        the audit, answer included, in the same transaction as the changes. Returns the
        answer's JSON bytes (a Trace), made once: a city's trace names 200,000 contacts."""
        case = await self.persons.repo.by_key(self.persons.person_key(request.id_number))
        if case is None:
            raise NotFound(detail="查无此人", detail_en="No person holds this ID number")
        trace_id, now = new_id(), utcnow()
        found = await self.venues.co_presence(
            case.subject_id, request.from_, request.to, request.window_minutes
        )
        applying = request.apply_color is not None and bool(found.subject_ids)
        if applying:
            # Locked before the contacts' colours are read (SQLite has no row locks).
            await self.repo.hold_writes()
        persons = await self.repo.contacts(found.subject_ids, with_keys=applying)
        at = persons.indexes
        before = persons.colors
        after = before
        changed = 0
        if applying and at:
            assert request.apply_color is not None
            reason = request.reason or default_reason(trace_id)
            colors, changed = await self._apply(
                persons.person_keys, request.apply_color, reason, now
            )
            before = [colors[key][0] for key in persons.person_keys]
            after = [colors[key][1] for key in persons.person_keys]
        masked_ids = (
            self.masker.masked(persons.sealed)
            if persons.sealed or not persons.slots
            else self.masker.masked_slots(persons.counters, persons.slots)
        )
        names = await self._masked_names(found, at)
        venue_names = {v.venue_id: v.venue_name for v in found.visits}
        venue_ids, times = found.venue_ids, found.checked_at
        contacts = (
            {
                "masked_name": name,
                "masked_id_number": masked_id,
                "venue_id": venue_ids[i],
                "venue_name": venue_names.get(venue_ids[i]),
                "checked_at": times[i],
                "color_before": was,
                "color_after": now_,
            }
            for i, name, masked_id, was, now_ in zip(
                at, names, masked_ids, before, after, strict=True
            )
        )
        case_masked = self._masked_case(case)
        visits = [
            {
                "venue_id": v.venue_id,
                "venue_name": v.venue_name,
                "checked_at": rfc3339(v.checked_at),
            }
            for v in found.visits
        ]
        unknown = len(found.subject_ids) - len(at)
        kept_since = found.records_kept_since if request.from_ < found.records_kept_since else None
        answer, kept = await _written_and_kept(
            {"trace_id": trace_id, "case": case_masked, "visits": visits},
            contacts,
            {
                "created_at": rfc3339(now),
                "apply_color": request.apply_color,
                "changed": changed,
                "unknown_contacts": unknown,
                "records_kept_since": rfc3339(kept_since) if kept_since is not None else None,
            },
        )
        self.repo.add(
            TracingRequest(
                trace_id=trace_id,
                created_at=now,
                role=role,
                case_masked_name=case_masked["masked_name"],
                case_masked_id_number=case_masked["masked_id_number"],
                visits=len(visits),
                contacts=len(at),
                applied=request.apply_color is not None,
                changed=changed,
                answer=kept,
            )
        )
        await self.session.flush()
        # The trace id and counts only: never a name or an ID number.
        log.info(
            "contact trace",
            extra={
                "trace_id": trace_id,
                "visits": len(visits),
                "contacts": len(at),
                "unknown_contacts": unknown,
                "changed": changed,
                "applied": request.apply_color is not None,
            },
        )
        return answer

    async def _masked_names(self, found: CoPresence, at: list[int]) -> list[str | None]:
        """Each found contact's masked name: the one their scan showed (the credential's,
        masked by the verifier), else the name on file here, masked (null when none)."""
        shown = found.masked_names
        names = [shown[i] for i in at]
        missing = [n for n, name in enumerate(names) if name is None]
        if missing:
            subjects = found.subject_ids
            sealed = await self.repo.names([subjects[at[n]] for n in missing])
            open_ = self.persons.sealer.open
            for n in missing:
                on_file = sealed.get(subjects[at[n]])
                names[n] = mask_name(open_(on_file).decode()) if on_file is not None else None
        return names

    async def _apply(
        self, person_keys: list[str], color: str, reason: str, now: datetime
    ) -> tuple[dict[str, tuple[str, str]], int]:
        """Each of these persons whose code is green turned `color`, in one batch: locked,
        versions, one status event each, the authority's colour and reason, a history row
        each. Returns each person's (colour before, colour after) as read under the lock, and
        how many changed."""
        locked = await self.persons.lock(sorted(person_keys))
        before = {key: state.color for key, state in locked.items()}
        change = _turn_green(color, reason)
        # Every person of the batch is known (locked): apply_batch reads a person's ID number
        # and name only to create one, so none is given (none is opened for it).
        people = {key: ("", None) for key in locked}
        await self.persons.apply_batch(people, change, locked=locked)
        turned = [key for key, was in before.items() if was == "green"]
        if turned:
            # apply_batch writes a known person's status columns (a lab's or a site's batch
            # never sets the authority's colour): the authority's colour and reason, which the
            # code shows until the authority sets another, are written here, in the same
            # transaction, with the history.
            await self.persons.repo.update_columns(
                {
                    "person_key": turned,
                    "authority_color": [color] * len(turned),
                    "color_reason": [reason] * len(turned),
                }
            )
            await append_rows(
                self.session,
                CodeChange.__table__,
                _CODE_CHANGE_COLUMNS,
                [
                    (key_id, key, color, reason, now)
                    for key_id, key in zip(new_ids(len(turned)), turned, strict=True)
                ],
            )
        colors = {key: (was, color if was == "green" else was) for key, was in before.items()}
        return colors, len(turned)

    async def get(self, trace_id: str) -> bytes:
        """The answer a trace was given, its JSON bytes as they were."""
        kept = await self.repo.answer(require_id(trace_id))
        if kept is None:
            raise NotFound()
        return await asyncio.to_thread(zlib.decompress, kept)

    async def page(self, cursor: str | None, limit: int) -> Page[TraceSummary]:
        """Every tracing request, newest first."""
        after = decode_time_cursor(cursor) if cursor else None
        rows = await self.repo.page(after, limit + 1)
        page = page_of(rows, limit, encode_cursor)
        return Page(
            [
                TraceSummary(
                    trace_id=r.trace_id,
                    created_at=r.created_at,
                    case=MaskedPerson(
                        masked_name=r.case_masked_name, masked_id_number=r.case_masked_id_number
                    ),
                    visits=r.visits,
                    contacts=r.contacts,
                    applied=r.applied,
                    changed=r.changed,
                    role=r.role,
                )
                for r in page.items
            ],
            page.next_cursor,
        )


def _turn_green(color: str, reason: str) -> Callable[[PersonState], dict[str, Any] | None]:
    """A batch's change: a green code turns `color` (the authority's colour, with `reason`);
    a yellow or red one is left as it is."""

    def change(state: PersonState) -> dict[str, Any] | None:
        if state.color != "green":
            return None
        return {"authority_color": color, "color_reason": reason}

    return change
