"""Ed25519 signing keys kept in a service's own database, private halves sealed with a KEK.

Several keys may be live at once: the newest of a purpose signs, every key not retired is
published in the JWKS, so tokens signed before a rotation keep verifying until their key
is retired.
"""

import base64
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import LargeBinary, String, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from hc_common.clock import utcnow
from hc_common.crypto import Sealer
from hc_common.db import UTCDateTime
from hc_common.ids import new_id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKeyMixin:
    """Columns of a service's `signing_keys` table."""

    kid: Mapped[str] = mapped_column(String(16), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32), index=True)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True, slots=True)
class LiveKey:
    kid: str
    purpose: str
    private: Ed25519PrivateKey
    public_raw: bytes
    created_at: datetime

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _b64(self.public_raw),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
            "purpose": self.purpose,
        }


class KeyRing:
    """The live keys of one service, loaded from its table; signs with the newest per purpose."""

    def __init__(self, keys: list[LiveKey]) -> None:
        self.keys = sorted(keys, key=lambda k: k.created_at)
        self.by_kid = {k.kid: k for k in self.keys}

    def current(self, purpose: str) -> LiveKey:
        for key in reversed(self.keys):
            if key.purpose == purpose:
                return key
        raise LookupError(f"no live key for {purpose}")

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [k.jwk() for k in self.keys]}


def _kid(purpose: str) -> str:
    # One letter of purpose, then the tail of a time-ordered id: short, for the QR's sake.
    return purpose[0] + new_id()[-9:]


async def create_key(
    session: AsyncSession, model: type[SigningKeyMixin], sealer: Sealer, purpose: str
) -> str:
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    kid = _kid(purpose)
    session.add(
        model(
            kid=kid,
            purpose=purpose,
            private_key=sealer.seal(raw_private),  # type: ignore[call-arg]
            public_key=raw_public,
            created_at=utcnow(),
            retired_at=None,
        )
    )
    await session.flush()
    return kid


async def list_keys(session: AsyncSession, model: type[SigningKeyMixin]) -> list[SigningKeyMixin]:
    """Every key of the table, live and retired, oldest first."""
    return list((await session.scalars(select(model).order_by(model.created_at))).all())


async def retire_key(session: AsyncSession, model: type[SigningKeyMixin], kid: str) -> bool:
    key = await session.get(model, kid)
    if key is None or key.retired_at is not None:
        return False
    key.retired_at = utcnow()
    await session.flush()
    return True


# The advisory lock that makes replicas starting together on an empty table create one
# first key per purpose, not one each ("hc_keyri"; per database, like the migrations' lock).
BOOTSTRAP_LOCK_KEY = 0x68635F6B65797269


async def _take_bootstrap_lock(session: AsyncSession, model: type[SigningKeyMixin]) -> None:
    """Serialise this transaction with every other replica's bootstrap of the same table.

    PostgreSQL: a transaction-level advisory lock (released by the commit; works through
    PgBouncer in transaction mode). SQLite: a write statement that changes nothing takes the
    database's write lock for the rest of the transaction, and the reads after it see every
    commit made before it."""
    if (await session.connection()).dialect.name == "postgresql":
        lock = text("SELECT pg_advisory_xact_lock(:key)")
        await session.execute(lock, {"key": BOOTSTRAP_LOCK_KEY})
    else:
        await session.execute(update(model).where(model.kid.is_(None)).values(kid=model.kid))


async def _live_rows(session: AsyncSession, model: type[SigningKeyMixin]) -> list[SigningKeyMixin]:
    return list((await session.scalars(select(model).where(model.retired_at.is_(None)))).all())


async def load_keyring(
    session: AsyncSession, model: type[SigningKeyMixin], sealer: Sealer, purposes: tuple[str, ...]
) -> KeyRing:
    """Live keys of the table; creates the first key of a purpose that has none.

    Replicas that start together on an empty table take turns (`_take_bootstrap_lock`): the
    first creates the keys, the others find them. Without that, each made a first key of its
    own and published only the ones it had seen, so a token signed by one replica's key was
    refused by a service that had fetched the key set from the other."""
    rows = await _live_rows(session, model)
    if any(p not in {row.purpose for row in rows} for p in purposes):
        await session.rollback()  # the check above was outside the lock: look again inside it
        await _take_bootstrap_lock(session, model)
        rows = await _live_rows(session, model)
        have = {row.purpose for row in rows}
        for purpose in purposes:
            if purpose not in have:
                await create_key(session, model, sealer, purpose)
        await session.commit()
        rows = await _live_rows(session, model)
    return KeyRing(
        [
            LiveKey(
                row.kid,
                row.purpose,
                Ed25519PrivateKey.from_private_bytes(sealer.open(row.private_key)),
                row.public_key,
                row.created_at,
            )
            for row in rows
        ]
    )
