"""Keeps the view current: a snapshot from each owning service at start, then the JetStream
streams followed from the sequence taken *before* the snapshot (so no change falls in between),
each event applied by version. Ephemeral consumers per replica: every replica sees every event.
Also probes health-records, so that a status from memory is marked stale while it is down."""

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

import httpx
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hc_common.aio import stop_task
from hc_common.events import envelope as subjects
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope
from verifier.clients import NotKnown, Unreachable, get_json
from verifier.view.metrics import EVENT_LAG, EVENTS_APPLIED, STREAM_LIVE
from verifier.view.state import ScanView

log = logging.getLogger("verifier.sync")

FOLLOWED = ("ISSUER", "VENUES", "HEALTH")


class ViewSync:
    def __init__(
        self,
        view: ScanView,
        bus: EventBus,
        *,
        issuer: httpx.AsyncClient,
        venue_admin: httpx.AsyncClient,
        health_records: httpx.AsyncClient,
        credential_from: Callable[[dict[str, object]], object],
        status_from: Callable[[dict[str, object]], object],
    ) -> None:
        self.view = view
        self.bus = bus
        self.issuer = issuer
        self.venue_admin = venue_admin
        self.health_records = health_records
        self.credential_from = credential_from
        self.status_from = status_from
        self.last_seq: dict[str, int] = {}
        self.live: dict[str, bool] = dict.fromkeys(FOLLOWED, False)
        self.ready = asyncio.Event()
        self.health_records_up = True
        # Last monotonic moment health-records was known reachable with its stream followed:
        # a cached status was current at least until then.
        self.health_confirmed_at = time.monotonic()
        self._subs: dict[str, object] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def health_current(self) -> bool:
        """Statuses in memory are current: health-records up and its stream followed."""
        return self.health_records_up and self.live["HEALTH"]

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._start_loop(), name="view-sync"))
        self._tasks.append(asyncio.create_task(self._probe_loop(), name="health-probe"))

    async def stop(self) -> None:
        for task in self._tasks:
            await stop_task(task)

    # --- start: sequences, snapshots, follow ---------------------------------------
    async def _start_loop(self) -> None:
        while True:
            try:
                await self.bus.wait_ready(3600)
                assert self.bus.js is not None
                for stream in FOLLOWED:
                    self.last_seq[stream] = await self._stream_last_seq(stream)
                await self.load_snapshots()
                for stream in FOLLOWED:
                    await self._subscribe(stream)
                self.ready.set()
                log.info(
                    "view loaded",
                    extra={"members": len(self.view.members), "revoked": len(self.view.revoked)},
                )
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("view load failed; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(0.5)
        # Watch the followers: a lost consumer (NATS restarted) is made again from last_seq.
        while True:
            await asyncio.sleep(1)
            for stream in FOLLOWED:
                try:
                    sub = self._subs.get(stream)
                    if sub is None or not self.bus.connected:
                        raise ConnectionError("not connected")
                    await sub.consumer_info()  # type: ignore[attr-defined]
                    self.live[stream] = True
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.live[stream] = False
                    if self.bus.connected:
                        try:
                            await self._subscribe(stream)
                            self.live[stream] = True
                        except Exception as exc:
                            log.warning(
                                "resubscribe failed", extra={"stream": stream, "error": repr(exc)}
                            )
                STREAM_LIVE.labels(stream).set(1 if self.live[stream] else 0)

    async def _stream_last_seq(self, stream: str) -> int:
        assert self.bus.js is not None
        try:
            info = await self.bus.js.stream_info(stream)
            return int(info.state.last_seq)
        except Exception:  # the owner has not made its stream yet: follow from the start
            return 0

    async def load_snapshots(self) -> None:
        view = self.view
        # Revocations (issuer), paged.
        cursor: str | None = None
        while True:
            page = await get_json(
                self.issuer, "/internal/v1/revocations", {"after": cursor} if cursor else None
            )
            view.revoked.update(str(i) for i in page.get("items", []))  # type: ignore[union-attr]
            cursor = page.get("next_cursor")  # type: ignore[assignment]
            if not cursor:
                break
        # Members, devices, rules (venue-admin); without the endpoint, scan-context per miss.
        try:
            snapshot = await get_json(self.venue_admin, "/internal/v1/scan-snapshot")
        except NotKnown:
            view.venues_complete = False
        else:
            for member in snapshot.get("members", []):  # type: ignore[union-attr]
                view.apply_member(member)
            for device in snapshot.get("devices", []):  # type: ignore[union-attr]
                view.apply_device(device)
            for rule in snapshot.get("rules", []):  # type: ignore[union-attr]
                view.apply_rule(rule)
            view.venues_complete = True
        # Statuses of subjects already cached (a reload); a cold start fills them on misses.
        subject_ids = list(view.statuses.data)
        for i in range(0, len(subject_ids), 5000):
            response = await self.health_records.post(
                "/internal/v1/statuses", json={"subject_ids": subject_ids[i : i + 5000]}
            )
            if response.status_code == 200:
                for item in response.json().get("items", []):
                    view.apply_status(self.status_from(item))  # type: ignore[arg-type]

    async def _subscribe(self, stream: str) -> None:
        assert self.bus.js is not None
        old = self._subs.pop(stream, None)
        if old is not None:
            try:
                await old.unsubscribe()  # type: ignore[attr-defined]
            except Exception as exc:  # the old connection is gone; so is its subscription
                log.debug("old subscription not removed", extra={"error": repr(exc)})
        start = self.last_seq.get(stream, 0) + 1
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30,
            max_deliver=1,
        )

        async def on_message(msg: object) -> None:
            self._handle(stream, msg)

        try:
            self._subs[stream] = await self.bus.js.subscribe(
                subjects.STREAMS[stream][0],
                stream=stream,
                cb=on_message,
                config=config,
                manual_ack=True,
            )
        except Exception as exc:
            if "not found" in repr(exc).lower():
                # No stream yet: make it (same config as its owner) and follow from the start.
                await self.bus.js.add_stream(
                    name=stream, subjects=subjects.STREAMS[stream], duplicate_window=120
                )
                self._subs[stream] = await self.bus.js.subscribe(
                    subjects.STREAMS[stream][0],
                    stream=stream,
                    cb=on_message,
                    config=config,
                    manual_ack=True,
                )
            else:
                raise
        self.live[stream] = True

    def _handle(self, stream: str, msg: object) -> None:
        seq = msg.metadata.sequence.stream  # type: ignore[attr-defined]
        if seq <= self.last_seq.get(stream, 0):
            return  # seen already (a consumer made again)
        self.last_seq[stream] = seq
        try:
            envelope = Envelope.from_bytes(msg.data)  # type: ignore[attr-defined]
            self.apply(envelope)
        except Exception as exc:
            log.error("event not applied", extra={"stream": stream, "error": repr(exc)})
            return
        EVENTS_APPLIED.labels(stream).inc()
        occurred = envelope.occurred_at
        if isinstance(occurred, datetime):
            EVENT_LAG.labels(stream).set(max(0.0, time.time() - occurred.timestamp()))

    def apply(self, envelope: Envelope) -> None:
        view, data, kind = self.view, envelope.data, envelope.type
        if kind == subjects.STATUS_CHANGED:
            view.apply_status(self.status_from(data))  # type: ignore[arg-type]
        elif kind in (subjects.CREDENTIAL_ISSUED, subjects.CREDENTIAL_REVOKED):
            view.apply_credential(self.credential_from(data))
        elif kind == subjects.MEMBER_CHANGED:
            view.apply_member(data)
        elif kind == subjects.DEVICE_CHANGED:
            view.apply_device(data)
        elif kind == subjects.RULE_CHANGED:
            view.apply_rule(data)
        elif kind == subjects.VENUE_CHANGED:
            view.apply_venue(data)

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


__all__ = ["Unreachable", "ViewSync"]
