"""The verifier's local journal of access records, and the shipper that empties it.

A scan appends its record to the current segment file before it answers: one `write()`
with `O_APPEND`, a few microseconds, and from then on the record outlives a crash of the
process (it is in the operating system's page cache; the shipper also `fsync`s what it has
not yet shipped at least every `sync_interval` seconds, which bounds what a crash of the
machine can take). The shipper publishes records to JetStream in order of writing, with the
record id as `Nats-Msg-Id`, and remembers how far it got in a small offset file. While the
bus is down, records wait on disk; after a restart, shipping resumes from the offset (a
record shipped but not yet noted is sent again: JetStream's duplicate window and
venue-admin's store keyed by record id keep it once).

Line format: `<record id> <envelope JSON>\\n` (orjson never writes a raw newline).
"""

import asyncio
import logging
import os
import time
from pathlib import Path

from prometheus_client import Gauge

from hc_common.aio import stop_task, wait_event
from hc_common.events.bus import EventBus

log = logging.getLogger("verifier.spool")

SPOOL_PENDING = Gauge(
    "verifier_access_records_unshipped_bytes",
    "Bytes of access records on local disk not yet acked by JetStream",
)

SEGMENT_SUFFIX = ".log"


class AccessSpool:
    def __init__(
        self,
        directory: Path,
        bus: EventBus,
        subject: str,
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        chunk: int = 1000,
        sync_interval: float = 0.2,
        batch_interval: float = 0.02,
    ) -> None:
        self.directory = directory
        self.bus = bus
        self.subject = subject
        self.segment_bytes = segment_bytes
        self.chunk = chunk
        self.sync_interval = sync_interval
        self.batch_interval = batch_interval
        self._fd = -1
        self._segment: Path | None = None
        self._written = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- writing (the hot path) ----------------------------------------------------------
    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        segments = self.segments()
        for segment in segments:
            _drop_torn_tail(segment)
        self._open_segment(segments[-1] if segments else self._new_segment_path())

    def _new_segment_path(self) -> Path:
        return self.directory / f"{time.time_ns():020d}{SEGMENT_SUFFIX}"

    def _open_segment(self, path: Path) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._segment = path
        self._written = path.stat().st_size

    def append(self, record_id: str, payload: bytes) -> None:
        """Journal one record. Returns when it is in the file (not necessarily synced)."""
        line = record_id.encode() + b" " + payload + b"\n"
        written = os.write(self._fd, line)
        if written != len(line):  # a full disk: refuse rather than keep a torn record
            raise OSError("access record journal: short write")
        self._written += written
        if self._written >= self.segment_bytes:
            self._open_segment(self._new_segment_path())
        self._wake.set()

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("*" + SEGMENT_SUFFIX))

    # --- shipping --------------------------------------------------------------------------
    def start(self) -> None:
        self.open()
        self._task = asyncio.create_task(self._run(), name="access-spool-shipper")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def unshipped_bytes(self) -> int:
        total = 0
        for segment in self.segments():
            total += segment.stat().st_size - _read_offset(segment)
        return total

    async def _run(self) -> None:
        last_sync = 0.0
        while True:
            try:
                await self.ship_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus went away mid-batch, a full disk, ...
                log.warning("access record shipping failed; will retry", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
            SPOOL_PENDING.set(self.unshipped_bytes())
            if self._fd >= 0 and time.monotonic() - last_sync >= self.sync_interval:
                await asyncio.to_thread(os.fsync, self._fd)
                last_sync = time.monotonic()
            # At most one shipping round per `batch_interval`: under load a round carries many
            # records, and the file reads and offset writes stay off the scans' way.
            await asyncio.sleep(self.batch_interval)
            await wait_event(self._wake, self.sync_interval)
            self._wake.clear()

    async def ship_once(self) -> int:
        """Publish everything journaled and not yet acked; returns how many records."""
        if not self.bus.connected:
            return 0
        shipped = 0
        for segment in self.segments():
            shipped += await self._ship_segment(segment)
            if segment != self._segment and _read_offset(segment) >= segment.stat().st_size:
                segment.unlink()
                _offset_path(segment).unlink(missing_ok=True)
        return shipped

    async def _ship_segment(self, segment: Path) -> int:
        offset = _read_offset(segment)
        with segment.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        lines = data[: end + 1].split(b"\n")[:-1]
        shipped = 0
        for start in range(0, len(lines), self.chunk):
            batch = lines[start : start + self.chunk]
            # Pipelined: all of a chunk is in flight at once, acks awaited together.
            await self.bus.publish_many([self._message(line) for line in batch])
            offset += sum(len(line) + 1 for line in batch)
            _write_offset(segment, offset)
            shipped += len(batch)
        return shipped

    def _message(self, line: bytes) -> tuple[str, bytes, str]:
        record_id, _, payload = line.partition(b" ")
        return self.subject, payload, record_id.decode()


def _offset_path(segment: Path) -> Path:
    return segment.with_suffix(".offset")


def _read_offset(segment: Path) -> int:
    try:
        return int(_offset_path(segment).read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _write_offset(segment: Path, offset: int) -> None:
    temporary = _offset_path(segment).with_suffix(".offset.tmp")
    temporary.write_text(str(offset))
    os.replace(temporary, _offset_path(segment))


def _drop_torn_tail(segment: Path) -> None:
    """A crash in the middle of a write can leave half a line at the end: cut it off."""
    data = segment.read_bytes()
    if data and not data.endswith(b"\n"):
        with segment.open("r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)
