"""PostgreSQL's binary COPY format written here, a column at a time, for a batch's rows.

asyncpg's copy_records_to_table encodes each value of each row through its codecs (a
timestamp about 0.4 us, a text a few tenths): twice what this takes for a lab's batch, whose
columns repeat a few values (times, results, institutions: each distinct value encoded once,
then looked up) and whose other values are text or bytes (a length and the bytes). The
database reads the same binary rows either way; a column type this does not know, or a value
it cannot write, leaves the rows to asyncpg (binary_rows gives None)."""

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import islice, repeat
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, LargeBinary, String, Table

# The file's signature, flags and header extension (none); its end (a row of -1 fields).
HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's timestamps count from it
# The 4-byte lengths of short values, made once.
_LENGTHS = [n.to_bytes(4, "big") for n in range(512)]


def _length(n: int) -> bytes:
    return _LENGTHS[n] if n < 512 else n.to_bytes(4, "big")


def _text(value: str | None) -> bytes:
    if value is None:
        return _NULL
    data = value.encode()
    return _length(len(data)) + data


def _bytea(value: bytes | None) -> bytes:
    if value is None:
        return _NULL
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError("bytes expected")
    return _length(len(value)) + bytes(value)


def _timestamptz(value: datetime | None) -> bytes:
    if value is None:
        return _NULL
    # As asyncpg: a naive time is local; microseconds since 2000-01-01 UTC.
    delta = value.astimezone(UTC) - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return b"\x00\x00\x00\x08" + micros.to_bytes(8, "big", signed=True)


def _int4(value: int | None) -> bytes:
    if value is None:
        return _NULL
    return b"\x00\x00\x00\x04" + value.to_bytes(4, "big", signed=True)


def _int8(value: int | None) -> bytes:
    if value is None:
        return _NULL
    return b"\x00\x00\x00\x08" + value.to_bytes(8, "big", signed=True)


def _bool(value: bool | None) -> bytes:
    if value is None:
        return _NULL
    return b"\x00\x00\x00\x01\x01" if value else b"\x00\x00\x00\x01\x00"


Encoder = Callable[[Any], bytes]


def encoders(table: Table, names: Sequence[str]) -> list[Encoder] | None:
    """The encoder of each column `names` of `table` by its type; None when one is of a type
    not written here."""
    found: list[Encoder] = []
    for name in names:
        kind = table.c[name].type
        if isinstance(kind, BigInteger):  # before Integer: a kind of it
            found.append(_int8)
        elif isinstance(kind, Integer):
            found.append(_int4)
        elif isinstance(kind, Boolean):
            found.append(_bool)
        elif isinstance(kind, LargeBinary):
            found.append(_bytea)
        elif isinstance(kind, String):  # Text too
            found.append(_text)
        elif _aware_time(kind):
            found.append(_timestamptz)
        else:
            return None
    return found


def _aware_time(kind: Any) -> bool:
    """A timestamp with a time zone (UTCDateTime's impl is one)."""
    impl = getattr(kind, "impl", kind)
    return isinstance(impl, DateTime) and bool(impl.timezone)


def _column(encode: Encoder, values: Sequence[Any]) -> list[bytes]:
    """One column's fields. A column of few distinct values has each encoded once; a text or
    bytes column of distinct values is written in one pass."""
    distinct = dict.fromkeys(values)
    if len(distinct) * 4 <= len(values):
        known = {value: encode(value) for value in distinct}
        return list(map(known.__getitem__, values))
    if encode is _bytea and set(map(type, distinct)) == {bytes}:
        data = values  # sealed values: a length and the bytes
    elif encode is _text and None not in distinct:
        data = [value.encode() for value in values]
    else:
        return list(map(encode, values))
    lengths, length = _LENGTHS, _length
    return [(lengths[len(d)] if len(d) < 512 else length(len(d))) + d for d in data]


def rows_data(columns: Sequence[Encoder], records: Sequence[Sequence[Any]]) -> bytes:
    """The binary COPY rows of `records` (no header, no trailer)."""
    if not records:
        return b""
    by_column = zip(*records, strict=True)
    fields = [_column(encode, values) for encode, values in zip(columns, by_column, strict=True)]
    count = len(columns).to_bytes(2, "big")
    return b"".join(map(b"".join, zip(repeat(count, len(records)), *fields, strict=True)))


def binary_rows(columns: Sequence[Encoder], records: Sequence[Sequence[Any]]) -> bytes | None:
    """A whole binary COPY of `records`; None when a value cannot be written here (a type
    the column does not take: asyncpg then writes the rows, and says what is wrong)."""
    try:
        return HEADER + rows_data(columns, records) + TRAILER
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None


async def binary_stream(
    columns: Sequence[Encoder], records: Iterable[Sequence[Any]], size: int
) -> AsyncIterator[bytes]:
    """A binary COPY of `records` in parts of `size` rows, each made as it is asked for (an
    iterator's rows are sent while the rest are made)."""
    rows = iter(records)
    yield HEADER
    while part := list(islice(rows, size)):
        yield rows_data(columns, part)
    yield TRAILER
