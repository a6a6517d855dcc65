"""Durable JetStream pull consumers with idempotent handlers, restarted when the bus returns."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import stamina
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from hc_common.aio import stop_task
from hc_common.events.bus import EventBus
from hc_common.events.envelope import Envelope

log = logging.getLogger("hc.consumer")

Handler = Callable[[list[Envelope]], Awaitable[None]]


class Consumer:
    """Fetches batches from a durable consumer and hands them to `handler`; acks after the
    handler returns, so a crash redelivers (handlers must be idempotent)."""

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
    ) -> None:
        self.bus = bus
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.handler = handler
        self.batch = batch
        self.deliver_policy = deliver_policy
        self.opt_start_seq = opt_start_seq
        self._task: asyncio.Task[None] | None = None
        self._unacked: list[Msg] = []

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.durable}")

    async def stop(self) -> None:
        if self._task is not None:
            await stop_task(self._task)

    async def _run(self) -> None:
        # A lost connection or a failing handler restarts the subscription, with backoff; what
        # was fetched and not acked is handed back first, so it is redelivered at once.
        async for attempt in stamina.retry_context(
            on=Exception, attempts=None, timeout=None, wait_initial=0.5, wait_max=10.0
        ):
            with attempt:
                try:
                    await self._consume()
                except asyncio.CancelledError:
                    await self._release_unacked()
                    raise
                except Exception as exc:
                    log.warning(
                        "consumer interrupted; restarting",
                        extra={"durable": self.durable, "error": repr(exc)},
                    )
                    await self._release_unacked()
                    raise

    async def _consume(self) -> None:
        await self.bus.wait_ready(3600)
        assert self.bus.js is not None
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=self.deliver_policy,
            opt_start_seq=self.opt_start_seq,
            ack_wait=30,
            max_ack_pending=20000,
        )
        sub = await self.bus.js.pull_subscribe(
            self.subject, durable=self.durable, stream=self.stream, config=config
        )
        while True:
            try:
                messages = await sub.fetch(self.batch, timeout=1)
            except (NatsTimeoutError, TimeoutError):
                continue
            self._unacked = messages
            envelopes = []
            for msg in messages:
                try:
                    envelopes.append(Envelope.from_bytes(msg.data))
                except ValueError:
                    log.error("undecodable event dropped", extra={"subject": msg.subject})
            await self.handler(envelopes)
            for msg in messages:
                await msg.ack()
            self._unacked = []

    async def _release_unacked(self) -> None:
        """Hand back what was fetched but not handled, so that it is redelivered now rather
        than after the ack wait (30 s)."""
        messages, self._unacked = self._unacked, []
        for msg in messages:
            try:
                await msg.nak()
            except Exception as exc:  # the connection is gone: the ack wait will do it
                log.debug("nak failed", extra={"error": repr(exc)})
                return
