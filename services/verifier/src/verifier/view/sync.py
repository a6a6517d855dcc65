"""Keeps the view current: a snapshot from each owning service at start, then the JetStream
streams followed from the sequence taken *before* the snapshot (so no change falls in between),
each event applied by version (view/handlers.py). Ephemeral consumers per replica: every
replica sees every event. Also probes health-records, so that a status from memory is marked
stale while it is down."""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import stamina
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hc_common.aio import stop_task
from hc_common.events import envelope as subjects
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope
from verifier.clients import get_json
from verifier.view import handlers
from verifier.view.metrics import EVENT_LAG, EVENTS_APPLIED, STREAM_LIVE
from verifier.view.state import ScanView

log = logging.getLogger("verifier.sync")

FOLLOWED = ("ISSUER", "VENUES", "HEALTH")
# Subjects per `POST /internal/v1/statuses` (health-records takes up to 10,000).
STATUS_BATCH = 5000


class ViewSync:
    def __init__(
        self,
        view: ScanView,
        bus: EventBus,
        *,
        issuer: httpx.AsyncClient,
        venue_admin: httpx.AsyncClient,
        health_records: httpx.AsyncClient,
    ) -> None:
        self.view = view
        self.bus = bus
        self.issuer = issuer
        self.venue_admin = venue_admin
        self.health_records = health_records
        self.last_seq: dict[str, int] = {}
        self.live: dict[str, bool] = dict.fromkeys(FOLLOWED, False)
        self.ready = asyncio.Event()
        self.health_records_up = True
        # Last monotonic moment health-records was known reachable with its stream followed:
        # a cached status was current at least until then.
        self.health_confirmed_at = time.monotonic()
        self._subs: dict[str, JetStreamContext.PushSubscription] = {}
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

    # --- start: sequences, snapshots, follow ---------------------------------------
    async def _run(self) -> None:
        # NATS or a stream not there yet, an owner not answering, a page failing half-way: the
        # whole load is done again (from fresh sequences) every half second until it works.
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
        """Each stream's last sequence, then the snapshots, then follow from those sequences.
        Raises while NATS is down or a stream's owner has not made it yet."""
        await self.bus.wait_ready(3600)
        for stream in FOLLOWED:
            self.last_seq[stream] = await self._stream_last_seq(stream)
        await self.load_snapshots()
        for stream in FOLLOWED:
            await self._subscribe(stream)

    async def _watch(self) -> None:
        """Every second, each stream's consumer is checked; a lost one (NATS restarted) is
        made again from last_seq. A periodic round, not a retry loop: a stream that cannot be
        followed now is tried again at the next round."""
        while True:
            await asyncio.sleep(1)
            for stream in FOLLOWED:
                if await self._consumer_alive(stream):
                    self.live[stream] = True
                else:
                    self.live[stream] = False
                    if self.bus.connected:
                        await self._resubscribe(stream)
                STREAM_LIVE.labels(stream).set(1 if self.live[stream] else 0)

    async def _consumer_alive(self, stream: str) -> bool:
        sub = self._subs.get(stream)
        if sub is None or not self.bus.connected:
            return False
        try:
            await sub.consumer_info()
        except Exception:  # gone with the server that held it, a time-out, ...
            return False
        return True

    async def _resubscribe(self, stream: str) -> None:
        try:
            await self._subscribe(stream)
        except Exception as exc:
            log.warning("resubscribe failed", extra={"stream": stream, "error": repr(exc)})

    def _js(self) -> JetStreamContext:
        if self.bus.js is None:
            raise ConnectionError("message bus not connected")
        return self.bus.js

    async def _stream_last_seq(self, stream: str) -> int:
        info = await self._js().stream_info(stream)
        return int(info.state.last_seq)

    async def _pages(
        self, client: httpx.AsyncClient, path: str, cursor_param: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Every page of a paged internal read (`next_cursor` until it is null)."""
        cursor: str | None = None
        while True:
            page = await get_json(client, path, {cursor_param: cursor} if cursor else None)
            yield page
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def load_snapshots(self) -> None:
        view = self.view
        async for page in self._pages(self.issuer, "/internal/v1/revocations", "after"):
            view.revoked.update(str(i) for i in page["items"])
        # Members, devices, rules (venue-admin), page by page (a page is a range of venues).
        async for page in self._pages(self.venue_admin, "/internal/v1/scan-snapshot", "cursor"):
            for item in page["members"]:
                handlers.apply_member(view, item)
            for item in page["devices"]:
                handlers.apply_device(view, item)
            for item in page["rules"]:
                handlers.apply_rule(view, item)
        view.venues_complete = True
        # Statuses of subjects already cached (a reload); a cold start fills them on misses.
        subject_ids = list(view.statuses.data)
        for i in range(0, len(subject_ids), STATUS_BATCH):
            response = await self.health_records.post(
                "/internal/v1/statuses", json={"subject_ids": subject_ids[i : i + STATUS_BATCH]}
            )
            if response.status_code == 200:
                for item in response.json()["items"]:
                    handlers.apply_status(view, item)

    async def _subscribe(self, stream: str) -> None:
        js = self._js()
        old = self._subs.pop(stream, None)
        if old is not None:
            try:
                await old.unsubscribe()
            except Exception as exc:  # the old connection is gone; so is its subscription
                log.debug("old subscription not removed", extra={"error": repr(exc)})
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.last_seq.get(stream, 0) + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30,
            max_deliver=1,
        )

        async def on_message(msg: Msg) -> None:
            self._handle(stream, msg)

        self._subs[stream] = await js.subscribe(
            subjects.STREAMS[stream][0],
            stream=stream,
            cb=on_message,
            config=config,
            manual_ack=True,
        )
        self.live[stream] = True

    def _handle(self, stream: str, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self.last_seq.get(stream, 0):
            return  # seen already (a consumer made again)
        self.last_seq[stream] = seq
        try:
            envelope = Envelope.from_bytes(msg.data)
            handlers.apply_event(self.view, envelope)
        except Exception as exc:  # not an envelope, a payload that does not validate, ...
            log.error("event not applied", extra={"stream": stream, "error": repr(exc)})
            return
        EVENTS_APPLIED.labels(stream).inc()
        EVENT_LAG.labels(stream).set(max(0.0, time.time() - envelope.occurred_at.timestamp()))

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
