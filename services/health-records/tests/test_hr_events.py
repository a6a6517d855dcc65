"""Status events: one per changed person and batch, versions that only grow, and none lost or
reordered while NATS is down (a nats-server of this test's own, stopped and started again)."""

import asyncio
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import httpx
import nats
import orjson
from hypothesis import given
from hypothesis import strategies as st
from nats.js.api import DeliverPolicy

from hc_common.events.envelope import STATUS_CHANGED
from hc_common.testing import NatsServer, app_client, eventually
from health_records.main import create_app
from health_records.testing import (
    AUTHORITY,
    LAB,
    SITE,
    hr_settings,
    nat_row,
    new_id_number,
    status_of,
    vaccination_row,
)


async def read_status_events(url: str, expected: int) -> list[dict[str, Any]]:
    """Every status event in the HEALTH stream, in stream order (waits for `expected`)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(
            STATUS_CHANGED, stream="HEALTH", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        events: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 30
        while len(events) < expected and asyncio.get_running_loop().time() < deadline:
            try:
                msg = await sub.next_msg(timeout=1)
            except TimeoutError:
                continue
            events.append(orjson.loads(msg.data))
        # Nothing beyond what was expected arrives either.
        try:
            extra = await sub.next_msg(timeout=1)
            events.append(orjson.loads(extra.data))
        except TimeoutError:
            pass
        return events
    finally:
        await nc.close()


async def test_every_change_delivered_in_order_across_a_nats_outage(
    nats_server: NatsServer, hr_database: str
) -> None:
    # As health-records itself: its own user, with its rights only.
    nats_env = nats_server.env("health-records")
    app = create_app(hr_settings(hr_database, nats_env.pop("NATS_URL"), **nats_env))
    async with app_client(app) as hr:
        assert await eventually(lambda: _ready(hr), 30)
        a, b = new_id_number(), new_id_number()
        # One batch, two rows each for two persons: one event per person.
        batch = [
            nat_row(a, hours_ago=30),
            nat_row(a, hours_ago=20),
            nat_row(b, hours_ago=10),
            nat_row(b, hours_ago=12),
        ]
        assert (
            await hr.post("/v1/nat-results/batch", headers=LAB, json={"results": batch})
        ).json()["accepted"] == 4
        assert await eventually(lambda: _outbox_empty(app), 30)

        nats_server.stop()
        changes = [
            hr.post(
                "/v1/codes",
                headers=AUTHORITY,
                json={"id_number": a, "color": "yellow", "reason": "行程"},
            ),
            hr.post(
                "/v1/nat-results/batch",
                headers=LAB,
                json={"results": [nat_row(b, result="positive", hours_ago=2)]},
            ),
            hr.post(
                "/v1/vaccinations/batch",
                headers=SITE,
                json={"records": [vaccination_row(a, dose=2), vaccination_row(b)]},
            ),
            hr.post(
                "/v1/codes",
                headers=AUTHORITY,
                json={"id_number": a, "color": "red", "reason": "密接"},
            ),
        ]
        for change in changes:  # one after the other: the order is the test
            assert (await change).status_code == 200
        assert await app.state.runtime.relay.pending() == 4 + 1  # waiting in the outbox

        nats_server.start()  # same port, same store
        assert await eventually(lambda: _outbox_empty(app), 30)
        final = {a: await status_of(hr, a), b: await status_of(hr, b)}

    events = await read_status_events(nats_server.url_as(), expected=2 + 5)
    assert [e["type"] for e in events] == [STATUS_CHANGED] * 7
    by_subject: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_subject[event["data"]["subject_id"]].append(event["data"])
    assert set(by_subject) == {final[a]["subject_id"], final[b]["subject_id"]}
    for status in final.values():
        seen = by_subject[status["subject_id"]]
        versions = [s["version"] for s in seen]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)
        assert seen[-1] == status  # the last event is the status as it stands
    assert [s["color"] for s in by_subject[final[a]["subject_id"]]] == [
        "green",
        "yellow",
        "yellow",
        "red",
    ]
    assert [s["color"] for s in by_subject[final[b]["subject_id"]]] == ["green", "red", "red"]
    # No ID number travels in an event.
    assert a not in str(events) and b not in str(events)


async def _ready(hr: httpx.AsyncClient) -> bool:
    return (await hr.get("/readyz")).status_code == 200


async def _outbox_empty(app: Any) -> bool:
    return await app.state.runtime.relay.pending() == 0


def test_a_status_event_carries_the_status_as_the_api_shows_it() -> None:
    # The same for a code set (a Person) and a batch (its PersonState): the status the API
    # answers, times in whole seconds, no masked ID number; valid as StatusChanged.
    from hc_common.events.envelope import Envelope
    from hc_common.events.schemas import parse_payload
    from health_records.person.events import status_changed_rows
    from health_records.person.models import Person
    from health_records.person.schemas import status_of
    from health_records.person.service import PersonState

    at = datetime(2026, 11, 27, 8, 0, 1, 250_000, tzinfo=UTC)
    state = PersonState.new("k" * 64, "01kbq6j1v2x3y4z5a6b7c8d9e0", at)
    state.apply({"nat_result": "positive", "nat_sample_time": at, "nat_report_time": None}, at)
    state.apply({"vaccine_doses": 2, "last_dose_at": at}, at)
    person = Person(
        **{name: getattr(state, name) for name in Person.__table__.c.keys() if hasattr(state, name)}
    )
    [(event_id, subject, payload, occurred_at)] = status_changed_rows([state], at)
    envelope = Envelope.from_bytes(payload)
    assert (envelope.id, envelope.type, envelope.occurred_at) == (event_id, subject, occurred_at)
    assert subject == STATUS_CHANGED
    assert envelope.data == status_of(person).model_dump(mode="json")
    assert envelope.data["updated_at"] == "2026-11-27T08:00:01Z"
    assert envelope.data["color"] == "red" and envelope.data["masked_id_number"] is None
    assert parse_payload(STATUS_CHANGED, envelope.data)["nat"]["report_time"] is None


_TIMES = st.one_of(
    st.none(),
    st.datetimes(
        datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC), allow_imaginary=False
    ),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["green", "yellow", "red"]),
            st.one_of(st.none(), st.text(max_size=20)),
            st.sampled_from([None, "negative", "positive"]),
            _TIMES,
            _TIMES,
            st.integers(0, 5),
            _TIMES,
            st.integers(1, 2**40),
            _TIMES,
        ),
        max_size=30,
    ),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
)
def test_a_batch_writes_its_events_byte_for_byte_as_the_envelope_writer(
    states: list[tuple[Any, ...]], occurred_at: datetime
) -> None:
    """A batch's events are written from a template with parts shared across the batch: the
    same bytes as encode_envelope of status_changed, whatever the values (escapes in a
    reason, times with fractions, no NAT, no doses), in order, each under its id."""
    from hc_common.events.envelope import encode_envelope
    from hc_common.ids import new_ids
    from health_records.person.events import status_changed, status_changed_rows
    from health_records.person.service import PersonState

    persons = [
        PersonState(
            f"{at:064x}",
            subject,
            "green",
            reason,
            color,
            nat,
            sample,
            report,
            doses,
            last,
            version,
            updated_at=updated or occurred_at,
        )
        for at, (
            (color, reason, nat, sample, report, doses, last, version, updated),
            subject,
        ) in enumerate(zip(states, new_ids(len(states)), strict=True))
    ]
    ids = new_ids(len(persons))
    expected = [
        (
            event_id,
            STATUS_CHANGED,
            encode_envelope(
                STATUS_CHANGED, status_changed(p), event_id=event_id, occurred_at=occurred_at
            )[2],
            occurred_at,
        )
        for p, event_id in zip(persons, ids, strict=True)
    ]
    assert status_changed_rows(persons, occurred_at, ids) == expected
