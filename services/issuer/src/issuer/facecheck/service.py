"""Face check results are tokens signed by the provider, bound to the person (HMACs of name
and ID number), short-lived and good for one application. The dev provider signs them with
a dev secret (HS256); a production provider's results are checked the same way against its
configured key."""

from datetime import timedelta

import jwt
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.clock import utcnow
from hc_common.crypto import keyed_hash
from hc_common.errors import DomainError
from hc_common.ids import new_id
from issuer.facecheck.models import FaceCheckUse
from issuer.facecheck.repository import FaceCheckUseRepository

ISSUER = "hc-face-check"


def face_check_failed() -> DomainError:
    return DomainError(
        "face_check_failed",
        status=403,
        detail="人脸核验未通过或已失效",
        detail_en="Face check missing, invalid, expired, used or for another person",
    )


class FaceChecks:
    def __init__(self, secret: bytes, pepper: bytes, ttl_seconds: int) -> None:
        self.secret = secret
        self.pepper = pepper
        self.ttl = timedelta(seconds=ttl_seconds)

    def _bind(self, name: str, id_number: str) -> dict[str, str]:
        return {
            "pid": keyed_hash(self.pepper, "face-id:" + id_number)[:32],
            "nh": keyed_hash(self.pepper, "face-name:" + name.strip())[:32],
        }

    def issue(self, name: str, id_number: str) -> str:
        """What the dev provider hands out after a (simulated) successful face match."""
        now = utcnow()
        claims = {
            "iss": ISSUER,
            "jti": new_id(),
            "iat": int(now.timestamp()),
            "exp": int((now + self.ttl).timestamp()),
            **self._bind(name, id_number),
        }
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def verify(self, token: str | None, name: str, id_number: str) -> str:
        """The id of a genuine, live token of this person, or 403. Pure CPU: an application
        checks it before it so much as looks at the photo."""
        if not token:
            raise face_check_failed()
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                issuer=ISSUER,
                options={"require": ["exp", "jti", "iss"]},
            )
        except jwt.PyJWTError:
            raise face_check_failed() from None
        bound = self._bind(name, id_number)
        if claims.get("pid") != bound["pid"] or claims.get("nh") != bound["nh"]:
            raise face_check_failed()
        return str(claims["jti"])

    async def ensure_unspent(self, session: AsyncSession, token_id: str) -> None:
        """403 for a token an earlier application has spent (a read: the spending itself is
        `spend`)."""
        if await FaceCheckUseRepository(session).is_spent(token_id):
            raise face_check_failed()

    async def spend(self, session: AsyncSession, token_id: str) -> None:
        """Marks the token used in the caller's transaction (rolled back with it), or 403 when
        another application has spent it, concurrent ones included: its id is a primary key."""
        if not await FaceCheckUseRepository(session).add(
            FaceCheckUse(token_id=token_id, used_at=utcnow())
        ):
            raise face_check_failed()
