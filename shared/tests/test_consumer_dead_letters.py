"""The consumer's delivery limit and dead letters, and their replay, against a real NATS
server: a failing event is isolated from its batch, tried again with a delay and given up on
at its last delivery; an undecodable one or one the handler refuses goes at once; the rest
of the stream flows past them."""

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from hc_common.events.bus import EventBus
from hc_common.events.consumer import (
    DEAD_LETTER_STREAM,
    Consumer,
    PermanentEventError,
    dead_letter_subject,
)
from hc_common.events.deadletters import list_dead_letters, replay_dead_letters
from hc_common.events.envelope import Envelope
from hc_common.events.streams import SPECS
from hc_common.ids import new_id
from hc_common.testing import NatsServer, eventually

SERVICE = "test-service"
SUBJECT = "health_records.status.changed.v1"
# What a test server's store has room for (the declared sizes are a province's).
TEST_STREAM_BYTES = 64 * 1024**2


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats_server.connect("operator")
    yield client
    await client.close()


async def make_bus(server: NatsServer, streams: tuple[str, ...]) -> EventBus:
    bus = EventBus(
        server.url, SERVICE, streams, auth=server.auth("operator"), max_bytes=TEST_STREAM_BYTES
    )
    await bus.start(wait=10)
    return bus


async def add_dead_letter_stream(js: JetStreamContext) -> None:
    """DEAD_LETTERS as declared, made late (as by a service that declares it after the
    consumer's first dead letter)."""
    await js.add_stream(SPECS[DEAD_LETTER_STREAM].config(max_bytes=TEST_STREAM_BYTES))


async def publish(js: JetStreamContext, payload: bytes) -> int:
    """Publish to the HEALTH stream; the message's stream sequence."""
    ack = await js.publish(SUBJECT, payload, headers={"Nats-Msg-Id": new_id()})
    return ack.seq


def event(n: int, **extra: object) -> Envelope:
    return Envelope(type=SUBJECT, data={"n": n, **extra})


def metric(name: str, durable: str) -> float:
    return REGISTRY.get_sample_value(name, {"durable": durable}) or 0.0


class Handler:
    """Stores `n` of each event; fails on `poison`, refuses `refuse` for good."""

    def __init__(self) -> None:
        self.stored: set[int] = set()
        self.poison_tries = 0
        self.cured = False

    async def __call__(self, envelopes: list[Envelope]) -> None:
        for envelope in envelopes:
            if envelope.data.get("refuse"):
                raise PermanentEventError("refused")
            if envelope.data.get("poison") and not self.cured:
                self.poison_tries += 1
                raise RuntimeError("cannot store this one")
        self.stored.update(int(envelope.data["n"]) for envelope in envelopes)


async def test_a_poison_event_is_dead_lettered_and_the_events_behind_it_flow(
    nats_server: NatsServer, nc: Client
) -> None:
    js = nc.jetstream()
    bus = await make_bus(nats_server, ("HEALTH", DEAD_LETTER_STREAM))
    durable = "dlq-" + new_id()
    handler = Handler()
    consumer = Consumer(
        bus,
        stream="HEALTH",
        durable=durable,
        subject=SUBJECT,
        handler=handler,
        batch=10,
        max_deliver=3,
        retry_delay=0.05,
        max_retry_delay=0.2,
    )
    try:
        sequences: dict[str, int] = {}
        payloads: dict[str, bytes] = {}
        for n in range(4):
            await publish(js, event(n).to_bytes())
        poison = event(4, poison=True)
        payloads["poison"] = poison.to_bytes()
        sequences["poison"] = await publish(js, payloads["poison"])
        payloads["undecodable"] = event(5).to_bytes()[:20]  # cut short
        sequences["undecodable"] = await publish(js, payloads["undecodable"])
        refused = event(6, refuse=True)
        payloads["refused"] = refused.to_bytes()
        sequences["refused"] = await publish(js, payloads["refused"])
        for n in range(7, 12):
            await publish(js, event(n).to_bytes())
        consumer.start()

        async def settled() -> tuple[int, list[object]] | None:
            total, letters = await list_dead_letters(js, SERVICE, durable)
            return (total, letters) if total == 3 and len(handler.stored) == 9 else None

        assert await eventually(settled, 20), (handler.stored, await settled())
        assert handler.stored == {0, 1, 2, 3, 7, 8, 9, 10, 11}
        assert handler.poison_tries >= 3  # in its batch, then alone on each of 3 deliveries

        total, letters = await list_dead_letters(js, SERVICE, durable)
        by_sequence = {int(letter.headers["Dead-Letter-Sequence"]): letter for letter in letters}
        assert sorted(by_sequence) == sorted(sequences.values())
        expected = {
            "poison": ("RuntimeError", "3", poison.id),
            "undecodable": ("UndecodableEvent", "1", None),
            "refused": ("PermanentEventError", "1", refused.id),
        }
        subject = dead_letter_subject(SERVICE, durable)
        assert subject == "dead_letter.test_service." + durable
        for name, (error, deliveries, event_id) in expected.items():
            letter = by_sequence[sequences[name]]
            assert letter.headers["Dead-Letter-Error"] == error, name
            assert letter.headers["Dead-Letter-Deliveries"] == deliveries, name
            assert letter.headers.get("Dead-Letter-Event-Id") == event_id, name
            assert letter.headers["Dead-Letter-Subject"] == SUBJECT
            assert letter.headers["Dead-Letter-Stream"] == "HEALTH"
            assert letter.headers["Dead-Letter-Consumer"] == durable
            assert letter.headers["Nats-Msg-Id"] == f"HEALTH-{sequences[name]}"
            stored = await js.get_msg(DEAD_LETTER_STREAM, letter.sequence)
            assert stored.subject == subject
            assert stored.data == payloads[name]  # the original bytes

        assert metric("events_dead_lettered_total", durable) == 3
        # The poison was handed back after its 1st and 2nd deliveries, and given up on at
        # its 3rd; the others did not fail on a delivery of theirs.
        assert metric("events_redelivered_total", durable) == 2
        info = await js.consumer_info("HEALTH", durable)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)  # all settled

        # Replay once the cause is gone: the poison is handled and leaves the stream; the
        # undecodable one and the refused one still fail and stay.
        handler.cured = True
        report = await replay_dead_letters(js, SERVICE, durable, handler)
        assert (report.replayed, report.left) == (1, 2)
        assert 4 in handler.stored
        total, letters = await list_dead_letters(js, SERVICE, durable)
        assert total == 2
        assert {int(letter.headers["Dead-Letter-Sequence"]) for letter in letters} == {
            sequences["undecodable"],
            sequences["refused"],
        }
        # Listing and replaying leave no consumer behind (a work queue takes one per subject).
        assert [info.name for info in await js.consumers_info(DEAD_LETTER_STREAM)] == []
    finally:
        await consumer.stop()
        await bus.close()


async def test_an_event_whose_dead_lettering_fails_is_kept_until_it_succeeds(
    nats_server: NatsServer, nc: Client
) -> None:
    """No DEAD_LETTERS stream yet (or the bus refusing the publish): the poison stays in its
    stream, tried again, and reaches the dead letters once they can take it."""
    js = nc.jetstream()
    bus = await make_bus(nats_server, ("HEALTH",))
    durable = "dlq-" + new_id()
    handler = Handler()
    consumer = Consumer(
        bus,
        stream="HEALTH",
        durable=durable,
        subject=SUBJECT,
        handler=handler,
        max_deliver=2,
        retry_delay=0.05,
        max_retry_delay=0.1,
        service=SERVICE,
    )
    consumer.start()
    try:
        sequence = await publish(js, event(1, poison=True).to_bytes())
        await publish(js, event(2).to_bytes())

        async def tried_past_its_limit() -> bool:
            return handler.poison_tries >= 4 and handler.stored == {2}

        assert await eventually(tried_past_its_limit, 20), handler.poison_tries
        info = await js.consumer_info("HEALTH", durable)
        assert info.num_ack_pending + info.num_pending == 1  # kept, not acked
        assert metric("events_dead_lettered_total", durable) == 0

        await add_dead_letter_stream(js)

        async def dead_lettered() -> int:
            return (await list_dead_letters(js, SERVICE, durable))[0]

        assert await eventually(dead_lettered, 20) == 1
        _, [letter] = await list_dead_letters(js, SERVICE, durable)
        assert letter.headers["Dead-Letter-Sequence"] == str(sequence)
        assert int(letter.headers["Dead-Letter-Deliveries"]) > 2
        assert metric("events_dead_lettered_total", durable) == 1
    finally:
        await consumer.stop()
        await bus.close()


async def test_an_outage_of_the_store_is_waited_out_not_dead_lettered(
    nats_server: NatsServer, nc: Client
) -> None:
    """While `healthy` says the handler's store is down, every event fails on every
    delivery, past its limit: none is dead-lettered; all are stored once the store is back."""
    js = nc.jetstream()
    bus = await make_bus(nats_server, ("HEALTH", DEAD_LETTER_STREAM))
    durable = "dlq-" + new_id()
    store_up = False

    class Store(Handler):
        async def __call__(self, envelopes: list[Envelope]) -> None:
            if not store_up:
                self.poison_tries += 1
                raise ConnectionError("database away")
            await super().__call__(envelopes)

    async def healthy() -> bool:
        return store_up

    handler = Store()
    consumer = Consumer(
        bus,
        stream="HEALTH",
        durable=durable,
        subject=SUBJECT,
        handler=handler,
        max_deliver=2,
        retry_delay=0.05,
        max_retry_delay=0.1,
        service=SERVICE,
        healthy=healthy,
    )
    consumer.start()
    try:
        for n in range(3):
            await publish(js, event(n).to_bytes())

        async def well_past_the_limit() -> bool:
            return handler.poison_tries >= 12

        assert await eventually(well_past_the_limit, 20), handler.poison_tries
        assert (await list_dead_letters(js, SERVICE, durable))[0] == 0
        assert metric("events_dead_lettered_total", durable) == 0

        store_up = True

        async def all_stored() -> bool:
            return handler.stored == {0, 1, 2}

        assert await eventually(all_stored, 20), handler.stored
        assert (await list_dead_letters(js, SERVICE, durable))[0] == 0
    finally:
        await consumer.stop()
        await bus.close()


def test_retry_delays_double_up_to_the_maximum() -> None:
    consumer = Consumer(
        EventBus("nats://127.0.0.1:1", SERVICE),
        stream="HEALTH",
        durable="d",
        subject=SUBJECT,
        handler=Handler(),
        retry_delay=2,
        max_retry_delay=10,
    )
    assert [consumer.delay_after(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert consumer.dead_letter_subject == "dead_letter.test_service.d"
    with pytest.raises(ValueError):
        Consumer(
            EventBus("nats://127.0.0.1:1", SERVICE),
            stream="HEALTH",
            durable="d",
            subject=SUBJECT,
            handler=Handler(),
            max_deliver=0,
        )
