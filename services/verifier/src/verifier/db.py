"""The verifier's own database: the outbox that keeps access records on local disk until
JetStream has them."""

from sqlalchemy.orm import DeclarativeBase

from hc_common.events.outbox import OutboxMixin


class Base(DeclarativeBase):
    pass


class OutboxEvent(Base, OutboxMixin):
    __tablename__ = "outbox"
