"""A NATS JetStream connection that survives the server going away and coming back,
authenticated as its service (hc_common.events.accounts)."""

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import stamina
from nats.aio.client import Client
from nats.errors import SlowConsumerError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import BadRequestError
from prometheus_client import Counter, Gauge

from hc_common.aio import stop_task, wait_event
from hc_common.events.accounts import inbox_prefix
from hc_common.events.streams import SPECS

if TYPE_CHECKING:
    from hc_common.settings import ServiceSettings

log = logging.getLogger("hc.events")

BUS_CONNECTED = Gauge("message_bus_connected", "1 while connected to the message bus")
BUS_DISCONNECTS = Counter("message_bus_disconnects_total", "Connections to the bus lost")
SLOW_CONSUMER_DROPS = Counter(
    "message_bus_slow_consumer_drops_total",
    "Messages the client dropped because a subscription's buffer was full",
)


@dataclass(frozen=True)
class NatsAuth:
    """A service's credentials on the bus: user and password, or a creds file (JWT/NKey);
    `tls_ca` verifies the servers' certificates on a `tls://` URL."""

    user: str = ""
    password: str = ""
    creds: Path | None = None
    tls_ca: Path | None = None

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.creds is not None:
            options["user_credentials"] = str(self.creds)
        elif self.user:
            options |= {"user": self.user, "password": self.password}
            # Replies to this service come under an inbox prefix only it may read.
            options["inbox_prefix"] = inbox_prefix(self.user)
        if self.tls_ca is not None:
            options["tls"] = ssl.create_default_context(cafile=str(self.tls_ca))
        return options


def server_list(url: str) -> list[str]:
    """`NATS_URL` as a list of servers (it may name a cluster's, separated by commas)."""
    return [server.strip() for server in url.split(",") if server.strip()]


class EventBus:
    """Connects in the background and keeps reconnecting; `connected` says whether it is up.
    At each connection it makes sure `streams` (declared in hc_common.events.streams) exist
    with their configuration."""

    def __init__(
        self,
        url: str,
        name: str,
        streams: tuple[str, ...] = (),
        *,
        auth: NatsAuth | None = None,
        replicas: int = 1,
        max_bytes: int | None = None,
    ) -> None:
        self.servers = server_list(url)
        self.name = name
        self.streams = streams
        self.auth = auth or NatsAuth()
        self.replicas = replicas
        self.max_bytes = max_bytes
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._slow_logged_at = -10.0
        self.on_connect: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    def from_settings(
        cls, settings: "ServiceSettings", streams: tuple[str, ...] = (), name: str | None = None
    ) -> "EventBus":
        """The bus of a service as its settings describe it (URL, credentials, streams)."""
        return cls(
            settings.nats_url,
            name or settings.service_name,
            streams,
            auth=NatsAuth(
                user=settings.nats_user,
                password=settings.nats_password,
                creds=settings.nats_creds,
                tls_ca=settings.nats_tls_ca,
            ),
            replicas=settings.nats_stream_replicas,
            max_bytes=settings.nats_stream_max_bytes,
        )

    def describe(self) -> dict[str, Any]:
        """The connection's state for `/healthz`: no credentials, no user."""
        server = self.nc.connected_url if self.nc is not None and self.connected else None
        return {
            "connected": self.connected,
            "server": f"{server.hostname}:{server.port}" if server else None,
            "streams": list(self.streams),
        }

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
                self.servers,
                name=self.name,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                allow_reconnect=True,
                drain_timeout=2,
                reconnected_cb=self._reconnected,
                disconnected_cb=self._disconnected,
                error_cb=self._error,
                **self.auth.connect_options(),
            )
            self.js = self.nc.jetstream(timeout=5)
            await self.ensure_streams()
        except Exception as exc:
            log.warning("message bus connect failed", extra={"error": repr(exc)})
            if self.nc is not None:
                await self._close_quietly()
            raise
        self._ready.set()
        BUS_CONNECTED.set(1)
        for callback in self.on_connect:
            await callback()

    async def _reconnected(self) -> None:
        log.info("message bus reconnected")
        BUS_CONNECTED.set(1)
        try:
            await self.ensure_streams()
        except Exception as exc:
            log.warning("stream check after reconnect failed", extra={"error": repr(exc)})

    async def _disconnected(self) -> None:
        BUS_CONNECTED.set(0)
        if self._closing:
            return  # our own close, not an outage
        log.warning("message bus disconnected")
        BUS_DISCONNECTS.inc()

    async def _error(self, exc: Exception) -> None:
        if isinstance(exc, SlowConsumerError):
            # One per message dropped: counted, and said at most every few seconds (the
            # follower notices the gap and reads again from where it was).
            SLOW_CONSUMER_DROPS.inc()
            now = time.monotonic()
            if now - self._slow_logged_at < 5:
                return
            self._slow_logged_at = now
        # A refused permission or authorisation is said loudly: it is a misconfiguration.
        log.warning("message bus error", extra={"error": repr(exc)})

    async def ensure_streams(self) -> None:
        assert self.js is not None
        for name in self.streams:
            config = SPECS[name].config(replicas=self.replicas, max_bytes=self.max_bytes)
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                try:
                    await self.js.update_stream(config)
                except BadRequestError as exc:
                    # An existing stream JetStream cannot change in place (its retention,
                    # storage): the service works with it as it is, and says so loudly; an
                    # operator recreates it (docs/operations.md).
                    log.error(
                        "stream not updated to its declared configuration",
                        extra={"stream": name, "error": exc.description},
                    )

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
        self._closing = True
        await stop_task(self._task)
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception:
                await self._close_quietly()
