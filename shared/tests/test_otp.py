"""One-time codes against a real database (SQLite, or PostgreSQL with
TEST_DATABASE_URL_PREFIX): the limits and the tries hold when requests race, through one
engine or two (two replicas), with a clock of the test's own."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

import hc_common.otp.senders as otp_senders
import hc_common.otp.service as otp_service
from hc_common.db import Database
from hc_common.errors import DomainError, TooManyRequests
from hc_common.otp import (
    DevOutboxSender,
    OtpCodeMixin,
    OtpCodes,
    OtpLimitMixin,
    OtpPolicy,
    SmsOutboxMixin,
)
from hc_common.testing import make_phone, replica_databases, test_database_url


class Base(DeclarativeBase):
    pass


class Limit(Base, OtpLimitMixin):
    __tablename__ = "otp_limits_under_test"


class Code(Base, OtpCodeMixin):
    __tablename__ = "otp_codes_under_test"
    limits = Limit


class Message(Base, SmsOutboxMixin):
    __tablename__ = "sms_outbox_under_test"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    # 12:00 China time on a fixed day: far from midnight unless a test moves it there.
    fake = Clock(datetime(2026, 11, 27, 4, 0, tzinfo=UTC))
    monkeypatch.setattr(otp_service, "utcnow", fake)
    monkeypatch.setattr(otp_senders, "utcnow", fake)
    return fake


@pytest.fixture(scope="module")
async def replicas(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[list[Database]]:
    """Two engines on one fresh database, as two replicas of a service would hold."""
    url = test_database_url("otp", tmp_path_factory.mktemp("otp"))
    async with replica_databases(url, Base.metadata) as databases:
        yield databases


OTP = OtpCodes(Code, DevOutboxSender(Message), b"p" * 32, OtpPolicy())


async def in_request(db: Database, work: Callable[[AsyncSession], Awaitable[object]]) -> object:
    """`work` in a request's unit of work: committed when it returns, rolled back when it
    raises; the domain error it raised is the answer."""
    async with db.sessionmaker() as session:
        try:
            answer = await work(session)
            await session.commit()
            return answer
        except DomainError as error:
            await session.rollback()
            return error


async def at_once(
    replicas: list[Database],
    count: int,
    work: Callable[[int], Callable[[AsyncSession], Awaitable[object]]],
) -> list[object]:
    return list(
        await asyncio.gather(
            *(in_request(replicas[i % len(replicas)], work(i)) for i in range(count))
        )
    )


async def sent_codes(db: Database, phone: str) -> list[str]:
    async with db.sessionmaker() as session:
        rows = await session.scalars(select(Message.code).where(Message.phone == phone))
        return list(rows)


async def send(db: Database, phone: str, scope: str = "signin") -> object:
    return await in_request(db, lambda session: OTP.send(session, phone, scope))


async def check(db: Database, phone: str, code: str, scope: str = "signin") -> object:
    return await in_request(db, lambda session: OTP.check(session, phone, scope, code))


def code_of(answer: object) -> str | None:
    return answer.code if isinstance(answer, DomainError) else None


async def test_twenty_sends_at_once_over_two_replicas_send_one_code(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    answers = await at_once(replicas, 20, lambda _: lambda s: OTP.send(s, phone, "signin"))
    assert sorted(map(str, map(code_of, answers))) == ["None"] + ["too_many_requests"] * 19
    assert len(await sent_codes(replicas[0], phone)) == 1


async def test_one_a_minute_to_the_microsecond_with_retry_after_rounded_up(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    assert await send(replicas[0], phone) == 300
    clock.now += timedelta(seconds=59, microseconds=999_999)
    refused = await send(replicas[1], phone)
    assert isinstance(refused, TooManyRequests) and refused.headers["Retry-After"] == "1"
    clock.now += timedelta(microseconds=1)
    assert await send(replicas[1], phone) == 300
    # Limits are per number, whatever the scope (a service's own limits).
    clock.now += timedelta(seconds=20)
    other_scope = await send(replicas[0], phone, "sub-admin:x")
    assert isinstance(other_scope, TooManyRequests)
    assert other_scope.headers["Retry-After"] == "40"


async def test_ten_a_day_china_time_and_the_count_starts_again_at_midnight(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    for i in range(10):
        assert await send(replicas[i % 2], phone) == 300
        clock.now += timedelta(minutes=2)
    eleventh = await send(replicas[0], phone)
    assert isinstance(eleventh, TooManyRequests)
    assert eleventh.detail_en == "At most 10 codes a day per number"
    # 12:20 China time: the day ends in 11 h 40 min.
    assert eleventh.headers["Retry-After"] == str((11 * 60 + 40) * 60)
    # 15:59:59 UTC is 23:59:59 China time, the same day: still refused; a second later,
    # a new day.
    clock.now = datetime(2026, 11, 27, 15, 59, 59, tzinfo=UTC)
    assert isinstance(await send(replicas[1], phone), TooManyRequests)
    clock.now += timedelta(seconds=1)
    assert await send(replicas[1], phone) == 300
    for _ in range(9):
        clock.now += timedelta(minutes=1)
        assert await send(replicas[0], phone) == 300
    clock.now += timedelta(minutes=1)
    assert isinstance(await send(replicas[0], phone), TooManyRequests)


async def test_a_failed_delivery_does_not_count(
    replicas: list[Database], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        async def send(self, session: AsyncSession, phone: str, code: str) -> None:
            raise DomainError("service_unavailable", status=503)

    phone = make_phone()
    monkeypatch.setattr(OTP, "sender", Broken())
    assert code_of(await send(replicas[0], phone)) == "service_unavailable"
    monkeypatch.undo()
    assert await send(replicas[1], phone) == 300


async def requested(db: Database, phone: str) -> str:
    assert await send(db, phone) == 300
    (code,) = await sent_codes(db, phone)
    return code


def wrong(code: str, i: int = 0) -> str:
    return f"{(int(code) + 1 + i) % 10**6:06d}"


async def stored(db: Database, phone: str) -> tuple[int, bool]:
    async with db.sessionmaker() as session:
        row = (
            await session.execute(
                select(Code.attempts, Code.consumed).where(Code.phone_hash == OTP.phone_hash(phone))
            )
        ).one()
        return row.attempts, row.consumed


async def test_a_hundred_wrong_tries_at_once_count_five_and_kill_the_code(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    code = await requested(replicas[0], phone)
    answers = await at_once(
        replicas, 100, lambda i: lambda s: OTP.check(s, phone, "signin", wrong(code, i))
    )
    assert [code_of(a) for a in answers] == ["invalid_code"] * 100
    assert await stored(replicas[0], phone) == (5, False)
    assert code_of(await check(replicas[1], phone, code)) == "invalid_code"


async def test_the_right_code_among_wrong_ones_at_once_is_judged_within_five_tries(
    replicas: list[Database], clock: Clock
) -> None:
    """Whatever order the database takes them in: either the right code came while fewer
    than five wrong ones had been counted (and no more are counted after it), or it is
    refused."""
    phone = make_phone()
    code = await requested(replicas[0], phone)
    guesses = [wrong(code, i) for i in range(20)] + [code]
    answers = await at_once(
        replicas, len(guesses), lambda i: lambda s: OTP.check(s, phone, "signin", guesses[i])
    )
    attempts, consumed = await stored(replicas[0], phone)
    right = answers[-1]
    assert [code_of(a) for a in answers[:-1]] == ["invalid_code"] * 20
    if right is None:
        assert consumed and attempts <= 4
    else:
        assert code_of(right) == "invalid_code" and attempts == 5 and not consumed


async def test_one_code_ten_times_at_once_is_consumed_once(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    code = await requested(replicas[0], phone)
    answers = await at_once(replicas, 10, lambda _: lambda s: OTP.check(s, phone, "signin", code))
    assert sorted(map(str, map(code_of, answers))) == ["None"] + ["invalid_code"] * 9
    assert await stored(replicas[0], phone) == (0, True)


async def test_four_wrong_tries_leave_the_code_usable(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    code = await requested(replicas[0], phone)
    for i in range(4):
        assert code_of(await check(replicas[i % 2], phone, wrong(code, i))) == "invalid_code"
    assert await check(replicas[0], phone, code) is None
    assert await stored(replicas[0], phone) == (4, True)


async def test_an_expired_code_is_refused_and_not_counted(
    replicas: list[Database], clock: Clock
) -> None:
    phone = make_phone()
    code = await requested(replicas[0], phone)
    clock.now += timedelta(minutes=5)
    assert code_of(await check(replicas[0], phone, wrong(code))) == "invalid_code"
    assert code_of(await check(replicas[0], phone, code)) == "invalid_code"
    assert await stored(replicas[0], phone) == (0, False)


async def test_a_code_is_for_its_scope_only(replicas: list[Database], clock: Clock) -> None:
    phone = make_phone()
    code = await requested(replicas[0], phone)
    assert code_of(await check(replicas[0], phone, code, "sub-admin:x")) == "invalid_code"
    assert await check(replicas[1], phone, code) is None
