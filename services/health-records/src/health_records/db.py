"""health-records' declarative base and its infrastructure tables."""

from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase

from hc_common.events.outbox import OutboxMixin


class Base(DeclarativeBase):
    if TYPE_CHECKING:
        # Every model here is mapped to a plain table (what the bulk statements take).
        __table__: ClassVar[Table]


class OutboxEvent(Base, OutboxMixin):
    __tablename__ = "outbox"
