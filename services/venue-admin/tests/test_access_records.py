"""Access records: consumed from the ACCESS stream exactly once per record id, listed newest
first with filters and cursors, members only, purged after retention (the CSV export:
test_access_csv.py)."""

import asyncio
from datetime import datetime, timedelta

import nats
import pytest
from sqlalchemy import func, select

from hc_common.clock import rfc3339, utcnow
from hc_common.events.consumer import InvalidPayload
from hc_common.events.envelope import ACCESS_RECORD_BATCH, ACCESS_RECORD_CREATED, Envelope
from hc_common.ids import new_id
from hc_common.testing import eventually
from venue_admin.access import service as access_records
from venue_admin.access.handlers import store_access_records
from venue_admin.access.models import AccessRecord


def record(
    venue_id: str,
    *,
    at=None,
    decision: str = "pass",
    reasons=(),
    color="green",
    scanner=("user", "u1"),
) -> dict:
    """An access record as the verifier's `record()` writes it."""
    return {
        "record_id": new_id(),
        "venue_id": venue_id,
        "checked_at": (at or utcnow()).isoformat(),
        "decision": decision,
        "reasons": list(reasons),
        "masked_name": "李*华",
        "color": color,
        "credential_id": new_id(),
        "scanner": {"kind": scanner[0], "id": scanner[1]},
    }


async def stored(va, venue_id: str) -> list[str]:
    async with va.app.state.db.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(AccessRecord.record_id).where(AccessRecord.venue_id == venue_id)
                )
            ).all()
        )


async def wait_for_count(va, venue_id: str, count: int, seconds: float = 20) -> list[str]:
    """The venue's stored record ids once there are at least `count`, else what there is."""

    async def enough() -> list[str] | None:
        ids = await stored(va, venue_id)
        return ids if len(ids) >= count else None

    return await eventually(enough, timeout=seconds, interval=0.1) or await stored(va, venue_id)


async def test_each_record_stored_once_despite_duplicates_and_a_consumer_restart(
    va, nats_url: str
) -> None:
    venue_id = new_id()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    first = [record(venue_id) for _ in range(300)]
    second = [record(venue_id) for _ in range(200)]

    async def publish(data: dict, msg_id: str) -> None:
        envelope = Envelope(id=data["record_id"], type=ACCESS_RECORD_CREATED, data=data)
        await js.publish(
            ACCESS_RECORD_CREATED, envelope.to_bytes(), headers={"Nats-Msg-Id": msg_id}
        )

    try:
        for data in first:
            await publish(data, data["record_id"])
            # The same record again under another message id, as after a relay crash past
            # JetStream's duplicate window: only venue-admin can drop this one.
            await publish(data, data["record_id"] + "-again")
        await wait_for_count(va, venue_id, 1)
        for consumer in va.app.state.access_consumers:
            await consumer.stop()  # mid-stream
        for data in second:
            await publish(data, data["record_id"])
        for data in first[:50] + second[:50]:
            await publish(data, "late-" + data["record_id"])
        for consumer in va.app.state.access_consumers:
            consumer.start()
        # Messages fetched but not acked when the consumer stopped come back after the
        # consumer's ack wait (30 s): at least once, then dropped by record id.
        ids = await wait_for_count(va, venue_id, 500, seconds=60)
        await asyncio.sleep(1)  # let any redelivery land, then count again
        ids = await stored(va, venue_id)
    finally:
        await nc.close()
    assert sorted(ids) == sorted(d["record_id"] for d in first + second)
    assert len(ids) == len(set(ids)) == 500


async def test_batches_and_single_records_are_stored_once_each(va, nats_url: str) -> None:
    """What verifiers send (batches of records) and what earlier verifiers sent (a record an
    event), side by side; the same records again in batches cut elsewhere (a verifier that
    restarted between noting its offset and shipping) are kept once."""
    venue_id = new_id()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    records = [record(venue_id) for _ in range(450)]

    async def publish_batch(part: list[dict], pack_id: str) -> None:
        envelope = Envelope(id=pack_id, type=ACCESS_RECORD_BATCH, data={"records": part})
        await js.publish(ACCESS_RECORD_BATCH, envelope.to_bytes(), headers={"Nats-Msg-Id": pack_id})

    try:
        for start in (0, 200):
            part = records[start : start + 200]
            await publish_batch(part, f"{part[0]['record_id']}+{len(part)}")
        again = records[100:300]
        await publish_batch(again, f"{again[0]['record_id']}+{len(again)}")
        for data in records[400:]:
            envelope = Envelope(id=data["record_id"], type=ACCESS_RECORD_CREATED, data=data)
            await js.publish(
                ACCESS_RECORD_CREATED, envelope.to_bytes(), headers={"Nats-Msg-Id": envelope.id}
            )
        await wait_for_count(va, venue_id, 450)
        await asyncio.sleep(1)  # let anything late land, then count again
        ids = await stored(va, venue_id)
    finally:
        await nc.close()
    assert sorted(ids) == sorted(d["record_id"] for d in records)
    assert len(ids) == len(set(ids)) == 450


async def test_a_batch_that_does_not_fit_is_refused_whole(va) -> None:
    venue_id = new_id()
    good, bad = record(venue_id), {**record(venue_id), "decision": "maybe"}
    envelope = Envelope(type=ACCESS_RECORD_BATCH, data={"records": [good, bad]})
    with pytest.raises(InvalidPayload):
        await store_access_records(va.app.state.db.sessionmaker, [envelope])
    assert await stored(va, venue_id) == []  # the consumer dead-letters it whole, for a replay


async def test_ingest_is_idempotent_and_keeps_the_fields(va) -> None:
    venue_id = new_id()
    data = record(
        venue_id,
        decision="deny",
        reasons=["color_red", "nat_missing"],
        color="red",
        scanner=("device", "dev1"),
    )
    envelope = Envelope(type=ACCESS_RECORD_CREATED, data=data)
    sessionmaker = va.app.state.db.sessionmaker
    assert await store_access_records(sessionmaker, [envelope, envelope]) == 1  # rows new
    assert await store_access_records(sessionmaker, [envelope]) == 0
    # Payloads that do not fit the schema are dropped; the rest of their batch is stored.
    broken = [
        {"record_id": new_id(), "venue_id": venue_id},
        {**record(venue_id), "decision": "maybe"},
        {**record(venue_id), "checked_at": "yesterday"},
        {**record(venue_id), "scanner": {"kind": "drone", "id": "d1"}},
    ]
    after_them = record(venue_id)
    await store_access_records(
        sessionmaker,
        [Envelope(type=ACCESS_RECORD_CREATED, data=d) for d in [*broken, after_them]],
    )
    async with sessionmaker() as session:
        rows = list(
            (
                await session.scalars(select(AccessRecord).where(AccessRecord.venue_id == venue_id))
            ).all()
        )
    assert sorted(r.record_id for r in rows) == sorted([data["record_id"], after_them["record_id"]])
    row = next(r for r in rows if r.record_id == data["record_id"])
    assert (row.decision, row.reasons, row.color, row.masked_name) == (
        "deny",
        ["color_red", "nat_missing"],
        "red",
        "李*华",
    )
    assert (row.scanner_kind, row.scanner_id) == ("device", "dev1")
    assert row.credential_id == data["credential_id"]
    assert row.checked_at == datetime.fromisoformat(data["checked_at"])


async def _venue_with_records(va):
    admin = va.user()
    venue_id = await va.venue(admin)
    now = utcnow().replace(microsecond=0)
    rows = [
        record(
            venue_id,
            at=now - timedelta(minutes=i),
            decision=["pass", "deny", "manual_check"][i % 3],
            reasons=[[], ["color_yellow", "nat_too_old"], ["status_unavailable"]][i % 3],
            color=["green", "yellow", None][i % 3],
        )
        for i in range(12)
    ]
    await store_access_records(
        va.app.state.db.sessionmaker, [Envelope(type=ACCESS_RECORD_CREATED, data=r) for r in rows]
    )
    return admin, venue_id, rows, now


async def test_list_newest_first_with_cursor_and_filters(va) -> None:
    admin, venue_id, rows, now = await _venue_with_records(va)
    url = f"/v1/venues/{venue_id}/access-records"
    seen, cursor = [], None
    while True:
        params = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await va.client.get(url, headers=admin.headers, params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["record_id"] for item in seen] == [r["record_id"] for r in rows]
    first = seen[0]
    assert first == {
        "record_id": rows[0]["record_id"],
        "checked_at": rfc3339(now),
        "decision": "pass",
        "reasons": [],
        "masked_name": "李*华",
        "color": "green",
        "scanner": {"kind": "user", "id": "u1"},
    }
    denied = (await va.client.get(url, headers=admin.headers, params={"decision": "deny"})).json()[
        "items"
    ]
    assert [i["record_id"] for i in denied] == [r["record_id"] for r in rows[1::3]]
    assert denied[0]["reasons"] == ["color_yellow", "nat_too_old"]
    window = (
        await va.client.get(
            url,
            headers=admin.headers,
            params={
                "from": rfc3339(now - timedelta(minutes=5)),
                "to": rfc3339(now - timedelta(minutes=2)),
            },
        )
    ).json()["items"]
    # `from` inclusive (5 minutes ago), `to` exclusive (2 minutes ago)
    assert [i["record_id"] for i in window] == [r["record_id"] for r in rows[3:6]]
    assert (
        await va.client.get(url, headers=admin.headers, params={"decision": "maybe"})
    ).status_code == 422
    assert (
        await va.client.get(url, headers=admin.headers, params={"limit": 501})
    ).status_code == 422
    bad_cursor = await va.client.get(url, headers=admin.headers, params={"cursor": "!!"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["code"] == "invalid_cursor"


async def test_members_only(va) -> None:
    admin, venue_id, _rows, _ = await _venue_with_records(va)
    staff = await va.add_sub_admin(venue_id, admin)
    url = f"/v1/venues/{venue_id}/access-records"
    as_staff = await va.client.get(url, headers=staff.headers)
    assert as_staff.status_code == 200 and len(as_staff.json()["items"]) == 12
    outsider = await va.client.get(url, headers=va.user().headers)
    assert outsider.status_code == 403 and outsider.json()["code"] == "forbidden"
    outsider_csv = await va.client.get(url, headers={**va.user().headers, "Accept": "text/csv"})
    assert outsider_csv.status_code == 403
    other_admin = va.user()
    other_venue = await va.venue(other_admin)
    theirs = await va.client.get(
        f"/v1/venues/{other_venue}/access-records", headers=other_admin.headers
    )
    assert theirs.json()["items"] == []


async def test_records_older_than_retention_are_purged(va) -> None:
    venue_id = new_id()
    now = utcnow()
    old = record(venue_id, at=now - timedelta(days=28, minutes=1))
    kept = record(venue_id, at=now - timedelta(days=27, hours=23))
    sessionmaker = va.app.state.db.sessionmaker
    await store_access_records(
        sessionmaker, [Envelope(type=ACCESS_RECORD_CREATED, data=d) for d in (old, kept)]
    )
    assert va.app.state.settings.access_record_retention_days == 28
    removed = await access_records.purge(sessionmaker, 28)
    assert removed >= 1
    assert await stored(va, venue_id) == [kept["record_id"]]
    async with sessionmaker() as session:
        oldest = await session.scalar(select(func.min(AccessRecord.checked_at)))
    assert oldest >= now - timedelta(days=28)
