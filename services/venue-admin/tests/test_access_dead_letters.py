"""Access records venue-admin cannot store go to the dead letters instead of being lost or
holding up the records behind them, and the operator's commands (`python -m
venue_admin.access dead-letters | replay-dead-letters`) list them and store them once the
cause is gone. A real NATS with authentication (venue-admin consumes and dead-letters with
its own user, the verifier publishes with its own) and a real database."""

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from sqlalchemy import select, text

from hc_common.clock import utcnow
from hc_common.events.consumer import DEAD_LETTER_STREAM
from hc_common.events.deadletters import DeadLetter, list_dead_letters
from hc_common.events.envelope import ACCESS_RECORD_BATCH, ACCESS_RECORD_CREATED, Envelope
from hc_common.ids import new_id
from hc_common.migrations import upgrade_head
from hc_common.testing import NatsServer, app_client, eventually, test_database_url
from venue_admin import SERVICE_ROOT
from venue_admin.access.models import AccessRecord
from venue_admin.config import Settings
from venue_admin.main import create_app

MASKED_NAME = "李*华"
# What a test server's store has room for (the declared sizes are a province's).
TEST_STREAM_BYTES = 64 * 1024**2


def record(venue_id: str, **overrides: Any) -> dict[str, Any]:
    """An access record as the verifier writes it."""
    return {
        "record_id": new_id(),
        "venue_id": venue_id,
        "checked_at": utcnow().isoformat(),
        "decision": "pass",
        "reasons": [],
        "masked_name": MASKED_NAME,
        "color": "green",
        "credential_id": new_id(),
        "scanner": {"kind": "device", "id": "gate-1"},
        **overrides,
    }


def envelope_bytes(data: dict[str, Any]) -> bytes:
    """A record in an event of its own, as verifiers of earlier versions sent them."""
    return Envelope(id=data["record_id"], type=ACCESS_RECORD_CREATED, data=data).to_bytes()


def batch_bytes(records: list[dict[str, Any]]) -> bytes:
    """Records in a batch event, as the verifier's journal ships them."""
    pack_id = f"{records[0]['record_id']}+{len(records)}"
    return Envelope(id=pack_id, type=ACCESS_RECORD_BATCH, data={"records": records}).to_bytes()


@dataclass
class Running:
    app: FastAPI
    settings: Settings
    nats: NatsServer
    js: JetStreamContext  # the operator's
    verifier: Client

    @property
    def durable(self) -> str:
        return self.settings.access_consumer_durable

    @property
    def batch_durable(self) -> str:
        return self.settings.access_batch_consumer_durable

    async def publish(self, payload: bytes, subject: str = ACCESS_RECORD_CREATED) -> int:
        """Publish as the verifier does; the event's sequence in ACCESS."""
        ack = await self.verifier.jetstream().publish(
            subject, payload, headers={"Nats-Msg-Id": new_id()}
        )
        return ack.seq

    async def stored(self, venue_id: str) -> set[str]:
        async with self.app.state.db.sessionmaker() as session:
            rows = await session.scalars(
                select(AccessRecord.record_id).where(AccessRecord.venue_id == venue_id)
            )
            return set(rows.all())

    async def dead_letters(self) -> tuple[int, list[DeadLetter]]:
        return await list_dead_letters(self.js, "venue-admin", self.durable)

    async def command(self, *args: str) -> tuple[int, str]:
        return await access_command(self.nats, self.settings.database_url, self.durable, *args)


async def access_command(
    nats: NatsServer, database_url: str, durable: str, *args: str
) -> tuple[int, str]:
    """`python -m venue_admin.access ...` as an operator runs it, with venue-admin's
    settings; its exit status and output."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("NATS_", "VENUE_ADMIN_"))
    }
    env |= {
        "APP_ENV": "dev",
        "DATABASE_URL": database_url,
        **nats.env("venue-admin"),  # venue-admin's own rights are enough
        "VENUE_ADMIN_ACCESS_CONSUMER_DURABLE": durable,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "venue_admin.access",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


def metric(name: str, durable: str) -> float:
    return REGISTRY.get_sample_value(name, {"durable": durable}) or 0.0


@pytest.fixture
async def venue_admin(
    nats_server: NatsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Running]:
    name = "va_" + request.node.name.removeprefix("test_")[:40]
    # Both helpers run their own event loop: keep them off this one.
    url = await asyncio.to_thread(test_database_url, name, tmp_path)
    await asyncio.to_thread(upgrade_head, SERVICE_ROOT, url)
    operator = await nats_server.connect("operator")
    verifier = await nats_server.connect("verifier")
    js = operator.jetstream()
    settings = Settings(
        database_url=url,
        nats_url=nats_server.url,
        nats_user="venue-admin",
        nats_password=nats_server.passwords()["venue-admin"],
        app_env="dev",
        access_consumer_durable="va-dlq-" + new_id(),
        access_consumer_max_deliver=2,
        access_consumer_retry_delay_seconds=0.1,
    )
    issuer = httpx.MockTransport(lambda request: httpx.Response(200, json={"keys": []}))
    app = create_app(settings, issuer_transport=issuer)
    try:
        async with app_client(app):
            assert await app.state.bus.wait_ready(10)
            yield Running(app, settings, nats_server, js, verifier)
    finally:
        await verifier.close()
        await operator.close()


async def test_a_poison_record_goes_to_the_dead_letters_and_the_records_around_it_are_stored(
    venue_admin: Running,
) -> None:
    va = venue_admin
    venue_id = new_id()
    before, after = record(venue_id), record(venue_id)
    # A decision this venue-admin does not know (as from a newer verifier): it fails the
    # schema on every delivery. store_access_records would drop it (and the record with
    # it), so the consumer checks the schema first and dead-letters it at once.
    poison = record(venue_id, decision="waived")
    poison_bytes = envelope_bytes(poison)
    undecodable = envelope_bytes(record(venue_id))[:60]  # cut short
    sequences = {
        "before": await va.publish(envelope_bytes(before)),
        "poison": await va.publish(poison_bytes),
        "undecodable": await va.publish(undecodable),
        "after": await va.publish(envelope_bytes(after)),
    }

    async def settled() -> bool:
        stored = await va.stored(venue_id)
        return stored == {before["record_id"], after["record_id"]} and (
            (await va.dead_letters())[0] == 2
        )

    assert await eventually(settled, 20), (await va.stored(venue_id), await va.dead_letters())
    _, letters = await va.dead_letters()
    by_sequence = {int(letter.headers["Dead-Letter-Sequence"]): letter for letter in letters}
    assert set(by_sequence) == {sequences["poison"], sequences["undecodable"]}
    poison_letter = by_sequence[sequences["poison"]].headers
    assert poison_letter["Dead-Letter-Error"] == "InvalidPayload"
    assert poison_letter["Dead-Letter-Event-Id"] == poison["record_id"]
    assert poison_letter["Dead-Letter-Deliveries"] == "1"  # not tried again: it cannot pass
    undecodable_letter = by_sequence[sequences["undecodable"]].headers
    assert undecodable_letter["Dead-Letter-Error"] == "UndecodableEvent"
    for sequence, letter in by_sequence.items():
        assert letter.headers["Dead-Letter-Subject"] == ACCESS_RECORD_CREATED
        assert letter.headers["Dead-Letter-Stream"] == "ACCESS"
        assert letter.headers["Dead-Letter-Consumer"] == va.durable
        assert letter.headers["Nats-Msg-Id"] == f"ACCESS-{sequence}"
        assert not any(MASKED_NAME in value for value in letter.headers.values())
        stored = await va.js.get_msg(DEAD_LETTER_STREAM, letter.sequence)
        assert stored.subject == f"dead_letter.venue_admin.{va.durable}"
    poison_stored = await va.js.get_msg(
        DEAD_LETTER_STREAM, by_sequence[sequences["poison"]].sequence
    )
    assert poison_stored.data == poison_bytes  # the original bytes, to replay
    assert metric("events_dead_lettered_total", va.durable) == 2
    assert metric("events_redelivered_total", va.durable) == 0

    status, output = await va.command("dead-letters")
    assert status == 0, output
    assert f"2 dead letters of {va.durable}" in output
    assert f"Dead-Letter-Sequence={sequences['poison']}" in output
    assert "Dead-Letter-Error=UndecodableEvent" in output
    assert MASKED_NAME not in output  # no payload

    # Nothing has changed: a replay stores neither and leaves both (not dropped).
    status, output = await va.command("replay-dead-letters")
    assert status == 1, output
    assert "replayed 0" in output and "left: 2" in output, output
    assert (await va.dead_letters())[0] == 2
    assert await va.stored(venue_id) == {before["record_id"], after["record_id"]}


async def test_a_batch_that_does_not_fit_goes_to_the_dead_letters_whole(
    venue_admin: Running,
) -> None:
    """One record a newer verifier wrote (a decision this venue-admin does not know) makes
    its batch unreadable: the batch goes to the dead letters as it came, every record in it
    kept for a replay, and the batches around it are stored."""
    va = venue_admin
    venue_id = new_id()
    before, after = [record(venue_id) for _ in range(3)], [record(venue_id) for _ in range(3)]
    poison = [record(venue_id), record(venue_id, decision="waived")]
    poison_bytes = batch_bytes(poison)
    await va.publish(batch_bytes(before), ACCESS_RECORD_BATCH)
    sequence = await va.publish(poison_bytes, ACCESS_RECORD_BATCH)
    await va.publish(batch_bytes(after), ACCESS_RECORD_BATCH)
    wanted = {data["record_id"] for data in before + after}

    async def batch_letters() -> tuple[int, list[DeadLetter]]:
        return await list_dead_letters(va.js, "venue-admin", va.batch_durable)

    async def settled() -> bool:
        return await va.stored(venue_id) == wanted and (await batch_letters())[0] == 1

    assert await eventually(settled, 20), (await va.stored(venue_id), await batch_letters())
    _, (letter,) = await batch_letters()
    assert letter.headers["Dead-Letter-Error"] == "InvalidPayload"
    assert letter.headers["Dead-Letter-Event-Id"] == f"{poison[0]['record_id']}+2"
    assert letter.headers["Dead-Letter-Deliveries"] == "1"  # not tried again: it cannot pass
    assert letter.headers["Dead-Letter-Subject"] == ACCESS_RECORD_BATCH
    assert letter.headers["Dead-Letter-Consumer"] == va.batch_durable
    assert letter.headers["Dead-Letter-Sequence"] == str(sequence)
    assert not any(MASKED_NAME in value for value in letter.headers.values())
    assert (await va.js.get_msg(DEAD_LETTER_STREAM, letter.sequence)).data == poison_bytes

    status, output = await va.command("dead-letters")
    assert status == 0 and f"1 dead letters of {va.batch_durable}" in output, output
    # Nothing has changed: a replay stores none of it and leaves it.
    status, output = await va.command("replay-dead-letters")
    assert status == 1, output
    assert f"replayed 0 dead letters of {va.batch_durable}; left: 1" in output, output
    assert await va.stored(venue_id) == wanted


async def test_records_that_failed_while_the_store_was_away_are_replayed(
    venue_admin: Running,
) -> None:
    va = venue_admin
    venue_id = new_id()
    records = [record(venue_id) for _ in range(3)]
    engine = va.app.state.db.engine
    # The table out of reach (as in a migration gone wrong): every insert fails.
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE access_records RENAME TO access_records_away"))
    try:
        for data in records:
            await va.publish(envelope_bytes(data))

        async def all_dead_lettered() -> bool:
            return (await va.dead_letters())[0] == len(records)

        assert await eventually(all_dead_lettered, 20), await va.dead_letters()
        _, letters = await va.dead_letters()
        assert {letter.headers["Dead-Letter-Event-Id"] for letter in letters} == {
            data["record_id"] for data in records
        }
        for letter in letters:
            # Tried on both allowed deliveries (the second after the retry delay).
            assert letter.headers["Dead-Letter-Deliveries"] == "2"
            # The driver's error class: SQLite's and PostgreSQL's name a missing table
            # differently.
            assert letter.headers["Dead-Letter-Error"] in {"OperationalError", "ProgrammingError"}
        assert metric("events_dead_lettered_total", va.durable) == len(records)
        assert metric("events_redelivered_total", va.durable) == len(records)
        # Not acked before they were safe in the dead letters, then acked: ACCESS (a work
        # queue) holds none of them any more.
        info = await va.js.consumer_info("ACCESS", va.durable)
        assert (info.num_pending, info.num_ack_pending) == (0, 0)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE access_records_away RENAME TO access_records"))

    status, output = await va.command("replay-dead-letters")
    assert status == 0, output
    assert f"replayed {len(records)} dead letters of {va.durable}; left: 0" in output
    assert await va.stored(venue_id) == {data["record_id"] for data in records}
    assert (await va.dead_letters())[0] == 0
    state = (await va.js.stream_info(DEAD_LETTER_STREAM)).state
    assert state.messages == 0  # the work queue removed the replayed letters
    status, output = await va.command("dead-letters")
    assert status == 0 and f"0 dead letters of {va.durable}" in output, output


async def test_the_commands_say_so_when_the_bus_has_no_dead_letters_stream(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}"  # not opened by a listing
    for command in ("dead-letters", "replay-dead-letters"):
        status, output = await access_command(nats_server, database_url, "va-none", command)
        assert status == 0, output
        assert "no DEAD_LETTERS stream on the message bus: nothing is dead-lettered" in output
