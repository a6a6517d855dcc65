"""The access-record CSV export: a file that opens correctly in Excel on a Chinese Windows
machine (UTF-8 with a byte-order mark, CRLF), times also in China time, reasons and scanners
in words, every cell safe from formula injection; streamed in keyset chunks."""

import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hc_common.clock import CST, rfc3339, to_utc
from hc_common.i18n import REASONS, words
from venue_admin.access.repository import AccessRecordRepository, ExportRow
from venue_admin.access.schemas import CSV_HEADER
from venue_admin.device.repository import DeviceRepository
from venue_admin.venue.repository import VenueRepository

# Rows read per query: memory stays flat however many rows match.
CSV_CHUNK = 2000
# Scanner names kept between chunks; a venue with more scanners than this starts afresh.
NAME_CACHE = 10_000
BOM = "\ufeff"
# What a spreadsheet takes for the start of a formula (OWASP's list for CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# How the reasons in words are joined: the list separator each language writes.
REASONS_JOINED = {False: "、", True: "; "}


def csv_cell(value: str) -> str:
    """A cell as written to the CSV: with a leading `'` where it would start a formula
    (a holder named `=cmd|' /C calc'!A0` shows as text, it does not run)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def local_time(at: datetime) -> str:
    """`2026-11-28 20:15:03`: the instant in China time (UTC+8), whole seconds, as a
    spreadsheet takes it for a date and time."""
    try:
        # isoformat() is C code and pads the year, which strftime() does not everywhere.
        return to_utc(at).astimezone(CST).replace(microsecond=0, tzinfo=None).isoformat(" ")
    except OverflowError:  # the last hours of year 9999 have no China time
        return ""


def reasons_text(reasons: Iterable[str], english: bool) -> str:
    return REASONS_JOINED[english].join(words(REASONS, r, english) for r in reasons)


def row_cells(record: ExportRow, scanner_name: str, english: bool) -> list[str]:
    """One record's cells, in the order of CSV_HEADER, each neutralised."""
    return [
        csv_cell(cell)
        for cell in (
            record.record_id,
            rfc3339(record.checked_at),
            local_time(record.checked_at),
            record.decision,
            ";".join(record.reasons),
            reasons_text(record.reasons, english),
            record.masked_name or "",
            record.color or "",
            record.scanner_kind,
            record.scanner_id,
            scanner_name,
        )
    ]


class ScannerNames:
    """The names of a venue's scanners: a device's name (a removed device keeps its row, so
    its name), a member's masked phone (a removed member's row is gone: empty). Looked up
    once per chunk for the ids not seen yet, two queries at most, never one per row."""

    def __init__(self, venue_id: str) -> None:
        self.venue_id = venue_id
        self.known: dict[tuple[str, str], str] = {}

    async def resolve(self, session: AsyncSession, records: Sequence[ExportRow]) -> None:
        if len(self.known) > NAME_CACHE:  # before looking: the chunk's names are all kept
            self.known.clear()
        wanted: dict[str, set[str]] = {"device": set(), "user": set()}
        for r in records:
            if (r.scanner_kind, r.scanner_id) not in self.known and r.scanner_kind in wanted:
                wanted[r.scanner_kind].add(r.scanner_id)
        if not wanted["device"] and not wanted["user"]:
            return
        devices = await DeviceRepository(session).names_of_venue(
            self.venue_id, sorted(wanted["device"])
        )
        phones = await VenueRepository(session).masked_phones_of_members(
            self.venue_id, sorted(wanted["user"])
        )
        for kind, found in (("device", devices), ("user", phones)):
            for scanner_id in wanted[kind]:
                self.known[(kind, scanner_id)] = found.get(scanner_id, "")

    def name(self, record: ExportRow) -> str:
        return self.known.get((record.scanner_kind, record.scanner_id), "")


async def csv_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    venue_id: str,
    *,
    start: datetime | None,
    end: datetime | None,
    decision: str | None,
    english: bool,
) -> AsyncIterator[bytes]:
    """Every matching record as CSV bytes, newest first: the BOM and header, then one piece
    per keyset chunk, each chunk read (and its scanners named) in a short session of its own."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write(BOM)
    writer.writerow(CSV_HEADER)
    yield buffer.getvalue().encode()
    names = ScannerNames(venue_id)
    after: tuple[datetime, str] | None = None
    while True:
        async with sessionmaker() as session:
            rows = await AccessRecordRepository(session).export_chunk(
                venue_id, start=start, end=end, decision=decision, after=after, limit=CSV_CHUNK
            )
            if rows:
                await names.resolve(session, rows)
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(row_cells(r, names.name(r), english) for r in rows)
        yield buffer.getvalue().encode()
        if len(rows) < CSV_CHUNK:
            return
        after = (rows[-1].checked_at, rows[-1].record_id)


# Characters that a file name may not hold on Windows (or anywhere: `/`), and controls.
_UNSAFE_IN_FILE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')


def _stamp(at: datetime) -> str:
    """`20261128-080000` in China time (strftime's `%Y` does not pad years before 1000)."""
    try:
        t, zone = to_utc(at).astimezone(CST), ""
    except OverflowError:  # the last hours of year 9999 have no China time: UTC, marked
        t, zone = to_utc(at), "Z"
    return f"{t.year:04d}{t.month:02d}{t.day:02d}-{t.hour:02d}{t.minute:02d}{t.second:02d}{zone}"


def export_file_names(
    venue_id: str,
    venue_name: str,
    *,
    start: datetime | None,
    end: datetime | None,
    decision: str | None,
    english: bool,
) -> tuple[str, str]:
    """The file's name (the venue's name in it) and an ASCII name for clients that take only
    that (the venue's id instead), both naming the filters: `出入记录_南宁东站_from-20261128-
    000000_to-20261129-000000_deny.csv`, times in China time."""
    filters = []
    if start is not None:
        filters.append("from-" + _stamp(start))
    if end is not None:
        filters.append("to-" + _stamp(end))
    if decision is not None:
        filters.append(decision)
    # A name of up to 200 characters, 3 bytes each in UTF-8: keep the file name under 255.
    name = _UNSAFE_IN_FILE_NAME.sub("_", venue_name).strip(" .")[:50] or venue_id
    title = "access-records" if english else "出入记录"
    return (
        "_".join([title, name, *filters]) + ".csv",
        "_".join(["access-records", venue_id, *filters]) + ".csv",
    )
