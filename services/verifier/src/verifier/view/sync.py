"""Keeps the view current: a snapshot from each owning service at start, then the JetStream
streams followed from the sequence taken *before* the snapshot (so no change falls in between),
each event applied by version (view/handlers.py). Ephemeral consumers per replica: every
replica sees every event. Also probes health-records, so that a status from memory is marked
stale while it is down.

The position of a stream (`last_seq`) is the sequence of the last event *applied*; it moves
only after an event is applied, one sequence at a time:

- An event that cannot be applied is tried again with backoff, counted and logged, never
  skipped; the stream's later events wait behind it (nats-py runs a subscription's callbacks
  one at a time, so a retrying callback holds up that stream only).
- A delivered sequence that is not the next one is a gap (a push consumer without acks drops
  what overflows the client's buffer): the stream is followed again from the position, by a
  new consumer. So is a stream whose consumer is lost (NATS restarted, inactivity).
- If the stream no longer holds the event after the position (its limits removed it, or the
  stream was made again), the stream's part of the view is loaded again from its owner's
  snapshot and followed from the new position. Scans are answered from the old state until
  the new one is installed; the verifier stays ready.

While a stream is not followed in order (failing event, gap, lost consumer, reload) it is not
`live`: statuses in memory are then not trusted as current (`health_current`) and a scan asks
health-records."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import stamina
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import DEFAULT_JS_SUB_PENDING_BYTES_LIMIT, DEFAULT_JS_SUB_PENDING_MSGS_LIMIT

from hc_common.aio import stop_task, wait_event
from hc_common.events import envelope as subjects
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope
from verifier.clients import get_json
from verifier.view import handlers
from verifier.view.metrics import (
    EVENT_APPLY_FAILURES,
    EVENT_LAG,
    EVENTS_APPLIED,
    STREAM_GAPS,
    STREAM_LIVE,
    STREAM_POSITION,
    VIEW_RELOADS,
)
from verifier.view.state import ScanView

log = logging.getLogger("verifier.sync")

FOLLOWED = ("ISSUER", "VENUES", "HEALTH")
# Subjects per `POST /internal/v1/statuses` (health-records takes up to 10,000).
STATUS_BATCH = 5000
# What one stream's subscription buffers in the client before it drops messages (nats-py's
# defaults: 512 Ki messages, 256 MiB). A push consumer without acks sends as fast as the
# server can (nats-py's flow control does not wait for a callback), so catching up on a
# backlog faster than events apply overflows it: what is dropped is a gap, read again from
# the position, after the whole buffer is applied (each round makes that much progress).
PENDING_MSGS = DEFAULT_JS_SUB_PENDING_MSGS_LIMIT
PENDING_BYTES = DEFAULT_JS_SUB_PENDING_BYTES_LIMIT


@dataclass(eq=False)
class Follower:
    """One consumer of one stream, as `_subscribe` made it."""

    stream: str
    sub: JetStreamContext.PushSubscription | None = None
    # Replaced, or a gap seen: its messages are no longer applied.
    retired: bool = False
    # Not found gone by the last check (made alive).
    alive: bool = True
    # An event of it failed to apply and is being tried again.
    failing: bool = False
    # A message is in the callback now (applied or retried).
    handling: bool = False
    # Checks in a row that saw the consumer past the position with nothing left to deliver,
    # and the position then (see `_check_consumer`).
    stalled_checks: int = 0
    stalled_at: int = -1


class ViewSync:
    def __init__(
        self,
        view: ScanView,
        bus: EventBus,
        *,
        issuer: httpx.AsyncClient,
        venue_admin: httpx.AsyncClient,
        health_records: httpx.AsyncClient,
        snapshot_page_size: int = 500,
        pending_msgs_limit: int = PENDING_MSGS,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
        check_interval: float = 0.5,
        check_timeout: float = 1.0,
    ) -> None:
        self.view = view
        self.bus = bus
        self.issuer = issuer
        self.venue_admin = venue_admin
        self.health_records = health_records
        self.snapshot_page_size = snapshot_page_size
        self.pending_msgs_limit = pending_msgs_limit
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self.last_seq: dict[str, int] = {}
        self.live: dict[str, bool] = dict.fromkeys(FOLLOWED, False)
        self.ready = asyncio.Event()
        self.health_records_up = True
        # Last monotonic moment health-records was known reachable with its stream followed:
        # a cached status was current at least until then.
        self.health_confirmed_at = time.monotonic()
        self.followers: dict[str, Follower] = {}
        # When each stream was made, as seen with its position: another time means the stream
        # was made again, and its sequences start over.
        self._created: dict[str, datetime | None] = {}
        # Streams whose part of the view is to be loaded again (their events are gone).
        self._reloading: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def health_current(self) -> bool:
        """Statuses in memory are current: health-records up and its stream followed."""
        return self.health_records_up and self.live["HEALTH"]

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name="view-sync"))
        self._tasks.append(asyncio.create_task(self._probe_loop(), name="health-probe"))

    async def stop(self) -> None:
        for task in self._tasks:
            await stop_task(task)

    # --- start: positions, snapshots, follow ----------------------------------------
    async def _run(self) -> None:
        # NATS or a stream not there yet, an owner not answering, a page failing half-way: the
        # whole load is done again (from fresh positions) every half second until it works.
        async for attempt in stamina.retry_context(
            on=Exception,
            attempts=None,
            timeout=None,
            wait_initial=0.5,
            wait_max=0.5,
            wait_jitter=0.0,
        ):
            with attempt:
                await self.load()
        self.ready.set()
        log.info(
            "view loaded",
            extra={"members": len(self.view.members), "revoked": len(self.view.revoked)},
        )
        await self._watch()

    async def load(self) -> None:
        """Each stream's position, then the snapshots, then follow from those positions.
        Raises while NATS is down or a stream's owner has not made it yet."""
        await self.bus.wait_ready(3600)
        positions = {stream: await self._position(stream) for stream in FOLLOWED}
        await self.load_snapshots()
        for stream in FOLLOWED:
            self.last_seq[stream], self._created[stream] = positions[stream]
            STREAM_POSITION.labels(stream).set(self.last_seq[stream])
            await self._subscribe(stream)

    async def _position(self, stream: str) -> tuple[int, datetime | None]:
        info = await self._js().stream_info(stream)
        return int(info.state.last_seq), info.created

    # --- snapshots --------------------------------------------------------------------
    async def _pages(
        self,
        client: httpx.AsyncClient,
        path: str,
        cursor_param: str,
        params: dict[str, str] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a paged internal read (`next_cursor` until it is null)."""
        cursor: str | None = None
        while True:
            query = {**(params or {}), **({cursor_param: cursor} if cursor else {})}
            page = await get_json(client, path, query or None)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def load_snapshots(self) -> None:
        """Every owner's snapshot, all its pages, each installed whole once read."""
        for stream in FOLLOWED:
            await self._snapshot(stream)()

    def _snapshot(self, stream: str) -> Callable[[], Awaitable[None]]:
        """How the part of the view a stream's events change is read from its owner."""
        return {
            "ISSUER": self._load_revocations,
            "VENUES": self._load_venues,
            "HEALTH": self._refresh_statuses,
        }[stream]

    async def _load_revocations(self) -> None:
        revoked: set[str] = set()
        async for page in self._pages(self.issuer, "/internal/v1/revocations", "after"):
            revoked.update(str(i) for i in page["items"])
        self.view.install_revocations(revoked)

    async def _load_venues(self) -> None:
        # Members, devices, rules, page by page (a page is a range of venues), into a view of
        # their own: installed once every page is read, so a scan never sees half a snapshot.
        loaded = ScanView(status_capacity=1, credential_capacity=1)
        limit = {"limit": str(self.snapshot_page_size)}
        async for page in self._pages(
            self.venue_admin, "/internal/v1/scan-snapshot", "cursor", limit
        ):
            for item in page["members"]:
                handlers.apply_member(loaded, item)
            for item in page["devices"]:
                handlers.apply_device(loaded, item)
            for item in page["rules"]:
                handlers.apply_rule(loaded, item)
        self.view.install_venues(loaded)

    async def _refresh_statuses(self) -> None:
        # Statuses of subjects already cached (a reload); a cold start fills them on misses.
        # Fetched answers: each applied by version over what is held.
        view = self.view
        subject_ids = list(view.statuses.data)
        for i in range(0, len(subject_ids), STATUS_BATCH):
            response = await self.health_records.post(
                "/internal/v1/statuses", json={"subject_ids": subject_ids[i : i + STATUS_BATCH]}
            )
            response.raise_for_status()
            for item in response.json()["items"]:
                view.apply_status(handlers.parse_status(item))

    # --- following ------------------------------------------------------------------
    def _js(self) -> JetStreamContext:
        if self.bus.js is None:
            raise ConnectionError("message bus not connected")
        return self.bus.js

    async def _retire(self, stream: str) -> None:
        """The stream's consumer, if any, is done: its messages are no longer applied."""
        old = self.followers.pop(stream, None)
        if old is None:
            return
        old.retired = True
        if old.sub is not None:
            try:
                await old.sub.unsubscribe()
            except Exception as exc:  # the old connection is gone; so is its subscription
                log.debug("old subscription not removed", extra={"error": repr(exc)})

    async def _subscribe(self, stream: str) -> None:
        """A new consumer of the stream from the position; the old one is retired first (so
        the position no longer moves while the new one is made)."""
        await self._retire(stream)
        js = self._js()
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq.get(stream, 0) + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30,
            max_deliver=1,
        )
        follower = Follower(stream)

        async def on_message(msg: Msg) -> None:
            await self._handle(stream, msg, follower)

        follower.sub = await js.subscribe(
            subjects.STREAMS[stream][0],
            stream=stream,
            cb=on_message,
            config=config,
            manual_ack=True,
            pending_msgs_limit=self.pending_msgs_limit,
            pending_bytes_limit=PENDING_BYTES,
        )
        self.followers[stream] = follower
        self._set_live(stream)

    async def _handle(self, stream: str, msg: Msg, follower: Follower | None = None) -> None:
        """One delivered message: applied if it is the next in the stream (retried until it
        applies), ignored if seen already, a gap if one is missing before it."""
        if follower is not None and follower.retired:
            return
        seq = msg.metadata.sequence.stream
        position = self.last_seq.get(stream, 0)
        if seq <= position:
            return  # seen already (a consumer made again)
        if seq != position + 1:
            self._gap(stream, follower, position, seq)
            return
        if follower is not None:
            follower.handling = True
        try:
            await self._apply(stream, seq, msg, follower)
        finally:
            if follower is not None:
                follower.handling = False

    async def _apply(self, stream: str, seq: int, msg: Msg, follower: Follower | None) -> None:
        delay, failures = self.retry_initial, 0
        while True:
            try:
                envelope = Envelope.from_bytes(msg.data)
                handlers.apply_event(self.view, envelope)
            except Exception as exc:  # not an envelope, a payload that does not validate, ...
                failures += 1
                self._failed(stream, seq, msg, follower, exc, failures, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                if (follower is not None and follower.retired) or seq <= self.last_seq.get(
                    stream, 0
                ):
                    return  # a new consumer (or a reload) took over from the position
                continue
            break
        self.last_seq[stream] = seq
        STREAM_POSITION.labels(stream).set(seq)
        EVENTS_APPLIED.labels(stream).inc()
        EVENT_LAG.labels(stream).set(max(0.0, time.time() - envelope.occurred_at.timestamp()))
        if failures:
            log.warning(
                "event applied after failures",
                extra={"stream": stream, "sequence": seq, "failures": failures},
            )
            if follower is not None:
                follower.failing = False
                self._set_live(stream)

    def _failed(
        self,
        stream: str,
        seq: int,
        msg: Msg,
        follower: Follower | None,
        exc: Exception,
        failures: int,
        retry_in: float,
    ) -> None:
        EVENT_APPLY_FAILURES.labels(stream).inc()
        # The error's type only: a validation error's text quotes the payload.
        log.error(
            "event not applied; it is tried again",
            extra={
                "stream": stream,
                "sequence": seq,
                "subject": msg.subject,
                "error": type(exc).__name__,
                "failures": failures,
                "retry_in": retry_in,
            },
        )
        if follower is not None and not follower.failing:
            follower.failing = True
            self._set_live(stream)

    def _gap(self, stream: str, follower: Follower | None, position: int, seq: int) -> None:
        """A sequence missing before `seq`: this consumer is done; the next check makes a new
        one from the position (now: it is woken)."""
        STREAM_GAPS.labels(stream).inc()
        log.warning(
            "gap in stream; following it again from the position",
            extra={"stream": stream, "position": position, "sequence": seq},
        )
        if follower is not None:
            follower.retired = True
            self._set_live(stream)
        self._wake.set()

    def _set_live(self, stream: str) -> None:
        follower = self.followers.get(stream)
        live = (
            follower is not None
            and follower.alive
            and not follower.retired
            and not follower.failing
            and stream not in self._reloading
        )
        self.live[stream] = live
        STREAM_LIVE.labels(stream).set(1 if live else 0)

    # --- checks: lost consumers, gaps, reloads ------------------------------------------
    async def _watch(self) -> None:
        """Every `check_interval` (and at once on a gap), each stream's consumer is checked;
        a lost or retired one is made again from the position, or the stream's part of the
        view loaded again when the stream no longer holds what follows the position. A
        periodic round, not a retry loop: what cannot be done now is tried at the next."""
        while True:
            await wait_event(self._wake, self.check_interval)
            self._wake.clear()
            # All streams at once: a consumer lost with a NATS node must not wait behind
            # another stream's check (HEALTH's state decides whether a status in memory is
            # trusted, within the contract's 2 seconds).
            await asyncio.gather(*(self._check_and_mark(stream) for stream in FOLLOWED))

    async def _check_and_mark(self, stream: str) -> None:
        try:
            await self._check(stream)
        except Exception as exc:
            log.warning(
                "stream not followed yet", extra={"stream": stream, "error": type(exc).__name__}
            )
        self._set_live(stream)

    async def _check(self, stream: str) -> None:
        follower = self.followers.get(stream)
        if not self.bus.connected:
            if follower is not None:
                follower.alive = False
            return
        if stream in self._reloading:
            await self._reload(stream)
            return
        if follower is not None and not follower.retired:
            follower.alive = await self._check_consumer(follower)
            if follower.alive:
                return
        await self._resume(stream)

    async def _check_consumer(self, follower: Follower) -> bool:
        """False if the consumer is gone, or has delivered past the position what never
        reached the callback (messages dropped at the end: no later one shows the gap)."""
        if follower.sub is None:
            return False
        try:
            # Quickly: a consumer on a server that died answers nothing, and until this
            # says so the stream counts as followed (statuses in memory as current).
            async with asyncio.timeout(self.check_timeout):
                info = await follower.sub.consumer_info()
        except Exception:  # gone with the server that held it, a time-out, ...
            return False
        delivered = info.delivered.stream_seq if info.delivered is not None else 0
        position = self.last_seq.get(follower.stream, 0)
        # A message may be on its way when the consumer is asked: only two checks in a row
        # with the position not moving and nothing buffered or in the callback make a gap.
        if (
            delivered > position
            and not follower.handling
            and follower.sub.pending_msgs == 0
            and follower.stalled_at in (-1, position)
        ):
            follower.stalled_checks += 1
            follower.stalled_at = position
            if follower.stalled_checks >= 2:
                self._gap(follower.stream, follower, position, delivered)
                return False
        else:
            follower.stalled_checks, follower.stalled_at = 0, -1
        return True

    async def _resume(self, stream: str) -> None:
        """Follow the stream again from the position, or reload if what follows is gone."""
        info = await self._js().stream_info(stream)
        position = self.last_seq.get(stream, 0)
        state = info.state
        gone = (
            info.created != self._created.get(stream)  # made again: sequences start over
            or state.last_seq < position
            or state.first_seq > position + 1
        )
        if gone:
            VIEW_RELOADS.labels(stream).inc()
            log.warning(
                "events after the position are gone from the stream; loading its snapshot",
                extra={"stream": stream, "position": position, "first_seq": state.first_seq},
            )
            self._reloading.add(stream)
            self._set_live(stream)
            await self._reload(stream)
            return
        await self._subscribe(stream)

    async def _reload(self, stream: str) -> None:
        """The stream's part of the view from its owner, installed whole, then followed from
        the position taken before it. Scans read the old state until then. Raises (tried
        again at the next check) while an owner or NATS does not answer."""
        await self._retire(stream)
        position = await self._position(stream)
        await self._snapshot(stream)()
        self.last_seq[stream], self._created[stream] = position
        STREAM_POSITION.labels(stream).set(position[0])
        self._reloading.discard(stream)
        await self._subscribe(stream)
        log.info("stream's part of the view loaded again", extra={"stream": stream})

    # --- health-records reachability ----------------------------------------------
    async def _probe_loop(self) -> None:
        while True:
            try:
                response = await self.health_records.get("/healthz", timeout=0.5)
                up = response.status_code == 200
            except httpx.HTTPError:
                up = False
            self.health_records_up = up
            if self.health_current:
                self.health_confirmed_at = time.monotonic()
            await asyncio.sleep(0.25)
