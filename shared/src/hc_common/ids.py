"""Identifiers: time-ordered, URL-safe, 26 characters (ULIDs, in lower-case Crockford base32).

python-ulid makes each ULID (48 bits of milliseconds, 80 random bits). Its text encoding is
pure Python (3.7 µs an id); ids are made on the scan path and by the ten thousand in a lab's
batch, so the same text is written here from a table of two-character pairs (0.6 µs), and a
test holds it equal to python-ulid's `str()`.
"""

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
