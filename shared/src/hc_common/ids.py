"""Identifiers: time-ordered, URL-safe, 26 characters (ULIDs, in lower-case Crockford base32)."""

from ulid import ULID


def new_id() -> str:
    """A new identifier whose text order follows creation time (to the millisecond)."""
    return str(ULID()).lower()
