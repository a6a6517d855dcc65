"""Types every API shares: timestamps written as the contract writes them."""

from datetime import datetime
from typing import Annotated

from pydantic import PlainSerializer

from hc_common.clock import rfc3339

# An instant, written `2026-11-27T08:00:00Z`.
Timestamp = Annotated[datetime, PlainSerializer(rfc3339, return_type=str)]
