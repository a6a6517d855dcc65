"""Issue 10 in the issuer itself: the photo is judged from its header and decoded off the event
loop after the face check; an expired credential is not reissued and its holder applies
again; the migration to "one active credential per person" mends what the race left."""

import asyncio
import base64
import json
import random
import struct
import threading
import zlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import nats
import nats.errors
import pytest
from sqlalchemy import text, update

import issuer.credential.service as credential_service
from hc_common.db import Database
from hc_common.errors import Unprocessable
from hc_common.migrations import alembic_config
from hc_common.testing import make_id_number, test_database_url
from issuer.credential.models import Credential
from issuer.credential.photo import decode_photo

from .conftest import SERVICE_ROOT, Issuer, photo_b64

NAME = "黄秀珍"


def elder() -> str:
    return make_id_number(date(1930, 1, 1) + timedelta(days=random.randrange(10_000)))


def png(width: int, height: int) -> str:
    """A 1-bit PNG of that size, all black: tiny however large it claims to be."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    pixels = zlib.compress((b"\x00" * (1 + (width + 7) // 8)) * height, 9)
    return base64.b64encode(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    ).decode()


@pytest.mark.parametrize("size", [(4097, 1), (1, 4097), (13_000, 13_000)])
def test_a_photo_over_4096_pixels_a_side_is_refused_from_its_header(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    def no_decoding(self: object) -> None:
        raise AssertionError("pixels decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(Unprocessable) as refused:
        decode_photo(png(*size))
    assert refused.value.code == "invalid_photo"


@pytest.mark.parametrize("photo", ["data:", "data:image/png;base64", "data:,", "é" * 8, ""])
def test_a_photo_that_is_not_base64_is_invalid_photo(photo: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        decode_photo(photo)
    assert refused.value.code == "invalid_photo"


def test_a_photo_of_4096_pixels_a_side_is_kept_small() -> None:
    from PIL import Image

    jpeg, kind = decode_photo(png(4096, 4096))
    assert kind == "image/jpeg"
    import io

    with Image.open(io.BytesIO(jpeg)) as kept:
        assert kept.size == (600, 600)


async def test_the_photo_is_decoded_in_a_worker_thread_after_the_face_check(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[threading.Thread] = []
    real = credential_service.decode_photo

    def recording(photo: str) -> tuple[bytes, str]:
        seen.append(threading.current_thread())
        return real(photo)

    monkeypatch.setattr(credential_service, "decode_photo", recording)
    user = await issuer.sign_in()
    forged = await issuer.apply(user, NAME, elder(), face_check_token="forged")
    assert forged.status_code == 403 and seen == []
    applied = await issuer.apply(user, NAME, elder(), photo=photo_b64())
    assert applied.status_code == 201, applied.text
    assert len(seen) == 1 and seen[0] is not threading.main_thread()


async def expire(issuer: Issuer, credential_id: str) -> None:
    db: Database = issuer.app.state.db
    async with db.sessionmaker() as session:
        await session.execute(
            update(Credential)
            .where(Credential.id == credential_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()


async def test_an_expired_credential_is_not_reissued_and_its_holder_applies_again(
    issuer: Issuer,
) -> None:
    user, id_number = await issuer.sign_in(), elder()
    first = (await issuer.apply(user, NAME, id_number)).json()
    await expire(issuer, first["credential_id"])
    path = f"/v1/family/credentials/{first['credential_id']}"
    assert (await issuer.client.get(path, headers=user)).json()["status"] == "expired"
    reissued = await issuer.client.post(path + "/reissue", headers=user)
    assert reissued.status_code == 409 and reissued.json()["code"] == "credential_not_active"
    again = await issuer.apply(user, NAME, id_number)
    assert again.status_code == 201, again.text
    assert again.json()["version"] == 2 and again.json()["status"] == "active"
    assert (await issuer.client.get(path, headers=user)).json()["status"] == "revoked"


async def test_four_revocations_at_once_publish_one_event(issuer: Issuer, nats_url: str) -> None:
    user = await issuer.sign_in()
    credential = (await issuer.apply(user, NAME, elder())).json()
    path = f"/v1/family/credentials/{credential['credential_id']}"
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.subscribe("issuer.credential.revoked.v1")
        answers = await asyncio.gather(
            *(issuer.client.delete(path, headers=user) for _ in range(4))
        )
        assert [a.status_code for a in answers] == [204] * 4
        ours = 0
        while True:
            try:
                message = await sub.next_msg(timeout=1.5)
            except nats.errors.TimeoutError:
                break
            ours += json.loads(message.data)["data"]["credential_id"] == credential["credential_id"]
        assert ours == 1
    finally:
        await nc.close()


def test_the_migration_revokes_all_but_the_newest_of_several_active_credentials(
    tmp_path: Path,
) -> None:
    from alembic import command

    url = test_database_url("iss_migration", tmp_path)
    config = alembic_config(SERVICE_ROOT, url)
    command.upgrade(config, "a28eb70b7199")
    now = datetime(2026, 11, 27, tzinfo=UTC)

    def row(cid: str, person: str, version: int, status: str = "active") -> dict[str, object]:
        return {
            "id": cid,
            "user_id": "u" * 26,
            "person_key": person,
            "subject_id": "s" * 26,
            "masked_name": "黄*珍",
            "masked_id_number": "450103********1234",
            "birth_date": date(1950, 1, 1),
            "relationship": "parent",
            "photo": b"",
            "photo_type": "image/jpeg",
            "status": status,
            "version": version,
            "issued_at": now,
            "expires_at": now + timedelta(days=365),
            "revoked_at": None,
            "qr": "GXHC1:x",
        }

    rows = [
        row("01a", "p1", 1, "revoked"),
        row("01b", "p1", 2),
        row("01c", "p1", 3),
        row("01d", "p1", 3),  # two of one version: concurrent applications
        row("01e", "p2", 1),
    ]

    async def run(
        sql: str, params: list[dict[str, object]] | None = None
    ) -> list[tuple[object, ...]]:
        db = Database(url)
        try:
            async with db.engine.begin() as conn:
                if params is not None:
                    await conn.execute(Credential.__table__.insert(), params)
                    return []
                return [tuple(r) for r in (await conn.execute(text(sql))).all()]
        finally:
            await db.dispose()

    asyncio.run(run("", rows))
    command.upgrade(config, "head")
    left = asyncio.run(run("SELECT id, status FROM credentials ORDER BY id"))
    assert left == [
        ("01a", "revoked"),
        ("01b", "revoked"),
        ("01c", "revoked"),
        ("01d", "active"),
        ("01e", "active"),
    ]
    command.downgrade(config, "a28eb70b7199")
    command.upgrade(config, "head")
