"""A key set fetched from another service: a publisher still starting is not an alarm (info
level, tried again in the background), one that stays away past the start-up grace or that a
token waits on is (a warning naming the absolute URL it tried)."""

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hc_common.auth.tokens import RemoteKeySet, absolute_url

BASE = "http://issuer.test:8001/api"
URL = "http://issuer.test:8001/api/.well-known/jwks.json"
KEY = Ed25519PrivateKey.generate()
RAW = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
JWKS = {
    "keys": [
        {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64.urlsafe_b64encode(RAW).rstrip(b"=").decode(),
            "kid": "k1",
            "purpose": "access",
        }
    ]
}
TOKEN = jwt.encode(
    {"sub": "u", "aud": "hc", "exp": int(time.time()) + 600},
    KEY,
    algorithm="EdDSA",
    headers={"kid": "k1"},
)


class Publisher:
    """The other service: down (connection refused) for its first `down_for` requests."""

    def __init__(self, down_for: int) -> None:
        self.down_for = down_for
        self.requested: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requested.append(str(request.url))
        if len(self.requested) <= self.down_for:
            raise httpx.ConnectError("All connection attempts failed", request=request)
        return httpx.Response(200, json=JWKS)


@pytest.fixture
async def make_keys() -> AsyncIterator[Callable[..., RemoteKeySet]]:
    made: list[RemoteKeySet] = []

    def make(publisher: Publisher, **options: float) -> RemoteKeySet:
        client = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(publisher))
        keys = RemoteKeySet(client, "/.well-known/jwks.json", retry_interval=0.01, **options)
        made.append(keys)
        return keys

    yield make
    for keys in made:
        await keys.aclose()
        await keys.client.aclose()


async def until(check: Callable[[], bool]) -> bool:
    for _ in range(500):
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hc.auth" and r.levelno == level]


def test_the_url_logged_is_the_one_the_client_requests() -> None:
    client = httpx.AsyncClient(base_url=BASE)
    assert absolute_url(client, "/.well-known/jwks.json") == URL
    assert absolute_url(client, "http://other:1/x") == "http://other:1/x"
    assert absolute_url(httpx.AsyncClient(), "/x") == "/x"


async def test_a_publisher_still_starting_is_no_warning_and_is_tried_again(
    make_keys: Callable[..., RemoteKeySet], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hc.auth")
    publisher = Publisher(down_for=3)
    keys = make_keys(publisher)
    assert await keys.refresh() is False
    # Loaded by the retries, before any token asked for it.
    assert await until(lambda: keys.loaded)
    assert keys.kid_known(TOKEN)
    assert publisher.requested == [URL] * 4
    assert records(caplog, logging.WARNING) == []
    waiting = [r for r in records(caplog, logging.INFO) if "not available yet" in r.message]
    assert len(waiting) == 3 and {r.__dict__["url"] for r in waiting} == {URL}
    assert "All connection attempts failed" in waiting[0].__dict__["error"]
    assert [r.message for r in records(caplog, logging.INFO)][-1] == "key set fetched"


async def test_a_publisher_away_past_the_grace_is_a_warning_with_its_absolute_url(
    make_keys: Callable[..., RemoteKeySet], caplog: pytest.LogCaptureFixture
) -> None:
    publisher = Publisher(down_for=1000)
    keys = make_keys(publisher, startup_grace=0)
    assert await keys.refresh() is False
    [warning, *_] = records(caplog, logging.WARNING)
    assert warning.message == "key set fetch failed" and warning.__dict__["url"] == URL
    # It keeps trying (each failure a warning) until the publisher is back.
    assert await until(lambda: len(publisher.requested) >= 3)
    assert len(records(caplog, logging.WARNING)) >= 2
    publisher.down_for = 0
    assert await until(lambda: keys.loaded)


async def test_a_token_that_needs_a_key_that_cannot_be_had_is_a_warning_at_start_too(
    make_keys: Callable[..., RemoteKeySet], caplog: pytest.LogCaptureFixture
) -> None:
    keys = make_keys(Publisher(down_for=1000))
    assert await keys.ensure_kid(TOKEN) is False
    [warning] = records(caplog, logging.WARNING)
    assert warning.message == "key set fetch failed" and warning.__dict__["url"] == URL


async def test_once_loaded_no_fetch_runs_in_the_background(
    make_keys: Callable[..., RemoteKeySet], caplog: pytest.LogCaptureFixture
) -> None:
    publisher = Publisher(down_for=0)
    keys = make_keys(publisher)
    assert await keys.refresh() is True
    await asyncio.sleep(0.1)
    assert publisher.requested == [URL]
    assert records(caplog, logging.WARNING) == [] and records(caplog, logging.INFO) == []


async def test_a_token_right_after_the_publisher_came_up_waits_for_the_key_set(
    make_keys: Callable[..., RemoteKeySet],
) -> None:
    # The services start together: the publisher was down at the first fetch and came up just
    # after it, and the first token arrives before the background retry has run. A key set
    # never loaded has nothing to protect with the refetch spacing: the token waits for a fetch
    # instead of being refused (a user signed in at the issuer was refused by venue-admin).
    publisher = Publisher(down_for=1)
    keys = make_keys(publisher)
    keys.retry_interval = 60  # the background retry does not come in time
    assert await keys.refresh() is False
    assert keys.fetch_due
    assert await keys.ensure_kid(TOKEN) is True
    assert publisher.requested == [URL, URL]


async def test_once_loaded_an_unknown_kid_is_refetched_at_most_once_per_interval(
    make_keys: Callable[..., RemoteKeySet],
) -> None:
    publisher = Publisher(down_for=0)
    keys = make_keys(publisher, min_refresh_interval=60)
    assert await keys.refresh() is True
    stranger = jwt.encode({"sub": "u"}, Ed25519PrivateKey.generate(), "EdDSA", {"kid": "k9"})
    assert not keys.fetch_due
    assert await keys.ensure_kid(stranger) is False
    assert publisher.requested == [URL]


async def test_tokens_back_to_back_while_the_publisher_is_down_share_spaced_fetches(
    make_keys: Callable[..., RemoteKeySet], caplog: pytest.LogCaptureFixture
) -> None:
    # A gate's scans while the key set was never loaded and the publisher is down: each token
    # waits for the next fetch, due half a second after the failed one, instead of starting
    # its own (a request to the publisher and a warning per token, hundreds a second).
    publisher = Publisher(down_for=1000)
    keys = make_keys(publisher)
    keys.retry_interval = 60  # only the tokens fetch
    assert await keys.refresh() is False
    started = time.monotonic()
    answers = []
    while time.monotonic() - started < 1.2:
        answers.append(await keys.ensure_kid(TOKEN, timeout=0.05))
    assert len(answers) >= 10 and not any(answers)
    # The first fetch, then at most one each half second.
    assert 2 <= len(publisher.requested) <= 4
    assert 1 <= len(records(caplog, logging.WARNING)) <= 3
