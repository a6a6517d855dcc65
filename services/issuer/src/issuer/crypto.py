"""The issuer's secrets from settings, decoded once."""

from hc_common.crypto import Sealer, decode_key
from issuer.config import Settings


def pepper_of(settings: Settings) -> bytes:
    return decode_key(settings.pepper)


def key_sealer(settings: Settings) -> Sealer:
    return Sealer(decode_key(settings.key_encryption_key), b"issuer-signing-keys")


def phone_sealer(settings: Settings) -> Sealer:
    """Seals a user's phone number (to text them an appeal's outcome); never stored in clear."""
    return Sealer(decode_key(settings.key_encryption_key), b"issuer-user-phones")
