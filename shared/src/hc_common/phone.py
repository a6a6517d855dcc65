"""Mainland mobile numbers: 11 digits starting with 1."""

import re
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

# ASCII digits only: `\d` would take full-width and other scripts' digits as well.
_PHONE = re.compile(r"1[0-9]{10}")


def _check_phone(value: str) -> str:
    value = value.strip()
    if not _PHONE.fullmatch(value):
        raise PydanticCustomError("invalid_phone", "not a mainland mobile number")
    return value


Phone = Annotated[str, AfterValidator(_check_phone)]
