"""A NATS JetStream connection that survives the server going away and coming back."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import nats
import stamina
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, StreamConfig
from nats.js.errors import BadRequestError

from hc_common.aio import stop_task, wait_event
from hc_common.events.envelope import STREAMS

log = logging.getLogger("hc.events")


class EventBus:
    """Connects in the background and keeps reconnecting; `connected` says whether it is up."""

    def __init__(self, url: str, name: str, streams: tuple[str, ...] = ()) -> None:
        self.url = url
        self.name = name
        self.streams = streams
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on_connect: list[Callable[[], Awaitable[None]]] = []

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def start(self, wait: float = 0) -> None:
        self._task = asyncio.create_task(self._connect_loop(), name=f"{self.name}-nats")
        if wait:
            if not await wait_event(self._ready, wait):
                log.warning("message bus not reachable yet; going on without it")

    async def _connect_loop(self) -> None:
        # Connection refused, no JetStream yet, ...: tried again with backoff until it works.
        async for attempt in stamina.retry_context(
            on=Exception, attempts=None, timeout=None, wait_initial=0.2, wait_max=5.0
        ):
            with attempt:
                await self._connect()

    async def _connect(self) -> None:
        try:
            self.nc = await nats.connect(
                self.url,
                name=self.name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                allow_reconnect=True,
                drain_timeout=2,
                reconnected_cb=self._reconnected,
                disconnected_cb=self._disconnected,
            )
            self.js = self.nc.jetstream(timeout=5)
            await self.ensure_streams()
        except Exception as exc:
            log.warning("message bus connect failed", extra={"error": repr(exc)})
            if self.nc is not None:
                await self._close_quietly()
            raise
        self._ready.set()
        for callback in self.on_connect:
            await callback()

    async def _reconnected(self) -> None:
        log.info("message bus reconnected")
        try:
            await self.ensure_streams()
        except Exception as exc:
            log.warning("stream check after reconnect failed", extra={"error": repr(exc)})

    async def _disconnected(self) -> None:
        log.warning("message bus disconnected")

    async def ensure_streams(self) -> None:
        assert self.js is not None
        for name in self.streams:
            config = StreamConfig(name=name, subjects=STREAMS[name], duplicate_window=120)
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                await self.js.update_stream(config)

    async def wait_ready(self, timeout: float) -> bool:
        return await wait_event(self._ready, timeout)

    async def publish_many(
        self, messages: list[tuple[str, bytes, str]], timeout: float = 5.0
    ) -> None:
        """Publish `(subject, payload, msg_id)` messages pipelined: all are sent in order on
        the one connection, then the acks are awaited together. Raises if any is not acked
        (the caller sends the whole lot again; the message ids make that harmless)."""
        if self.js is None or not self.connected:
            raise ConnectionError("message bus not connected")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for subject, payload, msg_id in messages:
                acks.append(
                    await self.js.publish_async(
                        subject, payload, headers={"Nats-Msg-Id": msg_id}, wait_stall=timeout
                    )
                )
            async with asyncio.timeout_at(deadline):
                for ack in acks:
                    await ack
        finally:
            for ack in acks:
                if not ack.done():
                    ack.cancel()

    async def _close_quietly(self) -> None:
        try:
            if self.nc is not None:
                await self.nc.close()
        except Exception as exc:
            log.debug("close failed", extra={"error": repr(exc)})

    async def close(self) -> None:
        await stop_task(self._task)
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:
                await self._close_quietly()
