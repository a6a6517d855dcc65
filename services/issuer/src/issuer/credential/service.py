"""The rules of family credentials: who may hold one, how long it lives, what the QR says."""

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.auth.keys import KeyRing
from hc_common.auth.tokens import sign
from hc_common.clock import CST, age_on, birthday_in, cst_today, end_of_cst_day, to_utc, utcnow
from hc_common.crypto import keyed_hash
from hc_common.errors import Conflict, NotFound, Unprocessable
from hc_common.hygiene import require_id
from hc_common.idnumber import parse_id_number
from hc_common.ids import new_id
from hc_common.masking import mask_id_number, mask_name
from hc_common.pagination import Page, page_of
from issuer.card.render import CardData
from issuer.clients.health_records import HealthRecordsClient
from issuer.credential import events
from issuer.credential.models import Credential
from issuer.credential.photo import decode_photo
from issuer.credential.repository import CredentialRepository
from issuer.credential.schemas import CredentialCreate
from issuer.facecheck.service import FaceChecks

QR_PREFIX = "GXHC1:"
MINOR_MAX_AGE = 16
ELDER_MIN_AGE = 60


def is_eligible(age: int) -> bool:
    return age <= MINOR_MAX_AGE or age >= ELDER_MIN_AGE


def last_valid_day(issued_on: date, birth: date) -> date:
    """One year after issue; a minor's at the latest the day before the 17th birthday."""
    day = birthday_in(issued_on.year + 1, issued_on)
    if age_on(birth, issued_on) <= MINOR_MAX_AGE:
        day = min(day, birthday_in(birth.year + MINOR_MAX_AGE + 1, birth) - timedelta(days=1))
    return day


def credential_status(credential: Credential, now: datetime | None = None) -> str:
    if credential.status == "revoked":
        return "revoked"
    if to_utc(now or utcnow()) > credential.expires_at:
        return "expired"
    return "active"


def card_data(credential: Credential, issuing_authority: str) -> CardData:
    """What the printed card shows: the last valid day is the China-time day of expiry."""
    return CardData(
        qr=credential.qr,
        masked_name=credential.masked_name,
        masked_id_number=credential.masked_id_number,
        last_valid_day=credential.expires_at.astimezone(CST).date(),
        photo=credential.photo,
        version=credential.version,
        issuing_authority=issuing_authority,
    )


def credential_exists() -> Conflict:
    return Conflict(
        "credential_exists",
        detail="此人已有有效凭证，请补办",
        detail_en="This person already holds an active credential; reissue it",
    )


def credential_not_active() -> Conflict:
    return Conflict(
        "credential_not_active",
        detail="只能补办有效的凭证；已作废或已过期的凭证请重新申领",
        detail_en="Only an active credential can be reissued; apply again for this person",
    )


@dataclass
class CredentialService:
    session: AsyncSession
    ring: KeyRing
    pepper: bytes
    face_checks: FaceChecks
    health_records: HealthRecordsClient
    _credentials: CredentialRepository = field(init=False)

    def __post_init__(self) -> None:
        self._credentials = CredentialRepository(self.session)

    def person_key(self, id_number: str) -> str:
        return keyed_hash(self.pepper, "person:" + id_number)

    async def apply(self, user_id: str, body: CredentialCreate) -> Credential:
        """A new credential for a person who holds no active one. The face check is verified
        before the photo is looked at, the photo decoded in a worker thread, and the database
        has the last word on the single-use rules: the token is spent under a primary key
        and one active credential per person is a unique index, so that of applications
        racing each other one wins and the others get their 403 or 409."""
        today = cst_today()
        id_number = parse_id_number(body.id_number)
        age = age_on(id_number.birth_date, today)
        if not is_eligible(age):
            raise Unprocessable(
                "not_eligible",
                detail="仅16周岁及以下或60周岁及以上人员可申领凭证",
                detail_en="Only people aged 16 or under or 60 or over are eligible",
            )
        token_id = self.face_checks.verify(body.face_check_token, body.name, id_number.value)
        await self.face_checks.ensure_unspent(self.session, token_id)
        photo, photo_type = await asyncio.to_thread(decode_photo, body.photo)
        # Spent in this transaction: an error below rolls the spending back with it.
        await self.face_checks.spend(self.session, token_id)
        person_key = self.person_key(id_number.value)
        current = await self._credentials.active_for_person(person_key)
        if current is not None:
            if credential_status(current) != "expired":
                raise credential_exists()
            # An expired card is stored as active until its holder applies again.
            if await self._credentials.revoke_if_active(current, utcnow()):
                events.stage_revoked(self.session, current)
        subject_id = await self.health_records.subject_for(id_number.value, body.name)
        return await self._issue(
            user_id=user_id,
            person_key=person_key,
            subject_id=subject_id,
            masked_name=mask_name(body.name),
            masked_id_number=mask_id_number(id_number.value),
            birth_date=id_number.birth_date,
            relationship=body.relationship.value,
            photo=photo,
            photo_type=photo_type,
        )

    async def _issue(
        self,
        *,
        user_id: str,
        person_key: str,
        subject_id: str,
        masked_name: str,
        masked_id_number: str,
        birth_date: date,
        relationship: str,
        photo: bytes,
        photo_type: str,
    ) -> Credential:
        """Writes the person's next credential; 409 `credential_exists` when the database
        holds an active one for them already (a concurrent application or reissue won)."""
        now = utcnow()
        expires_at = end_of_cst_day(last_valid_day(cst_today(now), birth_date))
        credential_id = new_id()
        version = await self._credentials.latest_version(person_key) + 1
        token = sign(
            self.ring,
            "credential",
            {
                "sub": subject_id,
                "jti": credential_id,
                "ver": version,
                "exp": int(expires_at.timestamp()),
            },
            compact_header=True,
        )
        credential = Credential(
            id=credential_id,
            user_id=user_id,
            person_key=person_key,
            subject_id=subject_id,
            masked_name=masked_name,
            masked_id_number=masked_id_number,
            birth_date=birth_date,
            relationship=relationship,
            photo=photo,
            photo_type=photo_type,
            status="active",
            version=version,
            issued_at=now,
            expires_at=expires_at,
            revoked_at=None,
            qr=QR_PREFIX + token,
        )
        if not await self._credentials.add(credential):
            raise credential_exists()
        events.stage_issued(self.session, credential)
        return credential

    async def get_own(self, user_id: str, credential_id: str) -> Credential:
        """One of the user's credentials; another user's, or an id that is none of ours, is
        as unknown as a missing one."""
        credential = await self._credentials.get(require_id(credential_id))
        if credential is None or credential.user_id != user_id:
            raise NotFound(detail="凭证不存在", detail_en="No such credential")
        return credential

    async def list_for_user(self, user_id: str, limit: int, cursor: str | None) -> Page[Credential]:
        """The user's credentials, newest first, any status."""
        rows = await self._credentials.list_for_user(user_id, limit + 1, cursor)
        return page_of(rows, limit, lambda credential: credential.id)

    async def revoke(self, user_id: str, credential_id: str) -> Credential:
        """Revokes one of the user's credentials; one already revoked stays as it is (and of
        two revocations at once, one publishes the event)."""
        credential = await self.get_own(user_id, credential_id)
        if await self._credentials.revoke_if_active(credential, utcnow()):
            events.stage_revoked(self.session, credential)
        return credential

    async def reissue(self, user_id: str, credential_id: str) -> Credential:
        """A lost card: the credential is revoked at once and a new one, its version + 1,
        issued to the same holder in the same transaction. Only an active credential is
        reissued (409 `credential_not_active`); of reissues racing each other, the one whose
        conditional revocation wins goes on, the others find the credential revoked."""
        old = await self.get_own(user_id, credential_id)
        if credential_status(old) != "active":
            raise credential_not_active()
        if not is_eligible(age_on(old.birth_date, cst_today())):
            raise Unprocessable(
                "not_eligible",
                detail="持有人已不符合申领条件",
                detail_en="The holder is no longer eligible",
            )
        if not await self._credentials.revoke_if_active(old, utcnow()):
            raise credential_not_active()
        events.stage_revoked(self.session, old)
        return await self._issue(
            user_id=user_id,
            person_key=old.person_key,
            subject_id=old.subject_id,
            masked_name=old.masked_name,
            masked_id_number=old.masked_id_number,
            birth_date=old.birth_date,
            relationship=old.relationship,
            photo=old.photo,
            photo_type=old.photo_type,
        )

    # --- for the other services -----------------------------------------------------------
    async def get(self, credential_id: str) -> Credential:
        credential = await self._credentials.get(require_id(credential_id))
        if credential is None:
            raise NotFound()
        return credential

    async def revoked_ids(self, limit: int, after: str | None) -> Page[str]:
        """Every revoked credential's id, expired ones included, in id order."""
        rows = await self._credentials.revoked_ids(limit + 1, after)
        return page_of(rows, limit, lambda credential_id: credential_id)
