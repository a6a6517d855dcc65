"""The access-record journal: a record is on disk before the scan answers, reaches the stream
once, in order, in batch events (a few hundred records a message, the message id the first
record's id and the count); nothing is lost when the bus fails or the
process restarts; one writer holds a journal; a stop ships what it holds. The file-format
tests use a fake bus on a real directory; the stop and drain tests a real NATS server."""

import asyncio
import json
import logging
import os
import shutil
from pathlib import Path

import pytest

from hc_common.events.bus import EventBus
from hc_common.testing import NatsServer, eventually
from verifier.access.__main__ import drain
from verifier.access.spool import LOCK_NAME, AccessSpool, Backlog, ChunkNotStored, JournalLocked
from verifier.config import Settings

from .conftest import FakeBus

SUBJECT = "verifier.access_record.batch.v1"


def spool_in(directory: Path, bus: FakeBus, **options: float) -> AccessSpool:
    spool = AccessSpool(directory, bus, SUBJECT, **options)
    spool.open()
    return spool


def record(n: int) -> tuple[str, bytes]:
    return f"rec{n:03d}", b'{"record_id":"rec%03d","n":%d}' % (n, n)


def records_in(envelope: bytes) -> list[dict[str, object]]:
    """The records of a batch event, as venue-admin reads them."""
    event = json.loads(envelope)
    assert event["type"] == SUBJECT
    records: list[dict[str, object]] = event["data"]["records"]
    return records


def shipped(bus: FakeBus) -> list[str]:
    """The ids of the records published, in order of publishing."""
    return [str(r["record_id"]) for m in bus.published for r in records_in(m.payload)]


async def test_a_record_is_in_the_journal_when_append_returns(tmp_path: Path) -> None:
    spool = spool_in(tmp_path, FakeBus())
    spool.append(*record(1))
    spool.append(*record(2))
    (segment,) = spool.segments()
    assert segment.read_bytes().splitlines() == [
        b"rec001 " + record(1)[1],
        b"rec002 " + record(2)[1],
    ]
    assert spool.unshipped_bytes() == segment.stat().st_size


async def test_ship_publishes_each_record_once_in_order_with_its_id(tmp_path: Path) -> None:
    bus = FakeBus()
    spool = spool_in(tmp_path, bus, chunk=2)
    for n in range(5):
        spool.append(*record(n))
    assert await spool.ship_once() == 5
    assert shipped(bus) == [f"rec{n:03d}" for n in range(5)]
    published = [r for m in bus.published for r in records_in(m.payload)]
    assert published == [json.loads(record(n)[1]) for n in range(5)]
    assert {m.subject for m in bus.published} == {SUBJECT}
    assert await spool.ship_once() == 0  # nothing twice
    assert spool.unshipped_bytes() == 0


async def test_records_travel_in_packs_named_by_their_first_record_and_count(
    tmp_path: Path,
) -> None:
    bus = FakeBus()
    spool = spool_in(tmp_path, bus, chunk=10, pack=3)
    for n in range(7):
        spool.append(*record(n))
    assert await spool.ship_once() == 7
    assert [m.msg_id for m in bus.published] == ["rec000+3", "rec003+3", "rec006+1"]
    for message in bus.published:
        assert json.loads(message.payload)["id"] == message.msg_id
    assert shipped(bus) == [f"rec{n:03d}" for n in range(7)]


async def test_a_pack_stops_at_its_size_in_bytes(tmp_path: Path) -> None:
    bus = FakeBus()
    line = len(record(0)[1]) + 1
    spool = spool_in(tmp_path, bus, pack=100, pack_bytes=2 * line)
    for n in range(5):
        spool.append(*record(n))
    assert await spool.ship_once() == 5
    assert [len(records_in(m.payload)) for m in bus.published] == [2, 2, 1]


async def test_records_journaled_by_an_earlier_version_are_shipped_as_their_data(
    tmp_path: Path,
) -> None:
    """Earlier verifiers journaled each record in its own envelope: after an upgrade, those
    lines travel in the packs like the others."""
    bus = FakeBus()
    spool = spool_in(tmp_path, bus)
    old = (
        b'{"id":"rec000","type":"verifier.access_record.created.v1","data":{"record_id":"rec000"}}'
    )
    spool.append("rec000", old)
    spool.append(*record(1))
    assert await spool.ship_once() == 2
    assert [r for m in bus.published for r in records_in(m.payload)] == [
        {"record_id": "rec000"},
        {"record_id": "rec001", "n": 1},
    ]


async def test_a_failed_ship_keeps_every_record_for_the_next_try(tmp_path: Path) -> None:
    bus = FakeBus()
    spool = spool_in(tmp_path, bus)
    for n in range(3):
        spool.append(*record(n))
    bus.failing = True
    with pytest.raises(ConnectionError):
        await spool.ship_once()
    assert bus.published == [] and spool.unshipped_bytes() > 0
    bus.failing = False
    assert await spool.ship_once() == 3
    assert shipped(bus) == ["rec000", "rec001", "rec002"]


async def test_while_the_bus_is_down_records_wait_on_disk(tmp_path: Path) -> None:
    bus = FakeBus()
    bus.up = False
    spool = spool_in(tmp_path, bus)
    spool.append(*record(1))
    assert await spool.ship_once() == 0
    bus.up = True
    assert await spool.ship_once() == 1


async def test_a_restart_ships_what_was_not_acked_and_only_that(tmp_path: Path) -> None:
    bus = FakeBus()
    first = spool_in(tmp_path, bus, chunk=2)
    for n in range(5):
        first.append(*record(n))
    calls = 0
    publish = bus.publish_many

    async def fail_on_second_chunk(
        messages: list[tuple[str, bytes, str]], timeout: float = 5.0
    ) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("bus gone")
        await publish(messages)

    bus.publish_many = fail_on_second_chunk
    with pytest.raises(ConnectionError):
        await first.ship_once()
    assert shipped(bus) == ["rec000", "rec001"]
    await first.stop(ship_seconds=0)  # the process ends before it ships the rest

    again = FakeBus()
    second = spool_in(tmp_path, again, chunk=2)  # and starts again on the same directory
    second.append(*record(5))
    assert await second.ship_once() == 4
    assert shipped(again) == ["rec002", "rec003", "rec004", "rec005"]


async def test_how_far_it_shipped_is_noted_every_sync_interval_and_at_a_stop(
    tmp_path: Path,
) -> None:
    """Between notes a crash sends again what was shipped since the last one (duplicates,
    which the message ids and venue-admin's store keep once), never less."""
    bus = FakeBus()
    spool = spool_in(tmp_path / "live", bus, sync_interval=3600)
    for n in range(3):
        spool.append(*record(n))
    assert await spool.ship_once() == 3
    assert spool.unshipped_bytes() == 0  # this process knows
    crashed = tmp_path / "crashed"  # what the disk holds if the machine stopped now
    shutil.copytree(tmp_path / "live", crashed, ignore=shutil.ignore_patterns(LOCK_NAME))
    await spool.stop()
    again = FakeBus()
    assert await spool_in(tmp_path / "live", again).ship_once() == 0  # noted at the stop
    assert await spool_in(crashed, again).ship_once() == 3
    assert shipped(again) == ["rec000", "rec001", "rec002"]


async def test_a_torn_last_line_from_a_crash_is_cut_off(tmp_path: Path) -> None:
    spool = spool_in(tmp_path, FakeBus())
    spool.append(*record(1))
    (segment,) = spool.segments()
    with segment.open("ab") as handle:
        handle.write(b'rec002 {"id":"rec0')  # the machine stopped mid-write
    await spool.stop(ship_seconds=0)
    bus = FakeBus()
    restarted = spool_in(tmp_path, bus)
    restarted.append(*record(3))
    assert await restarted.ship_once() == 2
    assert shipped(bus) == ["rec001", "rec003"]


async def test_full_segments_are_removed_once_shipped(tmp_path: Path) -> None:
    bus = FakeBus()
    spool = spool_in(tmp_path, bus, segment_bytes=100)
    for n in range(6):
        spool.append(*record(n))
    assert len(spool.segments()) > 1
    assert await spool.ship_once() == 6
    assert len(spool.segments()) == 1  # the one being written
    assert shipped(bus) == [f"rec{n:03d}" for n in range(6)]


async def test_the_shipper_delivers_soon_and_outlives_a_failing_bus(tmp_path: Path) -> None:
    bus = FakeBus()
    spool = AccessSpool(tmp_path, bus, SUBJECT, sync_interval=0.05, batch_interval=0.01)
    spool.start()
    try:
        spool.append(*record(1))
        assert await eventually(lambda: _async(shipped(bus) == ["rec001"]), timeout=5)
        bus.failing = True
        spool.append(*record(2))
        await asyncio.sleep(0.2)
        assert shipped(bus) == ["rec001"]
        bus.failing = False
        assert await eventually(lambda: _async(shipped(bus) == ["rec001", "rec002"]), timeout=5)
    finally:
        await spool.stop()


async def _async(value: bool) -> bool:
    return value


# --- one writer ------------------------------------------------------------------------------


async def test_a_second_writer_is_refused_while_the_first_holds_the_journal(
    tmp_path: Path,
) -> None:
    first_bus = FakeBus()
    first = spool_in(tmp_path, first_bus)
    first.append(*record(1))
    with pytest.raises(JournalLocked) as refused:
        spool_in(tmp_path, FakeBus())
    message = str(refused.value)
    assert str(tmp_path) in message and f"pid {os.getpid()}" in message
    assert "one writer" in message
    first.append(*record(2))  # the holder goes on as before
    await first.stop()
    assert shipped(first_bus) == ["rec001", "rec002"]

    bus = FakeBus()
    second = spool_in(tmp_path, bus)  # the lock went with the first's stop
    second.append(*record(3))
    assert await second.ship_once() == 1
    assert shipped(bus) == ["rec003"]
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    await second.stop()


async def test_a_refused_writer_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    first = spool_in(tmp_path, FakeBus())
    first.append(*record(1))
    (segment,) = first.segments()
    with segment.open("ab") as handle:
        handle.write(b"rec002 {")  # half a line, as the holder's next write might look
    before = segment.read_bytes()
    with pytest.raises(JournalLocked):
        spool_in(tmp_path, FakeBus())  # would cut the "torn" line off if it got that far
    assert segment.read_bytes() == before
    await first.stop()


# --- a stop ships what the journal holds (a real NATS server) -------------------------------


# A test server's disk: JetStream reserves a stream's declared size (a province's).
STREAM_BYTES = 64 * 1024 * 1024


def verifier_bus(server: NatsServer) -> EventBus:
    """The bus as the verifier has it: its own user, its own stream."""
    return EventBus(
        server.url,
        "verifier-spool-test",
        ("ACCESS",),
        auth=server.auth("verifier"),
        max_bytes=STREAM_BYTES,
    )


def verifier_settings(server: NatsServer) -> Settings:
    """The verifier's settings on `server` (NATS_URL, NATS_USER, NATS_PASSWORD)."""
    return Settings(**{**server.env("verifier"), "NATS_STREAM_MAX_BYTES": STREAM_BYTES})


async def stream_ids(server: NatsServer) -> list[str]:
    """The ids of the records in the ACCESS stream, in order. Read by sequence: ACCESS is a
    work queue, and a consumer here would take the records away."""
    nc = await server.connect("operator")
    try:
        js = nc.jetstream()
        state = (await js.stream_info("ACCESS")).state
        ids = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            msg = await js.get_msg("ACCESS", seq)
            assert msg.headers is not None and msg.data is not None
            assert json.loads(msg.data)["id"] == msg.headers["Nats-Msg-Id"]
            ids += [str(r["record_id"]) for r in records_in(msg.data)]
        return ids
    finally:
        await nc.close()


async def test_stop_ships_every_pending_record_when_the_bus_is_up(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    bus = verifier_bus(nats_server)
    await bus.start(wait=10)
    try:
        spool = spool_in(tmp_path, bus, chunk=3)  # opened, no shipper running: all pending
        for n in range(7):
            spool.append(*record(n))
        report = await spool.stop()
        assert report.shipped == 7 and report.left == Backlog(0, 0)
        assert await stream_ids(nats_server) == [f"rec{n:03d}" for n in range(7)]
        assert spool_in(tmp_path, FakeBus()).unshipped_bytes() == 0  # and the lock is free
    finally:
        await bus.close()


async def test_records_are_shipped_in_acked_chunks_and_a_refused_chunk_stays(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    bus = verifier_bus(nats_server)
    await bus.start(wait=10)
    try:
        spool = spool_in(tmp_path / "live", bus, chunk=40, sync_interval=3600)
        for n in range(101):
            spool.append(*record(n))
        assert await spool.ship_once() == 101
        assert await stream_ids(nats_server) == [f"rec{n:03d}" for n in range(101)]
        crashed = tmp_path / "crashed"  # shipped, not yet noted: sent again after a crash
        shutil.copytree(tmp_path / "live", crashed, ignore=shutil.ignore_patterns(LOCK_NAME))
        await spool.stop()
        again = spool_in(crashed, bus, chunk=40)
        assert await again.ship_once() == 101  # acked as duplicates: stored, once
        assert len(await stream_ids(nats_server)) == 101
        await again.stop()
    finally:
        await bus.close()

    # A subject no stream holds: no ack (the server says there is no one to store it); the
    # record waits on disk.
    operator = EventBus(nats_server.url, "operator-test", auth=nats_server.auth("operator"))
    await operator.start(wait=10)
    try:
        nowhere = AccessSpool(tmp_path / "nowhere", operator, "nowhere.access_record")
        nowhere.open()
        nowhere.append(*record(1))
        with pytest.raises(ChunkNotStored):
            await nowhere.ship_once()
        assert nowhere.unshipped_bytes() > 0
        await nowhere.stop(ship_seconds=0)
    finally:
        await operator.close()


async def test_stop_waits_for_a_reconnecting_bus_within_its_time(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    bus = verifier_bus(nats_server)
    await bus.start(wait=10)
    try:
        spool = AccessSpool(tmp_path, bus, SUBJECT, shutdown_ship_seconds=60)
        spool.start()
        nats_server.stop()
        assert await eventually(lambda: _async(not bus.connected), timeout=10)
        for n in range(4):
            spool.append(*record(n))
        stopping = asyncio.create_task(spool.stop())  # SIGTERM while NATS is away
        await asyncio.sleep(0.3)
        assert not stopping.done()  # waiting for the bus, not giving up
        await asyncio.to_thread(nats_server.start)
        report = await stopping
        assert report.shipped == 4 and report.left == Backlog(0, 0)
        assert await stream_ids(nats_server) == [f"rec{n:03d}" for n in range(4)]
    finally:
        await bus.close()


async def test_stop_with_the_bus_down_returns_in_its_time_and_keeps_the_records(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = NatsServer()  # a free port, no server started
    bus = verifier_bus(nowhere)
    await bus.start()
    try:
        spool = AccessSpool(tmp_path, bus, SUBJECT, shutdown_ship_seconds=0.3)
        spool.start()
        for n in range(3):
            spool.append(*record(n))
        size = spool.unshipped_bytes()
        with caplog.at_level(logging.INFO, logger="verifier.spool"):
            # Bounded so that a stop waiting for ever fails the test instead of hanging it.
            async with asyncio.timeout(30):
                report = await spool.stop()
    finally:
        await bus.close()
    assert report.shipped == 0 and report.left == Backlog(size, 3)
    (line,) = [
        r for r in caplog.records if r.name == "verifier.spool" and r.levelno == logging.WARNING
    ]
    assert (line.left_records, line.left_bytes, line.shipped) == (3, size, 0)  # type: ignore[attr-defined]
    assert "rec00" not in repr(vars(line)) and '"n"' not in repr(vars(line))  # sizes only

    later = FakeBus()
    restarted = spool_in(tmp_path, later)  # the next start finds them all
    assert await restarted.ship_once() == 3
    assert shipped(later) == ["rec000", "rec001", "rec002"]
    await restarted.stop()


# --- python -m verifier.access drain ---------------------------------------------------------


async def left_by_a_lost_replica(directory: Path, count: int) -> None:
    """A journal with `count` unshipped records, its verifier stopped while the bus was down
    (and never started again)."""
    bus = FakeBus()
    bus.up = False
    spool = spool_in(directory, bus)
    for n in range(count):
        spool.append(*record(n))
    assert (await spool.stop(ship_seconds=0)).left.records == count


async def test_drain_ships_a_lost_replicas_journal_until_empty(
    nats_server: NatsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await left_by_a_lost_replica(tmp_path, 5)
    settings = verifier_settings(nats_server)
    assert await drain(tmp_path, 30, settings) == 0
    assert "shipped 5 access records" in capsys.readouterr().out
    assert await stream_ids(nats_server) == [f"rec{n:03d}" for n in range(5)]
    assert await drain(tmp_path, 30, settings) == 0  # again: nothing left, nothing sent
    assert "shipped 0 access records" in capsys.readouterr().out
    assert len(await stream_ids(nats_server)) == 5


async def test_drain_refuses_a_journal_a_live_verifier_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live = spool_in(tmp_path, FakeBus())
    live.append(*record(1))
    assert await drain(tmp_path, 5, Settings(nats_url="nats://127.0.0.1:1")) == 1
    assert f"pid {os.getpid()}" in capsys.readouterr().err
    assert live.unshipped_bytes() > 0
    await live.stop()


async def test_drain_without_the_bus_keeps_the_records_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await left_by_a_lost_replica(tmp_path, 2)
    nowhere = NatsServer()
    assert await drain(tmp_path, 0.3, verifier_settings(nowhere)) == 1
    out, err = capsys.readouterr()
    assert "shipped 0 access records" in out and "left: 2 records" in out
    assert "not reachable" in err


async def test_drain_of_a_directory_without_a_journal_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await drain(tmp_path, 1, Settings(nats_url="nats://127.0.0.1:1")) == 0
    assert "nothing to ship" in capsys.readouterr().out
    assert os.listdir(tmp_path) == []
    assert await drain(tmp_path / "missing", 1, Settings(nats_url="nats://127.0.0.1:1")) == 1
