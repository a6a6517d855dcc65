"""EdDSA JWTs: signing with a KeyRing, verifying against a key set fetched (and cached) by URL."""

import asyncio
import base64
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


class RemoteKeySet(KeySet):
    """A key set published by another service at a JWKS URL: fetched at start, and again when
    a token names a kid not yet seen (at most once per `min_refresh_interval`).

    One fetch at a time (single flight): whoever needs the keys while a fetch is under way
    waits for that fetch instead of starting another, so a burst of tokens with a new kid
    costs the publisher one request. A caller may stop waiting at its own time limit
    (`ensure_kid(timeout=...)`) without cancelling the fetch, which goes on (bounded by the
    client's own time-outs) and serves the tokens that come after."""

    def __init__(
        self, client: httpx.AsyncClient, url: str, *, min_refresh_interval: float = 5.0
    ) -> None:
        super().__init__()
        self.client = client
        self.url = url
        self.min_refresh_interval = min_refresh_interval
        self.fetched_at = 0.0
        self._fetching: asyncio.Task[bool] | None = None

    async def refresh(self) -> bool:
        """Fetch the key set now, or join the fetch under way; whether it was loaded."""
        task = self._fetching
        if task is None:
            task = self._fetching = asyncio.create_task(self._fetch(), name=f"jwks {self.url}")
            task.add_done_callback(self._fetch_done)
        # Shielded: a caller that gives up (its time-out, its request gone) leaves the fetch
        # to the others and to the next tokens.
        return await asyncio.shield(task)

    def _fetch_done(self, task: "asyncio.Task[bool]") -> None:
        if self._fetching is task:
            self._fetching = None
        if not task.cancelled() and task.exception() is not None:
            # Nobody may be waiting any more: the error is logged here, not lost.
            log.error(
                "key set fetch crashed", extra={"url": self.url, "error": repr(task.exception())}
            )

    async def _fetch(self) -> bool:
        try:
            response = await self.client.get(self.url)
            response.raise_for_status()
            self.load(response.json())
            self.fetched_at = time.monotonic()
            return True
        # InvalidURL and StreamError are not HTTPErrors: no key set either.
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as exc:
            # Try again soon, but not on every request while the publisher is down.
            self.fetched_at = time.monotonic() - self.min_refresh_interval + 0.5
            log.warning("key set fetch failed", extra={"url": self.url, "error": str(exc)})
            return False

    @property
    def fetch_due(self) -> bool:
        """Would a token with an unknown kid wait for a fetch (one under way, or the last one
        at least `min_refresh_interval` ago)?"""
        return (
            self._fetching is not None
            or time.monotonic() - self.fetched_at >= self.min_refresh_interval
        )

    async def ensure_kid(self, token: str, *, timeout: float | None = None) -> bool:
        """Fetch the key set again if the token names a kid we do not have (when `fetch_due`),
        waiting for it at most `timeout` seconds (None: as long as the client's time-outs
        allow; zero or less: the fetch is started but not waited for). Whether the token's
        kid is known now."""
        if self.kid_known(token):
            return True
        if not self.fetch_due:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self.refresh()
        except TimeoutError:
            return False
        return self.kid_known(token)
