"""The verifier's local journal of access records, and the shipper that empties it.

A scan appends its record to the current segment file before it answers: one `write()`
with `O_APPEND`, a few microseconds, and from then on the record outlives a crash of the
process (it is in the operating system's page cache; the shipper also `fsync`s what it has
not yet shipped at least every `sync_interval` seconds, which bounds what a crash of the
machine can take). The shipper publishes records to JetStream in order of writing, with the
record id as `Nats-Msg-Id`, and remembers how far it got in a small offset file per segment,
written at most every `sync_interval` seconds and at a stop (a rename per chunk cost the
scans' core more than the chunk's publishing). While the
bus is down, records wait on disk; after a restart, shipping resumes from the offset (a
record shipped but not yet noted is sent again: JetStream's duplicate window and
venue-admin's store keyed by record id keep it once).

One writer: `open()` takes an exclusive `flock` on `journal.lock` in the directory (and
writes its pid there) and holds it until `stop()`. A second process pointed at the same
directory (two replicas sharing a volume, a `--workers 2`, a drain of a live replica's
journal) fails at once with `JournalLocked`, naming the directory and the holder's pid,
instead of both appending and both shipping. The lock is the kernel's: it goes with the
process, however that ends, so a crashed verifier never leaves a stale lock behind (on a
local filesystem; network filesystems may not honour `flock`, see
docs/operations.md, "The verifier's access-record journal").

A graceful stop ships what is journaled: `stop()` (run by the lifespan's shutdown while the
bus is still connected) ships until the journal is empty or `shutdown_ship_seconds` have
passed, waiting for a bus that is reconnecting. What it could not ship stays on disk for
the next start, and it logs how much (bytes and records, never their content). A replica
that never comes back (scaled in, its volume kept) is emptied by
`python -m verifier.access drain DIR` (access/__main__.py), which is this same `open()` and
`stop()` on the lost replica's directory.

Line format: `<record id> <record JSON>\n` (the event's `data`; orjson never writes a raw
newline). Lines journaled by earlier versions hold the whole one-record envelope instead;
the shipper takes their `data` out.

Records travel in packs: one `verifier.access_record.batch.v1` event per `pack` records
(at most `pack_bytes`), built from the journal's bytes without parsing them. A message
per record cost the bus, this core and venue-admin's consumer more than the records
themselves (~16 us of nats-server, ~7 us here and ~25 us at venue-admin a record at
10,000 scans/s). A pack's message id is its first record's id and its record count: the
same lines shipped again from the same offset are the same message, which JetStream's
duplicate window drops; a pack cut elsewhere after a restart is a new message, whose
records venue-admin's store, keyed by record id, keeps once.

A chunk of packs is published by `AckedChunks` on the bus's connection: every message
written at once with one reply subject for the chunk, the acks counted as they come. A
bus without a connection of its own (the unit tests' fake) is given the chunk through
`publish_many`.
"""

import asyncio
import fcntl
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Gauge

from hc_common.aio import stop_task, wait_event
from hc_common.events.bus import EventBus
from hc_common.events.envelope import encode_envelope

log = logging.getLogger("verifier.spool")

SPOOL_PENDING = Gauge(
    "verifier_access_records_unshipped_bytes",
    "Bytes of access records on local disk not yet acked by JetStream",
)

SEGMENT_SUFFIX = ".log"
# Never deleted: removing it while another process waits to lock it would let a third
# process lock a new file of the same name, and the two would both write.
LOCK_NAME = "journal.lock"
# How often a stop that waits for the bus to come back looks again, and how long it waits
# after a failed batch (a full stream refuses every batch: one warning per try is enough).
_RECONNECT_POLL = 0.05
_RETRY_WAIT = 0.5


class JournalLocked(RuntimeError):
    """Another live process holds the journal directory: a journal has one writer."""


@dataclass(frozen=True)
class Backlog:
    """What the journal holds that JetStream has not acked."""

    bytes: int
    records: int


@dataclass(frozen=True)
class StopReport:
    """What a `stop()` shipped, and what it left on disk."""

    shipped: int
    left: Backlog


class ChunkNotStored(Exception):
    """JetStream did not ack every message of a chunk (refused, no stream, no answer in time):
    the chunk stays in the journal and is sent again (message ids make that harmless)."""


@dataclass
class _Chunk:
    expected: int
    done: asyncio.Future[None]
    acked: int = 0
    refusals: list[bytes] = field(default_factory=list)


class AckedChunks:
    """Publishes chunks of messages to JetStream on one connection, each chunk's messages
    written at once and its acks awaited together.

    Every message of a chunk asks for its ack at the chunk's own reply subject (an inbox
    of the service's, one subscription for all chunks); an ack is JetStream's
    `{"stream": ..., "seq": ...}` (`"duplicate": true` for a message id it already holds: it
    is stored), anything else a refusal (an `error`, no stream for the subject)."""

    def __init__(self) -> None:
        self._nc: Client | None = None
        self._inbox = ""
        self._subscription: Subscription | None = None
        self._chunks: dict[str, _Chunk] = {}
        self._serial = 0

    async def publish(
        self, nc: Client, messages: list[tuple[str, bytes, str]], timeout: float = 5.0
    ) -> None:
        """Raises `ChunkNotStored` unless every message is acked within `timeout` seconds."""
        if nc is not self._nc:  # the first chunk, or the bus connected anew
            self._nc, self._inbox = nc, nc.new_inbox()
            self._subscription = await nc.subscribe(f"{self._inbox}.*", cb=self._on_ack)
        self._serial += 1
        reply = f"{self._inbox}.{self._serial}"
        chunk = _Chunk(len(messages), asyncio.get_running_loop().create_future())
        self._chunks[reply] = chunk
        try:
            # No await in this loop gives way to the event loop (nats-py buffers each
            # message): the chunk goes out in one flush.
            for subject, payload, msg_id in messages:
                await nc.publish(subject, payload, reply=reply, headers={"Nats-Msg-Id": msg_id})
            async with asyncio.timeout(timeout):
                await chunk.done
        except TimeoutError:
            raise ChunkNotStored(
                f"{chunk.acked} of {chunk.expected} messages acked within {timeout} s"
            ) from None
        finally:
            del self._chunks[reply]
        if chunk.refusals:
            raise ChunkNotStored(
                f"{len(chunk.refusals)} of {chunk.expected} refused, "
                f"e.g. {chunk.refusals[0][:200]!r}"
            )

    async def _on_ack(self, msg: Msg) -> None:
        chunk = self._chunks.get(msg.subject)
        if chunk is None:
            return  # an ack of a chunk given up on: that chunk is sent again
        try:
            ack = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            ack = None  # e.g. the server's "no responders" status: no stream for the subject
        if isinstance(ack, dict) and "seq" in ack and "error" not in ack:
            chunk.acked += 1
        else:
            chunk.refusals.append(msg.data or str(msg.headers).encode())
        if chunk.acked + len(chunk.refusals) == chunk.expected and not chunk.done.done():
            chunk.done.set_result(None)

    async def close(self) -> None:
        subscription, self._subscription, self._nc = self._subscription, None, None
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # the connection is gone already: so is the subscription
                log.debug("ack subscription not closed", extra={"error": repr(exc)})


class AccessSpool:
    def __init__(
        self,
        directory: Path,
        bus: EventBus,
        subject: str,
        *,
        segment_bytes: int = 16 * 1024 * 1024,
        chunk: int = 1000,
        pack: int = 200,
        pack_bytes: int = 256 * 1024,
        sync_interval: float = 0.2,
        batch_interval: float = 0.05,
        shutdown_ship_seconds: float = 8.0,
    ) -> None:
        self.directory = directory
        self.bus = bus
        self.subject = subject
        self.segment_bytes = segment_bytes
        self.chunk = chunk
        self.pack = pack
        self.pack_bytes = pack_bytes
        self.sync_interval = sync_interval
        self.batch_interval = batch_interval
        self.shutdown_ship_seconds = shutdown_ship_seconds
        self._lock_fd = -1
        self._fd = -1
        self._shipped = 0  # records acked since open(), for stop()'s report
        self._segment: Path | None = None
        self._written = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._acked_chunks = AckedChunks()
        # How far each segment is shipped (acked): what this process knows, and what its
        # offset files say (behind by at most `sync_interval`, or a stop's last note).
        self._offsets: dict[Path, int] = {}
        self._noted: dict[Path, int] = {}
        self._noted_at = 0.0

    # --- writing (the hot path) ----------------------------------------------------------
    def open(self) -> None:
        """Take the journal's lock (or raise `JournalLocked`), mend a torn last line, open
        the segment to append to. Once open, the journal is this object's until `stop()`."""
        if self._lock_fd >= 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            segments = self.segments()
            for segment in segments:
                _drop_torn_tail(segment)
            self._open_segment(segments[-1] if segments else self._new_segment_path())
            self._offsets, self._noted, self._noted_at = {}, {}, time.monotonic()
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> None:
        # os.open's descriptors are not inherited by child processes, and flock belongs to
        # the open file: the lock lasts exactly as long as this descriptor, and a second
        # open of the file (even in this process) is a second, refused writer.
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise JournalLocked(
                f"access record journal {self.directory} is in use by another process "
                f"(pid {holder}): a journal has exactly one writer. Give this verifier a "
                "directory of its own (VERIFIER_SPOOL_DIR, or DATA_DIR), or stop the other "
                "process first."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd >= 0:
            # The pid stays in the file: it is only read while the lock is held.
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1

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
            # One writer (the lock), so the file ended at `_written` before this write: cut
            # the half line off, or the next record would be glued to it.
            os.ftruncate(self._fd, self._written)
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

    async def stop(self, ship_seconds: float | None = None) -> StopReport:
        """Ship what the journal holds, for up to `ship_seconds` (default
        `shutdown_ship_seconds`), then close it and release the lock.

        A bus that is down or reconnecting is waited for within that time; a failed batch is
        tried again. Whatever is not acked by then stays on disk for the next start (or a
        drain), and the log says how much."""
        if self._task is not None:
            await stop_task(self._task)
            self._task = None
        if self._lock_fd < 0:
            return StopReport(0, Backlog(0, 0))
        try:
            if self._fd >= 0:
                # On disk before anything else: a stop cut short by SIGKILL loses nothing.
                await asyncio.to_thread(os.fsync, self._fd)
            budget = self.shutdown_ship_seconds if ship_seconds is None else ship_seconds
            shipped_before = self._shipped
            await self._ship_within(budget)
            left = await asyncio.to_thread(self.backlog)
            report = StopReport(self._shipped - shipped_before, left)
            SPOOL_PENDING.set(left.bytes)
            if left.bytes:
                log.warning(
                    "access records left unshipped at stop; the next start on this directory "
                    "or `python -m verifier.access drain` ships them",
                    extra={
                        "directory": str(self.directory),
                        "shipped": report.shipped,
                        "left_records": left.records,
                        "left_bytes": left.bytes,
                        "ship_seconds": budget,
                    },
                )
            else:
                log.info(
                    "access record journal empty at stop",
                    extra={"directory": str(self.directory), "shipped": report.shipped},
                )
            return report
        finally:
            self._note_offsets()
            await self._acked_chunks.close()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            self._unlock()

    async def _ship_within(self, seconds: float) -> None:
        """Ship until the journal is empty or `seconds` have passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            # The timeout cuts a batch whose acks are slow; the deadline check ends the loop
            # when a round of shipping never had to wait.
            async with asyncio.timeout_at(deadline):
                while loop.time() < deadline and self.unshipped_bytes():
                    if not self.bus.connected:
                        await asyncio.sleep(_RECONNECT_POLL)
                        continue
                    try:
                        if await self.ship_once() == 0:
                            return  # connected and nothing whole to ship: done
                    except Exception as exc:  # the bus went away mid-batch: try again
                        log.warning(
                            "access record shipping at stop failed; trying again",
                            extra={"error": repr(exc)},
                        )
                        await asyncio.sleep(_RETRY_WAIT)
        except TimeoutError:
            pass

    def unshipped_bytes(self) -> int:
        total = 0
        for segment in self.segments():
            total += segment.stat().st_size - self._offset(segment)
        return total

    def _offset(self, segment: Path) -> int:
        offset = self._offsets.get(segment)
        if offset is None:
            offset = self._offsets[segment] = self._noted[segment] = _read_offset(segment)
        return offset

    def _note_offsets(self) -> None:
        """Write the offset files that are behind what has been acked."""
        for segment, offset in list(self._offsets.items()):
            if self._noted.get(segment) != offset and segment.exists():
                _write_offset(segment, offset)
                self._noted[segment] = offset
        self._noted_at = time.monotonic()

    def backlog(self) -> Backlog:
        """Bytes and records not yet acked (reads them: for a stop's report, not a loop)."""
        size = records = 0
        for segment in self.segments():
            offset = self._offset(segment)
            size += segment.stat().st_size - offset
            with segment.open("rb") as handle:
                handle.seek(offset)
                while block := handle.read(1 << 20):
                    records += block.count(b"\n")
        return Backlog(size, records)

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
            if segment != self._segment and self._offset(segment) >= segment.stat().st_size:
                segment.unlink()
                _offset_path(segment).unlink(missing_ok=True)
                self._offsets.pop(segment, None)
                self._noted.pop(segment, None)
        if time.monotonic() - self._noted_at >= self.sync_interval:
            self._note_offsets()
        return shipped

    async def _ship_segment(self, segment: Path) -> int:
        offset = self._offset(segment)
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
            # Pipelined: all of a chunk's packs are in flight at once, acks awaited together.
            await self._publish(self._packs(batch))
            offset += sum(len(line) + 1 for line in batch)
            self._offsets[segment] = offset
            shipped += len(batch)
            self._shipped += len(batch)
        return shipped

    async def _publish(self, messages: list[tuple[str, bytes, str]]) -> None:
        nc = self.bus.nc
        if nc is None:
            await self.bus.publish_many(messages)
        else:
            await self._acked_chunks.publish(nc, messages)

    def _packs(self, lines: list[bytes]) -> list[tuple[str, bytes, str]]:
        """The batch events of journal `lines`, in order: (subject, envelope, message id)."""
        messages: list[tuple[str, bytes, str]] = []
        part: list[bytes] = []
        size = 0
        first = b""
        for line in lines:
            record_id, _, payload = line.partition(b" ")
            if payload.startswith(b'{"id":'):  # an earlier version's one-record envelope
                payload = orjson.dumps(orjson.loads(payload)["data"])
            if part and (len(part) >= self.pack or size + len(payload) > self.pack_bytes):
                messages.append(self._pack(first, part))
                part, size = [], 0
            if not part:
                first = record_id
            part.append(payload)
            size += len(payload) + 1
        if part:
            messages.append(self._pack(first, part))
        return messages

    def _pack(self, first: bytes, records: list[bytes]) -> tuple[str, bytes, str]:
        pack_id = f"{first.decode()}+{len(records)}"
        data = {"records": orjson.Fragment(b"[" + b",".join(records) + b"]")}
        return self.subject, encode_envelope(self.subject, data, event_id=pack_id)[2], pack_id


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
