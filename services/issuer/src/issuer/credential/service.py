"""The rules of family credentials: who may hold one, how long it lives, what the QR says."""

import base64
import binascii
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from hc_common.auth.keys import KeyRing
from hc_common.auth.tokens import sign
from hc_common.clock import CST, age_on, birthday_in, cst_today, end_of_cst_day, to_utc, utcnow
from hc_common.crypto import keyed_hash
from hc_common.errors import Conflict, NotFound, Unprocessable
from hc_common.idnumber import parse_id_number
from hc_common.ids import new_id
from hc_common.masking import mask_id_number, mask_name
from hc_common.pagination import Page, page_of
from issuer.card.render import CardData
from issuer.clients.health_records import HealthRecordsClient
from issuer.credential import events
from issuer.credential.models import Credential
from issuer.credential.repository import CredentialRepository
from issuer.credential.schemas import CredentialCreate
from issuer.facecheck.service import FaceChecks

QR_PREFIX = "GXHC1:"
MAX_PHOTO_BYTES = 2 * 1024 * 1024
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


def card_data(credential: Credential) -> CardData:
    """What the printed card shows: the last valid day is the China-time day of expiry."""
    return CardData(
        qr=credential.qr,
        masked_name=credential.masked_name,
        masked_id_number=credential.masked_id_number,
        last_valid_day=credential.expires_at.astimezone(CST).date(),
        photo=credential.photo,
        version=credential.version,
    )


def decode_photo(photo: str) -> tuple[bytes, str]:
    """The photo as normalised JPEG bytes, or 422 invalid_photo."""
    from PIL import Image, UnidentifiedImageError

    invalid = Unprocessable(
        "invalid_photo",
        detail="照片不是有效的 JPEG 或 PNG 图片",
        detail_en="The photo is not a decodable JPEG or PNG",
    )
    text = photo.split(",", 1)[1] if photo.startswith("data:") else photo
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not raw or len(raw) > MAX_PHOTO_BYTES:
        raise Unprocessable(
            "invalid_photo",
            detail="照片须为 2 MiB 以内的 JPEG 或 PNG",
            detail_en="The photo must be a JPEG or PNG of at most 2 MiB",
        )
    try:
        with Image.open(io.BytesIO(raw)) as image:
            if image.format not in {"JPEG", "PNG"}:
                raise invalid
            image.load()
            rgb = image.convert("RGB")
            rgb.thumbnail((600, 800))
            out = io.BytesIO()
            rgb.save(out, "JPEG", quality=85)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise invalid from None
    return out.getvalue(), "image/jpeg"


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
        today = cst_today()
        id_number = parse_id_number(body.id_number)
        age = age_on(id_number.birth_date, today)
        if not is_eligible(age):
            raise Unprocessable(
                "not_eligible",
                detail="仅16周岁及以下或60周岁及以上人员可申领凭证",
                detail_en="Only people aged 16 or under or 60 or over are eligible",
            )
        photo, photo_type = decode_photo(body.photo)
        # Spent in this transaction: an error below rolls the spending back with it.
        await self.face_checks.spend(
            self.session, body.face_check_token, body.name, id_number.value
        )
        person_key = self.person_key(id_number.value)
        if await self._credentials.active_for_person(person_key) is not None:
            raise Conflict(
                "credential_exists",
                detail="此人已有有效凭证，请补办",
                detail_en="This person already holds an active credential; reissue it",
            )
        subject_id = await self.health_records.subject_for(id_number.value, body.name)
        return self._issue(
            user_id=user_id,
            person_key=person_key,
            subject_id=subject_id,
            masked_name=mask_name(body.name),
            masked_id_number=mask_id_number(id_number.value),
            birth_date=id_number.birth_date,
            relationship=body.relationship.value,
            photo=photo,
            photo_type=photo_type,
            version=await self._credentials.latest_version(person_key) + 1,
        )

    def _issue(
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
        version: int,
    ) -> Credential:
        now = utcnow()
        expires_at = end_of_cst_day(last_valid_day(cst_today(now), birth_date))
        credential_id = new_id()
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
        self._credentials.add(credential)
        events.stage_issued(self.session, credential)
        return credential

    async def get_own(self, user_id: str, credential_id: str) -> Credential:
        """One of the user's credentials; another user's is as unknown as a missing one."""
        credential = await self._credentials.get(credential_id)
        if credential is None or credential.user_id != user_id:
            raise NotFound(detail="凭证不存在", detail_en="No such credential")
        return credential

    async def list_for_user(self, user_id: str, limit: int, cursor: str | None) -> Page[Credential]:
        """The user's credentials, newest first, any status."""
        rows = await self._credentials.list_for_user(user_id, limit + 1, cursor)
        return page_of(rows, limit, lambda credential: credential.id)

    async def revoke(self, user_id: str, credential_id: str) -> Credential:
        """Revokes one of the user's credentials; one already revoked stays as it is."""
        credential = await self.get_own(user_id, credential_id)
        self._revoke(credential)
        return credential

    def _revoke(self, credential: Credential) -> None:
        if credential.status != "revoked":
            credential.status = "revoked"
            credential.revoked_at = utcnow()
            events.stage_revoked(self.session, credential)

    async def reissue(self, user_id: str, credential_id: str) -> Credential:
        """A lost card: the credential is revoked at once and a new one, its version + 1,
        issued to the same holder in the same transaction."""
        old = await self.get_own(user_id, credential_id)
        newer = await self._credentials.active_for_person(old.person_key)
        if newer is not None and newer.id != old.id:
            raise Conflict(
                "credential_exists",
                detail="已有更新的有效凭证",
                detail_en="A newer active credential exists; reissue that one",
            )
        if not is_eligible(age_on(old.birth_date, cst_today())):
            raise Unprocessable(
                "not_eligible",
                detail="持有人已不符合申领条件",
                detail_en="The holder is no longer eligible",
            )
        self._revoke(old)
        return self._issue(
            user_id=user_id,
            person_key=old.person_key,
            subject_id=old.subject_id,
            masked_name=old.masked_name,
            masked_id_number=old.masked_id_number,
            birth_date=old.birth_date,
            relationship=old.relationship,
            photo=old.photo,
            photo_type=old.photo_type,
            version=await self._credentials.latest_version(old.person_key) + 1,
        )

    # --- for the other services -----------------------------------------------------------
    async def get(self, credential_id: str) -> Credential:
        credential = await self._credentials.get(credential_id)
        if credential is None:
            raise NotFound()
        return credential

    async def revoked_ids(self, limit: int, after: str | None) -> Page[str]:
        """Every revoked credential's id, expired ones included, in id order."""
        rows = await self._credentials.revoked_ids(limit + 1, after)
        return page_of(rows, limit, lambda credential_id: credential_id)
