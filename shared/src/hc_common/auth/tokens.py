"""EdDSA JWTs: signing with a KeyRing, verifying against a key set fetched (and cached) by URL."""

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

import httpx
import jwt
import jwt.types
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hc_common.auth.keys import KeyRing

log = logging.getLogger("hc.auth")

AUDIENCE = "hc"


class InvalidToken(Exception):
    """Signature, key, shape or claims are wrong; `expired` tells an honest but old token."""

    def __init__(self, reason: str, *, expired: bool = False, claims: dict[str, Any] | None = None):
        super().__init__(reason)
        self.expired = expired
        self.claims = claims


def sign(
    ring: KeyRing, purpose: str, claims: dict[str, Any], *, compact_header: bool = False
) -> str:
    key = ring.current(purpose)
    headers: dict[str, Any] = {"kid": key.kid}
    if compact_header:
        headers["typ"] = None  # every byte counts in a printed QR code
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers=headers)


def _public_key(jwk: dict[str, Any]) -> Ed25519PublicKey | None:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    x = str(jwk.get("x", ""))
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except ValueError:
        return None


class KeySet:
    """Public keys by kid, each with its purpose (`access`, `credential`, `device`)."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[Ed25519PublicKey, str]] = {}

    def load(self, jwks: dict[str, Any]) -> None:
        keys = {}
        for jwk in jwks.get("keys", []):
            public = _public_key(jwk)
            if public is not None and jwk.get("kid"):
                keys[str(jwk["kid"])] = (public, str(jwk.get("purpose", "")))
        self.keys = keys

    def load_ring(self, ring: KeyRing) -> None:
        self.load(ring.jwks())

    def decode(
        self, token: str, purpose: str, *, audience: str | None = AUDIENCE, leeway: float = 30
    ) -> dict[str, Any]:
        """Verified claims, or InvalidToken. Looks only at keys of the given purpose."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed") from exc
        if header.get("alg") != "EdDSA":
            raise InvalidToken("algorithm")
        entry = self.keys.get(str(header.get("kid")))
        if entry is None or entry[1] != purpose:
            raise InvalidToken("unknown key")
        options: jwt.types.Options = {"require": ["exp"], "verify_aud": audience is not None}
        try:
            return jwt.decode(
                token,
                entry[0],
                algorithms=["EdDSA"],
                audience=audience,
                leeway=leeway,
                options=options,
            )
        except jwt.ExpiredSignatureError as exc:
            claims = jwt.decode(
                token,
                entry[0],
                algorithms=["EdDSA"],
                options={"verify_exp": False, "verify_aud": False},
            )
            raise InvalidToken("expired", expired=True, claims=claims) from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid") from exc

    def kid_known(self, token: str) -> bool:
        try:
            return str(jwt.get_unverified_header(token).get("kid")) in self.keys
        except jwt.PyJWTError:
            return False


def absolute_url(client: httpx.AsyncClient, url: str) -> str:
    """`url` as `client` requests it: a relative one after its `base_url` (host included),
    for log lines that say where the request went."""
    return str(client.build_request("GET", url).url)  # httpx's own joining


class RemoteKeySet(KeySet):
    """A key set published by another service at a JWKS URL: fetched at start, and again when
    a token names a kid not yet seen (at most once per `min_refresh_interval`).

    One fetch at a time (single flight): whoever needs the keys while a fetch is under way
    waits for that fetch instead of starting another, so a burst of tokens with a new kid
    costs the publisher one request. A caller may stop waiting at its own time limit
    (`ensure_kid(timeout=...)`) without cancelling the fetch, which goes on (bounded by the
    client's own time-outs) and serves the tokens that come after.

    The services start together, so the publisher may not be up yet when the first fetch
    runs: until the key set was once loaded, a failed fetch is tried again in the background
    (every `retry_interval`, doubling up to `min_refresh_interval`), logged at info level
    within `startup_grace` seconds of this object's making and as a warning after it. A fetch
    for a token whose kid is not known is a warning when it fails, start-up or not: that
    token is refused."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        min_refresh_interval: float = 5.0,
        startup_grace: float = 60.0,
        retry_interval: float = 0.25,
    ) -> None:
        super().__init__()
        self.client = client
        self.url = url
        self.absolute_url = absolute_url(client, url)
        self.min_refresh_interval = min_refresh_interval
        self.startup_grace = startup_grace
        self.retry_interval = retry_interval
        self.created_at = time.monotonic()
        self.fetched_at = 0.0
        self.loaded = False  # once loaded, the background retries stop for good
        self._failures = 0
        self._for_token = False  # a token waits on the fetch under way
        self._fetching: asyncio.Task[bool] | None = None
        self._retrying: asyncio.Task[None] | None = None

    async def refresh(self, *, for_token: bool = False) -> bool:
        """Fetch the key set now, or join the fetch under way; whether it was loaded.
        `for_token`: a token waits on it, so a failure is a warning even at start-up."""
        if for_token:
            self._for_token = True
        # Shielded: a caller that gives up (its time-out, its request gone) leaves the fetch
        # to the others and to the next tokens.
        return await asyncio.shield(self._start_fetch())

    def _start_fetch(self) -> "asyncio.Task[bool]":
        """The fetch under way, or a new one (single flight)."""
        task = self._fetching
        if task is None:
            task = self._fetching = asyncio.create_task(self._fetch(), name=f"jwks {self.url}")
            task.add_done_callback(self._fetch_done)
        return task

    @property
    def starting(self) -> bool:
        """Within the start-up grace, the key set never loaded: the publisher may be starting."""
        return not self.loaded and time.monotonic() - self.created_at < self.startup_grace

    def _fetch_done(self, task: "asyncio.Task[bool]") -> None:
        if self._fetching is task:
            self._fetching = None
        if not task.cancelled() and task.exception() is not None:
            # Nobody may be waiting any more: the error is logged here, not lost.
            log.error(
                "key set fetch crashed",
                extra={"url": self.absolute_url, "error": repr(task.exception())},
            )

    async def _fetch(self) -> bool:
        try:
            response = await self.client.get(self.url)
            response.raise_for_status()
            self.load(response.json())
        # InvalidURL and StreamError are not HTTPErrors: no key set either.
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as exc:
            # Try again soon, but not on every request while the publisher is down.
            self.fetched_at = time.monotonic() - self.min_refresh_interval + 0.5
            self._failed(str(exc) or type(exc).__name__)
            return False
        self.fetched_at = time.monotonic()
        self._for_token = False
        if not self.loaded:
            self.loaded = True
            if self._failures:
                log.info(
                    "key set fetched",
                    extra={"url": self.absolute_url, "failed_tries": self._failures},
                )
        return True

    def _failed(self, error: str) -> None:
        """Log a failed fetch (a warning when a token waited on it or the start-up grace is
        over), and keep trying in the background until the key set was once loaded."""
        self._failures += 1
        extra = {"url": self.absolute_url, "error": error}
        if self._for_token or not self.starting:
            log.warning("key set fetch failed", extra=extra)
        else:
            log.info("key set not available yet, trying again", extra=extra)
        self._for_token = False
        if not self.loaded and self._retrying is None and not self.client.is_closed:
            self._retrying = asyncio.create_task(self._retry(), name=f"jwks retry {self.url}")

    async def _retry(self) -> None:
        """Fetch the key set again after a failure, without waiting for a token to need it,
        until it was once loaded (or the client is closed: the service stops)."""
        delay = self.retry_interval
        try:
            while not self.loaded:
                await asyncio.sleep(delay)
                if self.loaded or self.client.is_closed:
                    return
                await asyncio.shield(self._start_fetch())
                delay = min(delay * 2, self.min_refresh_interval)
        finally:
            self._retrying = None

    async def aclose(self) -> None:
        """Stop the background retries (the client is the caller's to close)."""
        task, self._retrying = self._retrying, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def fetch_due(self) -> bool:
        """Would a token with an unknown kid wait for a fetch (one under way, the key set never
        loaded, or the last fetch at least `min_refresh_interval` ago)?

        The spacing keeps tokens with made-up kids from turning into requests to the
        publisher; a key set never loaded has no key to protect and refuses every token, so
        until it is loaded a token always waits for a fetch (still one at a time, and one
        after a failure no sooner than the spacing after it: ensure_kid). Else a token that
        came right after the publisher's start, before the background retry, was refused
        although the key was there to fetch."""
        return (
            not self.loaded
            or self._fetching is not None
            or time.monotonic() - self.fetched_at >= self.min_refresh_interval
        )

    async def ensure_kid(self, token: str, *, timeout: float | None = None) -> bool:
        """Fetch the key set again if the token names a kid we do not have (when `fetch_due`),
        waiting for it at most `timeout` seconds (None: as long as the client's time-outs
        allow; zero or less: the fetch is started but not waited for). Whether the token's
        kid is known now.

        Until the key set is loaded, a token after a failed fetch waits (within `timeout`)
        for the next one, due the spacing after it, which the tokens meanwhile share: a
        publisher that is down sees a request, and the log a warning, per spacing, not one
        per token (a gate's scans came back to back)."""
        if self.kid_known(token):
            return True
        if not self.fetch_due:
            return False
        try:
            async with asyncio.timeout(timeout):
                spaced = self.fetched_at + self.min_refresh_interval - time.monotonic()
                if not self.loaded and self._fetching is None and spaced > 0:
                    await asyncio.sleep(spaced)
                await self.refresh(for_token=True)
        except TimeoutError:
            return False
        return self.kid_known(token)
