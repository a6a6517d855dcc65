"""Fixtures for the cross-service tests: the whole system as processes, and helpers."""

import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hc_common.devstack import SERVICES, Stack, free_port
from hc_common.testing import reset_streams, test_database_url


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The four services and an embedded NATS (or `NATS_URL`) on free ports.

    With `TEST_DATABASE_URL_PREFIX` (e.g. `postgresql://postgres@127.0.0.1:5432/hc_test_`)
    each service gets a fresh PostgreSQL database; with `TEST_NATS_URL` the services use that
    NATS (its streams deleted first) instead of an embedded one."""
    run_dir = Path(tempfile.mkdtemp(prefix="hc-e2e-"))
    env: dict[str, str] = {
        "APP_ENV": "dev",
        # A sub-admin removed and hired again asks for second codes (venue-admin's, then the
        # issuer's to sign in): the test waits out a 3-second spacing between codes to one
        # number instead of the contract's minute.
        "VENUE_ADMIN_OTP_MIN_INTERVAL_SECONDS": "3",
        "ISSUER_OTP_MIN_INTERVAL_SECONDS": "3",
    }
    for name, (_package, env_prefix) in SERVICES.items():
        env[f"{env_prefix}_DATABASE_URL"] = test_database_url(f"e2e-{name}", run_dir)
    nats_url = os.environ.get("TEST_NATS_URL") or None
    if nats_url:
        asyncio.run(reset_streams(nats_url))
    stack = Stack(
        run_dir,
        ports={name: free_port() for name in SERVICES},
        nats_port=free_port(),
        nats_url=nats_url,
        env=env,
        log_to_files=True,
    )
    try:
        stack.start(timeout=90)
        yield stack
    finally:
        stack.stop()


@contextmanager
def own_stack(name: str, **env: str) -> Iterator[tuple[Stack, "Api"]]:
    """A stack of a test module's own (one that kills, freezes or restarts processes, or
    needs settings of its own), always with its embedded NATS, authentication on; `env`
    adds settings. Databases are named after `name` (PostgreSQL with
    `TEST_DATABASE_URL_PREFIX`)."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"hc-{name}-"))
    settings = {"APP_ENV": "dev", **env}
    for service, (_package, prefix) in SERVICES.items():
        if service != "verifier":  # it keeps no database
            settings[f"{prefix}_DATABASE_URL"] = test_database_url(f"{name}-{service}", run_dir)
    stack = Stack(
        run_dir,
        ports={n: free_port() for n in SERVICES},
        nats_port=free_port(),
        env=settings,
        log_to_files=True,
    )
    try:
        stack.start(timeout=90)
        yield stack, Api(stack)
    finally:
        stack.stop()


class Api:
    """An HTTP client per service, for tests that read like a user's session."""

    def __init__(self, stack: Stack) -> None:
        self.issuer = httpx.Client(base_url=stack.url("issuer"), timeout=10)
        self.venue_admin = httpx.Client(base_url=stack.url("venue-admin"), timeout=10)
        self.health_records = httpx.Client(base_url=stack.url("health-records"), timeout=10)
        self.verifier = httpx.Client(base_url=stack.url("verifier"), timeout=10)


@pytest.fixture(scope="session")
def api(stack: Stack) -> Api:
    return Api(stack)
