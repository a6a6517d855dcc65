"""Fixtures every test folder shares: a NATS server for the session; and tests of what only
PostgreSQL has (marked `postgres`) deselected, not skipped, when the suite runs on SQLite."""

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from hc_common.testing import NatsServer, reset_streams

# The streams' declared sizes are a province's, reserved on the server's disk: a test's
# services cap them (the machine's shared NATS would refuse 64 GiB).
os.environ.setdefault("NATS_STREAM_MAX_BYTES", str(256 * 1024 * 1024))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the embedded defaults (no TEST_DATABASE_URL_PREFIX: SQLite) the `postgres` tests
    are deselected, so that the run's count says they did not run; `make test-pg` runs them."""
    if os.environ.get("TEST_DATABASE_URL_PREFIX"):
        return
    kept = [item for item in items if item.get_closest_marker("postgres") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(
            items=[item for item in items if item.get_closest_marker("postgres") is not None]
        )
        items[:] = kept


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """`TEST_NATS_URL` (a real NATS, e.g. the machine's) or an embedded nats-server with
    JetStream on a free port, for the whole session."""
    external = os.environ.get("TEST_NATS_URL")
    if external:
        # Streams left by an earlier run (perhaps of an older configuration) would be kept
        # as they are: the session starts from none.
        asyncio.run(reset_streams(external))
        yield external
        return
    server = NatsServer()
    server.start()
    try:
        # Authentication is on; a service's own unit tests connect as the operator (the
        # rights of each service are exercised by the end-to-end tests and tests/test_bus_auth).
        yield server.url_as()
    finally:
        server.stop()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A nats-server of the test's own, authentication on (the system's users), that the
    test may stop and start again."""
    server = NatsServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _dump_asyncio_tasks(signum: int, frame: object) -> None:
    """`kill -USR1 <pytest pid>`: print every asyncio task's stack (to find a hang)."""
    import asyncio
    import sys

    try:
        loop = asyncio._get_running_loop()
        for task in asyncio.all_tasks(loop) if loop else ():
            print(f"--- {task.get_name()} {task.get_coro()}", file=sys.__stderr__)
            task.print_stack(file=sys.__stderr__)
    except Exception as exc:  # never let a diagnostic fail the test
        print(f"task dump failed: {exc!r}", file=sys.__stderr__)


signal.signal(signal.SIGUSR1, _dump_asyncio_tasks)
