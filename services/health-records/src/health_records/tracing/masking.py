"""Masked ID numbers of many persons at once, from their sealed ID numbers, opening only the
characters a masked number shows.

A sealed value (hc_common.crypto.Sealer) is a 12-byte nonce, then AES-256-GCM's ciphertext and
its 16-byte tag. GCM encrypts in counter mode: plaintext byte i is ciphertext byte i XOR byte i
of the key stream, whose block j (from 0) is AES(key, nonce || uint32(j + 2)) (NIST SP 800-38D,
a 96-bit IV). So the key stream of every value is made in ONE call of AES (ECB over all their
counter blocks, in C) and XORed with every ciphertext as one big integer: no call per value,
where opening 200,000 values one by one costs a second. The tag is not checked here (a masked
number is shown, nothing is decided on it; opening a value for use goes through Sealer.open,
which checks it)."""

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hc_common.crypto import Sealer
from hc_common.masking import mask_id_number

# A sealed 18-character ID number: nonce, 18 bytes of ciphertext, 16 of tag.
NONCE, ID_LENGTH, TAG = 12, 18, 16
SEALED_ID = NONCE + ID_LENGTH + TAG
# A value's slot: two blocks of key stream (32 bytes) cover its 18 characters.
SLOT = 32
# The counter words of those two blocks.
COUNTER_2, COUNTER_3 = (2).to_bytes(4, "big"), (3).to_bytes(4, "big")
# Of the 18 characters, a masked ID number shows the first 6 and the last 4.
_HIDDEN = "*" * (ID_LENGTH - 10)


class IdNumberMasker:
    """Masked ID numbers from those `sealer` sealed with `key` (the key stream does not depend
    on the sealer's context: only the tag does)."""

    def __init__(self, key: bytes, sealer: Sealer) -> None:
        self._key = key
        self._sealer = sealer

    def masked(self, sealed: Sequence[bytes]) -> list[str]:
        """`mask_id_number` of each sealed ID number, in order."""
        if not all(len(s) == SEALED_ID for s in sealed):  # not 18 characters: one at a time
            return [mask_id_number(self._sealer.open(s).decode()) for s in sealed]
        counters = b"".join([s[:NONCE] + COUNTER_2 + s[:NONCE] + COUNTER_3 for s in sealed])
        # The ciphertext and the first 14 bytes of the tag fill each value's slot.
        return self.masked_slots(counters, b"".join([s[NONCE : NONCE + SLOT] for s in sealed]))

    def masked_slots(self, counters: bytes, slots: bytes) -> list[str]:
        """The masked ID numbers of sealed 18-character ID numbers laid out as `counters`
        (for each, nonce || COUNTER_2 || nonce || COUNTER_3) and `slots` (for each, the 32
        bytes after the nonce), in order."""
        if len(counters) != len(slots) or len(slots) % SLOT:
            raise ValueError("counters and slots are not of one layout")
        if not slots:
            return []
        stream = Cipher(algorithms.AES(self._key), modes.ECB()).encryptor().update(counters)
        size = len(slots)
        # The tag's bytes in each slot come out as noise, unread.
        plain = (int.from_bytes(slots) ^ int.from_bytes(stream)).to_bytes(size).decode("latin-1")
        return [
            plain[at : at + 6] + _HIDDEN + plain[at + 14 : at + 18] for at in range(0, size, SLOT)
        ]
