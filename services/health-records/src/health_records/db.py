"""health-records' declarative base and its infrastructure tables."""

from sqlalchemy.orm import DeclarativeBase

from hc_common.events.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class OutboxEvent(Base, OutboxMixin):
    __tablename__ = "outbox"
