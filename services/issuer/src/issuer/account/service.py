"""Sign-in rules: codes by SMS, users created at first sign-in, access tokens."""

from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.auth.keys import KeyRing
from hc_common.auth.tokens import AUDIENCE, sign
from hc_common.clock import utcnow
from hc_common.crypto import Sealer
from hc_common.errors import ServiceUnavailable
from hc_common.ids import new_id
from hc_common.masking import mask_phone
from hc_common.otp import OtpCodes
from issuer.account.models import User
from issuer.account.repository import UserRepository

SIGNIN_SCOPE = "signin"
ISSUER_NAME = "hc-issuer"


class AccountService:
    def __init__(
        self,
        session: AsyncSession,
        otp: OtpCodes,
        ring: KeyRing,
        token_ttl: int,
        phone_sealer: Sealer,
    ):
        self.session = session
        self.otp = otp
        self.ring = ring
        self.token_ttl = token_ttl
        self.phone_sealer = phone_sealer
        self._users = UserRepository(session)

    async def send_code(self, phone: str) -> int:
        try:
            return await self.otp.send(self.session, phone, SIGNIN_SCOPE)
        except httpx.HTTPError:
            # The SMS gateway failed: the code row is rolled back with the request, so the
            # attempt does not count against the number's limits.
            raise ServiceUnavailable(
                detail="短信服务暂不可用，请稍后再试",
                detail_en="The SMS gateway is unavailable; try again later",
            ) from None

    async def sign_in(self, phone: str, code: str) -> tuple[str, User]:
        """An access token for the number's user (created at the first sign-in). A wrong code
        is 401 `invalid_code`; `check` commits its counted try before raising, so that five
        wrong tries kill the code even though the request is rolled back, and consumes the
        right one once, however many requests present it together."""
        await self.otp.check(self.session, phone, SIGNIN_SCOPE, code)
        user = await self.resolve_user(phone)
        return self.access_token(user), user

    async def resolve_user(self, phone: str) -> User:
        """The user of this number, created if there is none yet."""
        phone_hash = self.otp.phone_hash(phone)
        user = await self._users.by_phone_hash(phone_hash)
        if user is None:
            user = await self._users.add_if_absent(
                User(
                    id=new_id(),
                    phone_hash=phone_hash,
                    masked_phone=mask_phone(phone),
                    created_at=utcnow(),
                )
            )
        if user.phone_sealed is None:
            # Kept sealed so that an appeal's outcome can be texted to the user.
            user.phone_sealed = self.phone_sealer.seal(phone.encode())
        return user

    def access_token(self, user: User) -> str:
        now = utcnow()
        return sign(
            self.ring,
            "access",
            {
                "iss": ISSUER_NAME,
                "aud": AUDIENCE,
                "sub": user.id,
                "typ": "access",
                "mph": user.masked_phone,
                "iat": int(now.timestamp()),
                "exp": int((now + timedelta(seconds=self.token_ttl)).timestamp()),
            },
        )
