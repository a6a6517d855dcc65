"""The issuer's signing keys: the published key set, and the operators' rotation command.

    python -m issuer.keys list
    python -m issuer.keys rotate credential|access   # new key signs from the next restart
    python -m issuer.keys retire <kid>               # tokens of that key stop verifying

A rotation adds a key; the old one keeps verifying until it is retired. Replicas load
keys at start, so restart them (rolling) after a rotation.
"""

import asyncio
import sys

from fastapi import APIRouter

from hc_common.auth.keys import create_key, list_keys, retire_key
from hc_common.db import Database
from issuer.config import Settings
from issuer.crypto import key_sealer
from issuer.db import SigningKey
from issuer.deps import RingDep

PURPOSES = ("access", "credential")

router = APIRouter(tags=["keys"])


@router.get(
    "/.well-known/jwks.json",
    summary="Public keys: credential and access-token keys",
    description="Each key has its `kid`, and a `purpose` member: `credential` keys "
    "sign QR codes, `access` keys sign access tokens.",
)
async def jwks(ring: RingDep) -> dict[str, list[dict[str, str]]]:
    return ring.jwks()


async def _main(argv: list[str]) -> int:
    settings = Settings()
    db = Database(settings.effective_database_url)
    try:
        async with db.sessionmaker() as session:
            if argv[:1] == ["list"]:
                for key in await list_keys(session, SigningKey):
                    state = "retired" if key.retired_at else "live"
                    print(f"{key.kid}\t{key.purpose}\t{key.created_at.isoformat()}\t{state}")
            elif argv[:1] == ["rotate"] and len(argv) == 2 and argv[1] in PURPOSES:
                print(await create_key(session, SigningKey, key_sealer(settings), argv[1]))
            elif argv[:1] == ["retire"] and len(argv) == 2:
                if not await retire_key(session, SigningKey, argv[1]):
                    print("no live key with that kid", file=sys.stderr)
                    return 1
            else:
                print(__doc__)
                return 2
            await session.commit()
    finally:
        await db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(_main(sys.argv[1:])))
