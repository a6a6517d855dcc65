"""EventBus against a real nats-server with authentication on: a cluster's list of servers,
a service's credentials from its settings, the streams it declares with their limits."""

from collections.abc import Iterator

import pytest
from nats.js.api import DiscardPolicy, RetentionPolicy

from hc_common.devstack import free_port
from hc_common.events.bus import EventBus, NatsAuth, server_list
from hc_common.events.streams import SPECS
from hc_common.settings import ServiceSettings
from hc_common.testing import NatsServer


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    server = NatsServer()
    server.start()
    yield server
    server.stop()


def test_nats_url_may_list_a_clusters_servers() -> None:
    assert server_list("nats://a:4222, nats://b:4222,,tls://c:4222") == [
        "nats://a:4222",
        "nats://b:4222",
        "tls://c:4222",
    ]


async def test_a_service_connects_with_its_settings_past_a_dead_server(
    server: NatsServer,
) -> None:
    dead = f"nats://127.0.0.1:{free_port()}"
    env = server.env("venue-admin")
    settings = ServiceSettings(
        NATS_URL=f"{dead},{env['NATS_URL']}",
        NATS_USER=env["NATS_USER"],
        NATS_PASSWORD=env["NATS_PASSWORD"],
        NATS_STREAM_MAX_BYTES=64 * 1024 * 1024,
        service_name="venue-admin",
    )
    bus = EventBus.from_settings(settings, ("VENUES", "ACCESS", "DEAD_LETTERS"))
    await bus.start()
    try:
        assert await bus.wait_ready(20)
        assert bus.describe() == {
            "connected": True,
            "server": f"127.0.0.1:{server.port}",
            "streams": ["VENUES", "ACCESS", "DEAD_LETTERS"],
        }
        assert bus.js is not None
        access = (await bus.js.stream_info("ACCESS")).config
        assert access.retention == RetentionPolicy.WORK_QUEUE
        assert access.discard == DiscardPolicy.NEW
        assert access.max_bytes == 64 * 1024 * 1024  # capped by the setting
        assert access.max_age == SPECS["ACCESS"].max_age.total_seconds()
        venues = (await bus.js.stream_info("VENUES")).config
        assert venues.discard == DiscardPolicy.OLD and venues.num_replicas == 1
    finally:
        await bus.close()


async def test_wrong_credentials_never_connect(server: NatsServer) -> None:
    bus = EventBus(server.url, "intruder", ("HEALTH",), auth=NatsAuth("verifier", "guess"))
    await bus.start()
    try:
        assert not await bus.wait_ready(2)
        assert bus.describe()["connected"] is False
    finally:
        await bus.close()


async def test_a_service_cannot_declare_another_services_stream(server: NatsServer) -> None:
    """The verifier's user may not create HEALTH (whoever makes a stream chooses its subjects):
    its bus never comes up declaring it."""
    bus = EventBus(server.url, "verifier", ("HEALTH",), auth=server.auth("verifier"))
    await bus.start()
    try:
        assert not await bus.wait_ready(3)
    finally:
        await bus.close()
