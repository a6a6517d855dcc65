"""health-records' declarative base and its infrastructure tables."""

from hc_common.events.outbox import OutboxMixin
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class OutboxEvent(Base, OutboxMixin):
    __tablename__ = "outbox"
