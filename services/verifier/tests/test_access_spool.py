"""The access-record journal: a record is on disk before the scan answers, reaches the stream
once, in order, with its id as the message id; nothing is lost when the bus fails or the
process restarts. The bus is a fake; the journal is a real directory (it is a file format)."""

import asyncio
from pathlib import Path

import pytest

from hc_common.testing import eventually
from verifier.access.spool import AccessSpool

from .conftest import FakeBus

SUBJECT = "verifier.access_record.created.v1"


def spool_in(directory: Path, bus: FakeBus, **options: float) -> AccessSpool:
    spool = AccessSpool(directory, bus, SUBJECT, **options)
    spool.open()
    return spool


def record(n: int) -> tuple[str, bytes]:
    return f"rec{n:03d}", b'{"id":"rec%03d","data":{"n":%d}}' % (n, n)


def shipped(bus: FakeBus) -> list[str]:
    return [message.msg_id for message in bus.published]


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
    assert [m.payload for m in bus.published] == [record(n)[1] for n in range(5)]
    assert {m.subject for m in bus.published} == {SUBJECT}
    assert await spool.ship_once() == 0  # nothing twice
    assert spool.unshipped_bytes() == 0


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
    await first.stop()  # the process ends

    again = FakeBus()
    second = spool_in(tmp_path, again, chunk=2)  # and starts again on the same directory
    second.append(*record(5))
    assert await second.ship_once() == 4
    assert shipped(again) == ["rec002", "rec003", "rec004", "rec005"]


async def test_a_torn_last_line_from_a_crash_is_cut_off(tmp_path: Path) -> None:
    spool = spool_in(tmp_path, FakeBus())
    spool.append(*record(1))
    (segment,) = spool.segments()
    with segment.open("ab") as handle:
        handle.write(b'rec002 {"id":"rec0')  # the machine stopped mid-write
    await spool.stop()
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
