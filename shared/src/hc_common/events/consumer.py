"""Durable JetStream pull consumers with idempotent handlers, restarted when the bus returns,
with a delivery limit and a dead-letter path.

A batch is handed to the handler whole and acked when it returns. When it raises, the
consumer hands the batch's events to the handler one by one (handlers are idempotent, so
handling the good ones again is harmless): the ones that pass are acked, the ones that fail
are handed back with a growing delay (`nak(delay=...)`), so one bad event never holds up the
events behind it. An event that has failed on its last allowed delivery (`max_deliver`), or
that can never be handled (`PermanentEventError`: not an envelope, or a payload that does not
fit its subject's schema), is published to the dead letters and acked:
`dead_letter.<service_underscored>.<durable>` in the `DEAD_LETTERS` stream, its original bytes
with headers that say where it came from and why it failed (no payload data in them). It
stays there until an operator replays it (hc_common.events.deadletters).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import stamina
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import Counter
from pydantic import ValidationError

from hc_common.aio import stop_task
from hc_common.clock import utcnow
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope
from hc_common.events.schemas import PAYLOADS, envelope_adapter, parse_payload
from hc_common.ids import new_id

log = logging.getLogger("hc.consumer")

Handler = Callable[[list[Envelope]], Awaitable[None]]

DEAD_LETTER_STREAM = "DEAD_LETTERS"
# A dead letter's headers: where the event came from and why it was given up on. Ids,
# counts and an exception's type name only: never a payload value (it may hold a name).
HEADER_SUBJECT = "Dead-Letter-Subject"
HEADER_STREAM = "Dead-Letter-Stream"
HEADER_SEQUENCE = "Dead-Letter-Sequence"
HEADER_DELIVERIES = "Dead-Letter-Deliveries"
HEADER_ERROR = "Dead-Letter-Error"
HEADER_CONSUMER = "Dead-Letter-Consumer"
HEADER_EVENT_ID = "Dead-Letter-Event-Id"

# How long the server waits for an ack before it delivers a message again.
ACK_WAIT = 30.0

DEAD_LETTERED = Counter(
    "events_dead_lettered_total",
    "Events a consumer gave up on and published to the dead letters",
    ["durable"],
)
REDELIVERED = Counter(
    "events_redelivered_total",
    "Events a consumer failed to handle and handed back to be tried again after a delay",
    ["durable"],
)


class PermanentEventError(Exception):
    """An event that will fail however often it is tried: dead-lettered at once instead of
    being retried up to the delivery limit. A handler may raise it for an event it refuses."""

    def __init__(self, message: str, *, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id  # the envelope's id, where there is an envelope


class UndecodableEvent(PermanentEventError):
    """The message is not an event envelope."""


class InvalidPayload(PermanentEventError):
    """The envelope's `data` does not fit the schema of the message's subject."""


def dead_letter_subject(service: str, durable: str) -> str:
    """Where the dead letters of `service`'s consumer `durable` go: venue-admin's
    `venue-admin-access-records` -> `dead_letter.venue_admin.venue-admin-access-records`."""
    return f"dead_letter.{service.replace('-', '_')}.{durable}"


def decode_event(data: bytes, subject: str, *, validate: bool = False) -> Envelope:
    """The envelope in a message of `subject`; with `validate`, its payload is also checked
    against the subject's schema (a subject without one is not checked) and handed over as
    the schema reads it (`Envelope.payload_checked`). Raises UndecodableEvent or
    InvalidPayload, without the payload in the exception (it would end up in a log line)."""
    if validate and subject in PAYLOADS:
        # Envelope and payload from the JSON in one pass; what fails is looked at again
        # below, to tell an envelope that does not fit from a payload that does not.
        try:
            event = envelope_adapter(subject).validate_json(data)
        except ValidationError:
            pass
        else:
            # What Envelope makes of an envelope without an id or a time, as below.
            return Envelope.checked(
                event["id"] if "id" in event else new_id(),
                event["type"],
                event["occurred_at"] if "occurred_at" in event else utcnow(),
                event["data"],
            )
    try:
        envelope = Envelope.from_bytes(data)
    except ValueError:
        raise UndecodableEvent("not an event envelope") from None
    if validate and subject in PAYLOADS:
        try:
            payload = parse_payload(subject, envelope.data)
        except ValidationError:
            raise InvalidPayload(
                f"payload does not fit the schema of {subject}", event_id=envelope.id
            ) from None
        # It fits after all (the two passes read the same schemas, so this should not
        # happen): handed over checked, as from the single pass, never dead-lettered.
        return Envelope.checked(envelope.id, envelope.type, envelope.occurred_at, payload)
    return envelope


class Consumer:
    """Fetches batches from a durable consumer and hands them to `handler`; acks after the
    handler returns, so a crash redelivers (handlers must be idempotent).

    An event that fails is tried again after `retry_delay` seconds, doubling with each
    delivery up to `max_retry_delay`; one that fails on its `max_deliver`th delivery goes to
    the dead letters of `service` (default: the bus's name). With `validate_payloads`, an
    event whose payload does not fit its subject's schema goes there at once.

    `healthy` (e.g. the database's ping) tells an outage from a poison event: while it says
    the handler's own store is down, a failure is retried without ever being dead-lettered,
    however long the outage lasts (the events wait in their stream, as they should)."""

    def __init__(
        self,
        bus: EventBus,
        *,
        stream: str,
        durable: str,
        subject: str,
        handler: Handler,
        batch: int = 256,
        deliver_policy: DeliverPolicy = DeliverPolicy.ALL,
        opt_start_seq: int | None = None,
        max_deliver: int = 5,
        retry_delay: float = 2.0,
        max_retry_delay: float = 120.0,
        validate_payloads: bool = False,
        service: str | None = None,
        healthy: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        if max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        self.bus = bus
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.handler = handler
        self.batch = batch
        self.deliver_policy = deliver_policy
        self.opt_start_seq = opt_start_seq
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.validate_payloads = validate_payloads
        self.healthy = healthy
        self.dead_letter_subject = dead_letter_subject(service or bus.name, durable)
        self._task: asyncio.Task[None] | None = None
        # What was fetched and is neither acked nor handed back yet, by the message's id().
        self._unsettled: dict[int, Msg] = {}
        self._stopping = asyncio.Event()

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.durable}")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop once the batch in hand is settled (stored and acked, or handed back). A batch
        cancelled in the middle of its write can leave the transaction open while the session
        closes (seen on SQLite under load: its write lock held, the next writer waiting out
        the busy timeout); one still running after `grace` seconds is cancelled all the same."""
        if self._task is None:
            return
        self._stopping.set()
        await asyncio.wait({self._task}, timeout=grace)
        await stop_task(self._task)

    def delay_after(self, deliveries: int) -> float:
        """How long an event that failed on its `deliveries`th delivery waits to be tried
        again: `retry_delay`, doubled for each delivery before, at most `max_retry_delay`."""
        return float(min(self.retry_delay * 2 ** max(deliveries - 1, 0), self.max_retry_delay))

    async def _run(self) -> None:
        # A lost connection restarts the subscription, with backoff; what was fetched and
        # not settled is handed back first, so it is redelivered at once.
        async for attempt in stamina.retry_context(
            on=Exception, attempts=None, timeout=None, wait_initial=0.5, wait_max=10.0
        ):
            with attempt:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    await self._release_unsettled()
                    raise
                except Exception as exc:
                    log.warning(
                        "consumer interrupted; restarting",
                        extra={"durable": self.durable, "error": repr(exc)},
                    )
                    await self._release_unsettled()
                    raise

    async def _consume(self) -> None:
        await self.bus.wait_ready(3600)
        assert self.bus.js is not None
        # The delivery limit is kept here, not in the server's `max_deliver`: the server
        # stops delivering a message at its limit whether or not it reached the dead
        # letters, and one whose dead-lettering failed would then sit unacked for ever.
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=self.deliver_policy,
            opt_start_seq=self.opt_start_seq,
            ack_wait=ACK_WAIT,
            max_ack_pending=20000,
        )
        sub = await self.bus.js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            try:
                messages = await sub.fetch(self.batch, timeout=1)
            except (NatsTimeoutError, TimeoutError):
                continue
            self._unsettled = {id(msg): msg for msg in messages}
            # Events not yet tried one by one when this passes are handed back rather than
            # left to the ack wait, after which the server would deliver them again anyway.
            await self._handle(messages, deadline=loop.time() + ACK_WAIT * 0.6)
            self._unsettled = {}

    async def _handle(self, messages: list[Msg], *, deadline: float) -> None:
        events: list[tuple[Msg, Envelope]] = []
        for msg in messages:
            try:
                envelope = decode_event(msg.data, msg.subject, validate=self.validate_payloads)
            except PermanentEventError as exc:
                await self._dead_letter(msg, exc, event_id=exc.event_id)
                continue
            events.append((msg, envelope))
        if not events:
            return
        try:
            await self.handler([envelope for _, envelope in events])
        except Exception as exc:
            # Only the type: a driver's or a validator's message may quote the payload.
            log.warning(
                "batch failed; handling its events one by one",
                extra={"durable": self.durable, "count": len(events), "error": _name(exc)},
            )
            await self._handle_one_by_one(events, deadline)
            return
        for msg, _ in events:
            await self._ack(msg)

    async def _handle_one_by_one(self, events: list[tuple[Msg, Envelope]], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        for index, (msg, envelope) in enumerate(events):
            if loop.time() > deadline:
                # The handler is slow (a database that hangs): the rest is tried later.
                for untried, _ in events[index:]:
                    await self._nak(untried, self.retry_delay)
                return
            try:
                await self.handler([envelope])
            except Exception as exc:
                await self._failed(msg, envelope, exc)
            else:
                await self._ack(msg)

    async def _failed(self, msg: Msg, envelope: Envelope, exc: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        if isinstance(exc, PermanentEventError) or (
            deliveries >= self.max_deliver and await self._store_up()
        ):
            await self._dead_letter(msg, exc, event_id=envelope.id)
            return
        delay = self.delay_after(deliveries)
        log.warning(
            "event failed; tried again later",
            extra={
                "durable": self.durable,
                "event_id": envelope.id,
                "stream_seq": msg.metadata.sequence.stream,
                "deliveries": deliveries,
                "delay": delay,
                "error": _name(exc),
            },
        )
        REDELIVERED.labels(self.durable).inc()
        await self._nak(msg, delay)

    async def _store_up(self) -> bool:
        if self.healthy is None:
            return True
        try:
            return await self.healthy()
        except Exception:
            return False

    async def _dead_letter(self, msg: Msg, exc: Exception, *, event_id: str | None) -> None:
        """Publish `msg` to the dead letters, then ack it; if the publish fails, the message
        is handed back and dead-lettered at its next failure."""
        assert self.bus.js is not None
        meta = msg.metadata
        headers = {
            # The same message dead-lettered twice (its ack lost) is dropped as a duplicate.
            "Nats-Msg-Id": f"{meta.stream}-{meta.sequence.stream}",
            HEADER_SUBJECT: msg.subject,
            HEADER_STREAM: meta.stream,
            HEADER_SEQUENCE: str(meta.sequence.stream),
            HEADER_DELIVERIES: str(meta.num_delivered),
            HEADER_ERROR: _name(exc),
            HEADER_CONSUMER: self.durable,
        }
        if event_id is not None:
            headers[HEADER_EVENT_ID] = event_id
        where = {
            "durable": self.durable,
            "event_id": event_id,
            "stream_seq": meta.sequence.stream,
            "deliveries": meta.num_delivered,
            "error": _name(exc),
        }
        try:
            ack = await self.bus.js.publish(
                self.dead_letter_subject, msg.data, headers=headers, timeout=5
            )
        except Exception as publish_error:
            log.error(
                "dead-lettering failed; the event is kept and tried again",
                extra={**where, "publish_error": _name(publish_error)},
            )
            await self._nak(msg, self.delay_after(meta.num_delivered))
            return
        if not ack.duplicate:
            DEAD_LETTERED.labels(self.durable).inc()
        log.error("event dead-lettered", extra={**where, "dead_letter_seq": ack.seq})
        await self._ack(msg)

    async def _ack(self, msg: Msg) -> None:
        await msg.ack()
        self._unsettled.pop(id(msg), None)

    async def _nak(self, msg: Msg, delay: float) -> None:
        await msg.nak(delay=delay)
        self._unsettled.pop(id(msg), None)

    async def _release_unsettled(self) -> None:
        """Hand back what was fetched but not settled, so that it is redelivered now rather
        than after the ack wait."""
        messages, self._unsettled = list(self._unsettled.values()), {}
        for msg in messages:
            try:
                await msg.nak()
            except Exception as exc:  # the connection is gone: the ack wait will do it
                log.debug("nak failed", extra={"error": repr(exc)})
                return


def _name(exc: BaseException) -> str:
    return type(exc).__name__
