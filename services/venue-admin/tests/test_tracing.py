"""Contact tracing's co-presence query: a case's visits, the other subjects' scans within the
window of one of them (in time order, so that a subject's first row is their first such scan),
windows merged per venue, the period and window refused out of bounds, the service key
required."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from hc_common.clock import rfc3339, utcnow
from hc_common.ids import new_id
from venue_admin.access import service as access_records
from venue_admin.tracing.repository import Visit
from venue_admin.tracing.service import Interval, merge_windows, split_in_time

SERVICE = {"Authorization": "Bearer dev-service-key"}
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# --- Window merging (no I/O) --------------------------------------------------------------------


def test_overlapping_and_touching_windows_at_a_venue_merge_into_one() -> None:
    visits = [
        Visit("a", T0),
        Visit("a", T0 + minutes(50)),  # overlaps T0's window (30 min each side)
        Visit("a", T0 + minutes(110)),  # touches the previous one's end exactly
        Visit("a", T0 + minutes(300)),  # far apart: an interval of its own
    ]
    assert merge_windows(visits, minutes(30)) == [
        Interval("a", T0 - minutes(30), T0 + minutes(140)),
        Interval("a", T0 + minutes(270), T0 + minutes(330)),
    ]


def test_windows_merge_per_venue_only_and_in_any_order_of_visits() -> None:
    visits = [Visit("b", T0 + minutes(10)), Visit("a", T0 + minutes(5)), Visit("a", T0)]
    assert merge_windows(visits, minutes(10)) == [
        Interval("a", T0 - minutes(10), T0 + minutes(15)),
        Interval("b", T0, T0 + minutes(20)),
    ]


def test_a_window_inside_another_keeps_the_outer_end() -> None:
    visits = [Visit("a", T0), Visit("a", T0 + minutes(1))]
    assert merge_windows(visits, minutes(60)) == [Interval("a", T0 - minutes(60), T0 + minutes(61))]
    assert merge_windows([], minutes(60)) == []


def test_a_long_trace_is_cut_in_time_into_halves_that_share_no_scan() -> None:
    """The two parts read at once on PostgreSQL: half the intervals' length each, every time
    of the first before every time of the second, nothing lost at the cut."""
    intervals = [
        Interval("a", T0, T0 + minutes(60)),
        Interval("b", T0 + minutes(30), T0 + minutes(90)),
        Interval("c", T0 + minutes(200), T0 + minutes(260)),
    ]
    first, second = split_in_time(intervals)
    length = [sum((i.end - i.start for i in part), timedelta()) for part in (first, second)]
    assert abs(length[0] - length[1]) <= timedelta(seconds=2)
    cut = max(i.end for i in first)
    assert all(i.start > cut for i in second)
    # Every instant of every interval, to the microsecond, is in exactly one part.
    for whole in intervals:
        pieces = sorted(
            (i for i in first + second if i.venue_id == whole.venue_id), key=lambda i: i.start
        )
        assert pieces[0].start == whole.start and pieces[-1].end == whole.end
        for left, right in pairwise(pieces):
            assert right.start == left.end + timedelta(microseconds=1)


# --- The endpoint on a real database ------------------------------------------------------------


def rows(parts: list[dict[str, list[Any]]]) -> list[tuple[Any, ...]]:
    """The answer's contacts, parts of columns, as rows (subject_id, venue_id, checked_at,
    masked_name), part after part."""
    columns = ("subject_ids", "venue_ids", "checked_at", "masked_names")
    assert all(sorted(part) == sorted(columns) for part in parts)
    return [row for part in parts for row in zip(*(part[c] for c in columns), strict=True)]


def scan(venue_id: str, subject_id: str | None, at: datetime, **extra: Any) -> dict[str, Any]:
    """An access record as the verifier writes it."""
    return {
        "record_id": new_id(),
        "venue_id": venue_id,
        "checked_at": at,
        "decision": "pass",
        "reasons": [],
        "masked_name": "李*华",
        "color": "green",
        "credential_id": new_id(),
        "subject_id": subject_id,
        "scanner": {"kind": "user", "id": new_id()},
        **extra,
    }


async def test_visits_and_every_co_present_scan_in_time_order(va) -> None:
    admin = va.user()
    station = await va.venue(admin, name="南宁东站")
    market = await va.venue(admin, name="中山路市场")
    case, near, twice, late, denied = (new_id() for _ in range(5))
    now = utcnow().replace(microsecond=0)
    t = now - timedelta(days=2)
    await access_records.store(
        va.app.state.db.sessionmaker,
        [
            scan(station, case, t),
            scan(station, case, t + minutes(20)),  # merged with the visit before
            scan(market, case, t + minutes(120)),
            scan(station, case, t - timedelta(days=5)),  # before `from`: not a visit
            scan(station, near, t + minutes(45), masked_name="刘*兰"),  # 30 min of the 2nd visit
            scan(station, near, t + minutes(48)),  # the same subject again
            scan(market, twice, t + minutes(95)),  # at the market first...
            scan(station, twice, t + minutes(100)),  # ...not within a window here
            scan(station, twice, t - minutes(10)),  # ...and earlier here: their first
            scan(station, late, t + minutes(51)),  # 31 min after the last station visit
            scan(station, None, t + minutes(5)),  # a credential that did not check
            scan(market, denied, t + minutes(150), decision="deny", reasons=["color_red"]),
            scan(new_id(), new_id(), t),  # another venue altogether
        ],
    )
    response = await va.client.post(
        "/internal/v1/co-presence",
        headers=SERVICE,
        json={
            "subject_id": case,
            "from": rfc3339(t - timedelta(days=1)),
            "to": rfc3339(now),
            "window_minutes": 30,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["visits"] == [
        {"venue_id": station, "venue_name": "南宁东站", "checked_at": rfc3339(t)},
        {"venue_id": station, "venue_name": "南宁东站", "checked_at": rfc3339(t + minutes(20))},
        {"venue_id": market, "venue_name": "中山路市场", "checked_at": rfc3339(t + minutes(120))},
    ]
    # Columns, in time order; a subject's first row is their first scan (health-records
    # keeps that one), with the name that scan showed.
    assert rows(body["contacts"]) == [
        (twice, station, rfc3339(t - minutes(10)), "李*华"),
        (near, station, rfc3339(t + minutes(45)), "刘*兰"),
        (near, station, rfc3339(t + minutes(48)), "李*华"),
        (twice, market, rfc3339(t + minutes(95)), "李*华"),
        (denied, market, rfc3339(t + minutes(150)), "李*华"),
    ]
    # Retention: 28 days by default.
    kept_since = datetime.fromisoformat(body["records_kept_since"])
    assert abs(kept_since - (utcnow() - timedelta(days=28))) < timedelta(minutes=1)


async def test_a_subject_without_scans_has_empty_lists(va) -> None:
    now = utcnow()
    response = await va.client.post(
        "/internal/v1/co-presence",
        headers=SERVICE,
        json={
            "subject_id": new_id(),
            "from": rfc3339(now - timedelta(days=14)),
            "to": rfc3339(now),
            "window_minutes": 240,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["visits"] == []
    assert rows(response.json()["contacts"]) == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"window_minutes": 0}, "invalid_window"),
        ({"window_minutes": 241}, "invalid_window"),
        ({"to": rfc3339(T0 - minutes(1))}, "invalid_period"),
        ({"to": rfc3339(T0 + timedelta(days=14, seconds=1))}, "period_too_long"),
        ({"subject_id": "not-an-id"}, "invalid_id"),
        ({"from": "yesterday"}, "validation_error"),
    ],
)
async def test_out_of_bounds_queries_are_422_with_a_code(va, change, code) -> None:
    body = {"subject_id": new_id(), "from": rfc3339(T0), "to": rfc3339(T0), "window_minutes": 30}
    response = await va.client.post(
        "/internal/v1/co-presence", headers=SERVICE, json={**body, **change}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


async def test_only_the_services_may_ask(va) -> None:
    body = {"subject_id": new_id(), "from": rfc3339(T0), "to": rfc3339(T0), "window_minutes": 30}
    admin = va.user()
    for headers in ({}, admin.headers, {"Authorization": "Bearer wrong"}):
        response = await va.client.post("/internal/v1/co-presence", headers=headers, json=body)
        assert response.status_code == 401, response.text


async def test_a_tie_between_venues_goes_to_the_smaller_venue_id(va) -> None:
    admin = va.user()
    first, second = sorted([await va.venue(admin, name="甲站"), await va.venue(admin, name="乙站")])
    case, both, blank = new_id(), new_id(), new_id()
    t = utcnow().replace(microsecond=0) - timedelta(hours=3)
    await access_records.store(
        va.app.state.db.sessionmaker,
        [
            scan(second, case, t),
            scan(first, case, t + minutes(1)),
            # The same instant at both venues (and a fraction of a second, not shown).
            scan(second, both, t + timedelta(seconds=30.25), masked_name="乙*"),
            scan(first, both, t + timedelta(seconds=30.25), masked_name="甲*"),
            scan(first, blank, t + minutes(2), masked_name=None),
        ],
    )
    response = await va.client.post(
        "/internal/v1/co-presence",
        headers=SERVICE,
        json={
            "subject_id": case,
            "from": rfc3339(t - minutes(1)),
            "to": rfc3339(t + minutes(2)),
            "window_minutes": 5,
        },
    )
    assert response.status_code == 200, response.text
    assert rows(response.json()["contacts"]) == [
        (both, first, rfc3339(t + minutes(0.5)), "甲*"),
        (both, second, rfc3339(t + minutes(0.5)), "乙*"),
        (blank, first, rfc3339(t + minutes(2)), None),
    ]
