"""The verifier's own database: the outbox that keeps access records on local disk until
JetStream has them."""

from hc_common.events.outbox import OutboxMixin
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


class OutboxEvent(Base, OutboxMixin):
    __tablename__ = "outbox"
