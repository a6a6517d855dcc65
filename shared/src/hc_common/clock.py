"""Time as the contract uses it: instants in UTC, calendar days in China Standard Time."""

from datetime import UTC, date, datetime, time, timedelta, timezone

_CST_OFFSET = timedelta(hours=8)  # no daylight saving: the same all year
CST = timezone(_CST_OFFSET, "CST")


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is UTC:  # most times here (a scan formats several): as it is
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def rfc3339(value: datetime) -> str:
    """`2026-11-27T08:00:00Z`: whole seconds, UTC, as the contract writes times."""
    # isoformat() is C code; strftime() was a visible share of a scan's time.
    return to_utc(value).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def cst_today(now: datetime | None = None) -> date:
    """The calendar day in China at `now` (default: now)."""
    return (to_utc(now or utcnow()) + _CST_OFFSET).date()


def end_of_cst_day(day: date) -> datetime:
    """23:59:59 China time of `day`, in UTC."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=CST).astimezone(UTC)


def birthday_in(year: int, birth: date) -> date:
    """The birthday in `year`; someone born on 29 February has it on 1 March in other years."""
    try:
        return birth.replace(year=year)
    except ValueError:
        return date(year, 3, 1)


def age_on(birth: date, day: date) -> int:
    """Age in full years on `day`."""
    years = day.year - birth.year
    if day < birthday_in(day.year, birth):
        years -= 1
    return years
