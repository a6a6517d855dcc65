"""Dead letters: what a durable consumer gave up on (hc_common.events.consumer), listed and
replayed by an operator.

A consumer's dead letters are the messages on `dead_letter.<service_underscored>.<durable>`
in the `DEAD_LETTERS` stream (a work queue): each holds the original event's bytes, with
headers that say where it came from (subject, stream, sequence), how often it was delivered
and the type of the error. Both tools read them through a pull consumer of their own,
`dead-letters-<durable>`, filtered on that subject and deleted when they are done:

- `list_dead_letters` fetches without acking, so nothing leaves the stream;
- `replay_dead_letters` hands each letter's event to the consumer's handler (a batch at a
  time, then one by one if the batch fails) and acks the ones handled, which the work queue
  then removes; the ones that still fail stay where they are, for the next replay.

A work-queue stream takes one consumer per subject, so run one tool at a time per durable.
Replaying an event that was already stored is harmless: handlers are idempotent.
Services wrap these in a command (venue-admin: `python -m venue_admin.access`); the how-to
is docs/operations.md ("Dead letters").
"""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from hc_common.events.consumer import (
    DEAD_LETTER_STREAM,
    HEADER_SUBJECT,
    Handler,
    PermanentEventError,
    dead_letter_subject,
    decode_event,
)
from hc_common.events.envelope import Envelope

log = logging.getLogger("hc.deadletters")

# Long enough that a letter left in place is not delivered again during one replay.
_ACK_WAIT = 600.0


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter as listed: its place in DEAD_LETTERS and its headers (the payload is
    left out: it may hold personal data)."""

    sequence: int
    headers: dict[str, str]


@dataclass(frozen=True)
class ReplayReport:
    replayed: int  # handled and removed from the dead letters
    left: int  # still failing, left in place


@asynccontextmanager
async def _reader(
    js: JetStreamContext, service: str, durable: str
) -> AsyncIterator[JetStreamContext.PullSubscription]:
    """A pull subscription on one durable's dead letters, its consumer deleted afterwards so
    that whatever it did not ack is at once available to the next reader."""
    subject = dead_letter_subject(service, durable)
    name = f"dead-letters-{durable}"
    config = ConsumerConfig(
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=_ACK_WAIT,
        max_ack_pending=-1,  # every letter may be held unacked at once (a listing does)
        inactive_threshold=_ACK_WAIT,  # removed by the server if this process dies
    )
    sub = await js.pull_subscribe(subject, durable=name, stream=DEAD_LETTER_STREAM, config=config)
    try:
        yield sub
    finally:
        await sub.unsubscribe()
        try:
            await js.delete_consumer(DEAD_LETTER_STREAM, name)
        except NotFoundError:
            pass


async def _fetch(sub: JetStreamContext.PullSubscription, batch: int) -> list[Msg]:
    """The next messages, or [] once none comes within a second (the subject is drained)."""
    try:
        return await sub.fetch(batch, timeout=1)
    except (NatsTimeoutError, TimeoutError):
        return []


async def list_dead_letters(
    js: JetStreamContext, service: str, durable: str, *, limit: int = 1000
) -> tuple[int, list[DeadLetter]]:
    """How many dead letters `service`'s consumer `durable` has, and the first `limit` of
    them, oldest first. Nothing is removed."""
    async with _reader(js, service, durable) as sub:
        total = (await sub.consumer_info()).num_pending or 0
        letters: list[DeadLetter] = []
        while len(letters) < min(limit, total):
            messages = await _fetch(sub, min(limit - len(letters), 256))
            if not messages:
                break
            letters += [
                DeadLetter(msg.metadata.sequence.stream, dict(msg.headers or {}))
                for msg in messages
            ]
    return total, letters[:limit]


async def replay_dead_letters(
    js: JetStreamContext,
    service: str,
    durable: str,
    handler: Handler,
    *,
    validate_payloads: bool = False,
    batch: int = 100,
) -> ReplayReport:
    """Hand `service`'s consumer `durable`'s dead letters to `handler` (the consumer's own,
    or one that fixes what made them fail) and remove the ones it handles. With
    `validate_payloads`, a letter whose payload still does not fit its subject's schema is
    not handed over (a handler that drops what it cannot read would lose it) but left."""
    replayed = left = 0
    seen: set[int] = set()
    async with _reader(js, service, durable) as sub:
        while messages := await _fetch(sub, batch):
            events: list[tuple[Msg, Envelope]] = []
            for msg in messages:
                sequence = msg.metadata.sequence.stream
                if sequence in seen:  # left in place and delivered again: tried already
                    continue
                seen.add(sequence)
                subject = (msg.headers or {}).get(HEADER_SUBJECT, "")
                try:
                    events.append(
                        (msg, decode_event(msg.data, subject, validate=validate_payloads))
                    )
                except PermanentEventError as exc:
                    _still_failing(durable, sequence, exc)
                    left += 1
            for msg, ok in await _handle(handler, durable, events):
                if ok:
                    # Confirmed, so that a replay reporting success has removed the letter.
                    await msg.ack_sync()
                    replayed += 1
                else:
                    left += 1
    return ReplayReport(replayed=replayed, left=left)


async def _handle(
    handler: Handler, durable: str, events: list[tuple[Msg, Envelope]]
) -> list[tuple[Msg, bool]]:
    """Each message with whether the handler took its event: the batch at once, or, if that
    fails, one by one."""
    if not events:
        return []
    try:
        await handler([envelope for _, envelope in events])
        return [(msg, True) for msg, _ in events]
    except Exception:
        pass
    outcome: list[tuple[Msg, bool]] = []
    for msg, envelope in events:
        try:
            await handler([envelope])
        except Exception as exc:
            _still_failing(durable, msg.metadata.sequence.stream, exc)
            outcome.append((msg, False))
        else:
            outcome.append((msg, True))
    return outcome


def _still_failing(durable: str, sequence: int, exc: Exception) -> None:
    log.warning(
        "dead letter still fails; left in place",
        extra={"durable": durable, "dead_letter_seq": sequence, "error": type(exc).__name__},
    )
