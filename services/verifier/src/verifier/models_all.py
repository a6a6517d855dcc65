"""Every table of the verifier, for `Base.metadata` (Alembic's target)."""

from verifier.db import Base, OutboxEvent

__all__ = ["Base", "OutboxEvent"]
