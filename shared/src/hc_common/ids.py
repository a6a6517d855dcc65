"""Identifiers: time-ordered, URL-safe, 26 characters (ULIDs, in lower-case Crockford base32).

python-ulid makes each ULID (48 bits of milliseconds, 80 random bits). Its text encoding is
pure Python (3.7 µs an id); ids are made on the scan path and by the ten thousand in a lab's
batch, so the same text is written here from a table of two-character pairs (0.6 µs), and a
test holds it equal to python-ulid's `str()`.
"""

import os
import time

from ulid import ULID

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)  # 10 bits -> 2 characters


def encode(value: int) -> str:
    """The 26-character text of a 128-bit ULID value."""
    p = _PAIRS
    return (
        p[value >> 120]
        + p[(value >> 110) & 1023]
        + p[(value >> 100) & 1023]
        + p[(value >> 90) & 1023]
        + p[(value >> 80) & 1023]
        + p[(value >> 70) & 1023]
        + p[(value >> 60) & 1023]
        + p[(value >> 50) & 1023]
        + p[(value >> 40) & 1023]
        + p[(value >> 30) & 1023]
        + p[(value >> 20) & 1023]
        + p[(value >> 10) & 1023]
        + p[value & 1023]
    )


def new_id() -> str:
    """A new identifier whose text order follows creation time (to the millisecond)."""
    return encode(int.from_bytes(ULID().bytes))


def new_ids(count: int) -> list[str]:
    """`count` new ids at once (a batch's new persons): the 10 characters of the millisecond
    (48 bits) written once, then 16 characters of 80 random bits each (from one draw of the
    OS's random bytes), two characters a lookup (a quarter of new_id()'s cost each)."""
    stamp = encode((time.time_ns() // 1_000_000) << 80)[:10]
    random = os.urandom(10 * count)
    take = int.from_bytes
    p = _PAIRS
    ids = []
    for at in range(0, 10 * count, 10):
        r = take(random[at : at + 10])
        ids.append(
            stamp
            + p[r >> 70]
            + p[(r >> 60) & 1023]
            + p[(r >> 50) & 1023]
            + p[(r >> 40) & 1023]
            + p[(r >> 30) & 1023]
            + p[(r >> 20) & 1023]
            + p[(r >> 10) & 1023]
            + p[r & 1023]
        )
    return ids


def batch_ids(count: int) -> list[str]:
    """`count` ids for one batch's events, at a fraction of new_ids' cost: the millisecond
    and 50 random bits once, then a counter (30 bits). Unique within the batch by the
    counter, and across batches as new_id()'s are; unguessability is not asked of an event id
    (a subject id is made by new_ids)."""
    head = new_ids(1)[0][:20]  # new_id() counts up within a millisecond: not random enough
    p = _PAIRS
    return [head + p[n >> 20] + p[(n >> 10) & 1023] + p[n & 1023] for n in range(count)]
